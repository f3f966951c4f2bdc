// Package app holds the capstan-apiserver command: its options, how they turn
// into a server configuration, and the local mode.
package app

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/admission/plugin/resourcequota"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	cliflag "k8s.io/component-base/cli/flag"

	"capstan.dev/capstan/pkg/admission/plugin/configpolicy"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/scheme"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
)

const (
	// ModeLocal runs one process with an embedded etcd, its own PKI and a single admin.
	ModeLocal = "local"
	// ModeAggregated runs behind kube-apiserver's aggregation layer with external
	// etcd and delegated authentication and authorization.
	ModeAggregated = "aggregated"

	// defaultEtcdPrefix is kube-apiserver's; resources live under
	// <prefix>/config.capstan.dev/<resource>, as a CRD's would.
	defaultEtcdPrefix = "/registry"
	defaultSecurePort = 8443
)

// encryptedResources are encrypted at rest by default in local mode: both hold
// secret values.
var encryptedResources = []string{"configsets." + config.GroupName, "configrevisions." + config.GroupName}

// Options are the command-line options of capstan-apiserver.
type Options struct {
	Recommended *genericoptions.RecommendedOptions
	ServerRun   *genericoptions.ServerRunOptions

	// Mode is ModeLocal or ModeAggregated.
	Mode string
	// DataDir holds local mode's etcd data, PKI, encryption key and kubeconfig.
	DataDir string
	// EtcdUnsafeNoFsync makes the embedded etcd skip fsync, for tests and benchmarks only.
	// Local mode embeds etcd unless --etcd-servers names an external one.
	EtcdUnsafeNoFsync bool

	// HistoryRepairGracePeriod is how long a missing current revision is left to
	// the request that should write it before the reconciler restores it.
	HistoryRepairGracePeriod time.Duration
	// HistoryMaxBytes bounds the entries of the revisions one ConfigSet keeps.
	HistoryMaxBytes int64
	// RecordHistory writes a ConfigRevision for every change; turning it off
	// exists only to measure what history costs.
	RecordHistory bool

	// Out receives the lines a person starting the server wants to read.
	Out io.Writer
}

// NewOptions returns options with Capstan's defaults.
func NewOptions(out io.Writer) *Options {
	o := &Options{
		Recommended: genericoptions.NewRecommendedOptions(defaultEtcdPrefix,
			scheme.Codecs.LegacyCodec(v1beta1.SchemeGroupVersion)),
		ServerRun: genericoptions.NewServerRunOptions(),
		Mode:      ModeAggregated,
		DataDir:   ".capstan",
		Out:       out,

		HistoryRepairGracePeriod: history.DefaultRepairGrace,
		HistoryMaxBytes:          history.DefaultMaxBytes,
		RecordHistory:            true,
	}
	o.Recommended.SecureServing.BindPort = defaultSecurePort
	configpolicy.Register(o.Recommended.Admission.Plugins)
	// ResourceQuota comes last, as in kube-apiserver: a write is charged only
	// once every other plugin has let it through. It is on by default in
	// aggregated mode, where the cluster's ResourceQuotas apply to Capstan's
	// resources only if Capstan enforces them: kube-apiserver proxies the
	// requests without admitting them.
	resourcequota.Register(o.Recommended.Admission.Plugins)
	o.Recommended.Admission.RecommendedPluginOrder = append(o.Recommended.Admission.RecommendedPluginOrder,
		configpolicy.PluginName, resourcequota.PluginName)
	// Capstan deletes a ConfigSet's revisions itself; the garbage collector's
	// finalizers would leave ConfigSets terminating where no collector runs,
	// and it could not strip owner references from read-only revisions.
	o.Recommended.Etcd.EnableGarbageCollection = false
	// Requests that wait on etcd must give up before clients do.
	o.ServerRun.RequestTimeout = 60 * time.Second
	return o
}

// Flags returns the flags grouped into named sets for help output.
func (o *Options) Flags() cliflag.NamedFlagSets {
	var fss cliflag.NamedFlagSets
	fs := fss.FlagSet("capstan")
	fs.StringVar(&o.Mode, "mode", o.Mode, "How to run: 'local' (embedded etcd, generated PKI, one admin; for development) or 'aggregated' (behind kube-apiserver, external etcd, delegated auth).")
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "Local mode: folder for the embedded etcd's data, the generated CA, certificates, encryption key and kubeconfig. Survives restarts.")
	fs.DurationVar(&o.HistoryRepairGracePeriod, "history-repair-grace-period", o.HistoryRepairGracePeriod, "How long a ConfigSet's current revision may be missing before the history reconciler restores it; the request that made the change normally writes it within milliseconds.")
	fs.Int64Var(&o.HistoryMaxBytes, "history-max-bytes", o.HistoryMaxBytes, "The most bytes of entries (keys and values) the kept revisions of one ConfigSet may hold together. Beyond it the oldest revisions are pruned, whatever the ConfigSet's revisionHistoryLimit; the current revision is always kept.")
	fs.BoolVar(&o.RecordHistory, "record-history", o.RecordHistory, "Write a ConfigRevision for every change of a ConfigSet's entries. Turning it off disables history, rollback and the history reconciler; it exists to measure what history costs.")
	fs.BoolVar(&o.EtcdUnsafeNoFsync, "embedded-etcd-unsafe-no-fsync", o.EtcdUnsafeNoFsync, "Local mode: the embedded etcd does not fsync. Loses data on power failure; for tests and benchmarks only.")

	o.ServerRun.AddUniversalFlags(fss.FlagSet("generic"))
	o.Recommended.Etcd.AddFlags(fss.FlagSet("etcd"))
	o.Recommended.SecureServing.AddFlags(fss.FlagSet("secure serving"))
	o.Recommended.Authentication.AddFlags(fss.FlagSet("authentication"))
	o.Recommended.Authorization.AddFlags(fss.FlagSet("authorization"))
	o.Recommended.Audit.AddFlags(fss.FlagSet("auditing"))
	o.Recommended.Features.AddFlags(fss.FlagSet("features"))
	o.Recommended.CoreAPI.AddFlags(fss.FlagSet("core api"))
	o.Recommended.Admission.AddFlags(fss.FlagSet("admission"))
	o.Recommended.EgressSelector.AddFlags(fss.FlagSet("egress selector"))
	o.Recommended.Traces.AddFlags(fss.FlagSet("traces"))
	return fss
}

// AddFlags adds every option to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	for _, f := range o.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
}

// Complete fills in what depends on other options.
func (o *Options) Complete() error {
	// Feature gates and the emulated version are final once flags are parsed.
	if err := o.ServerRun.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if err := o.ServerRun.Complete(); err != nil {
		return err
	}
	if o.Mode != ModeLocal {
		return nil
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	o.DataDir = dir
	if o.Recommended.SecureServing.BindAddress == nil || o.Recommended.SecureServing.BindAddress.IsUnspecified() {
		// Local mode trusts a single admin; it never listens beyond this machine.
		o.Recommended.SecureServing.BindAddress = net.ParseIP("127.0.0.1")
	}
	// There is no kube-apiserver to fetch flow-control configuration from; the
	// max-in-flight limits protect the server instead.
	o.Recommended.Features.EnablePriorityAndFairness = false
	// Nor is there a cluster to delegate to or admit against: local mode
	// brings its own authentication, authorizer and admission chain
	// (applyLocal), and these options, left nil, apply nothing.
	o.Recommended.CoreAPI = nil
	o.Recommended.Authentication = nil
	o.Recommended.Authorization = nil
	o.Recommended.Admission = nil
	return nil
}

// Validate checks the options for errors.
func (o *Options) Validate() error {
	var errs []error
	switch o.Mode {
	case ModeLocal:
	case ModeAggregated:
		errs = append(errs, o.Recommended.Validate()...)
	default:
		errs = append(errs, fmt.Errorf("--mode must be %q or %q, not %q", ModeLocal, ModeAggregated, o.Mode))
	}
	if ss := o.Recommended.SecureServing; ss.Listener == nil && (ss.BindPort < 1 || ss.BindPort > 65535) {
		// Port 0 turns secure serving off in k8s.io/apiserver; Capstan serves
		// only over HTTPS and its own informers use the loopback client.
		errs = append(errs, fmt.Errorf("--secure-port must be between 1 and 65535, not %d: Capstan serves only over HTTPS", ss.BindPort))
	}
	errs = append(errs, o.ServerRun.Validate()...)
	return utilerrors.NewAggregate(errs)
}
