// Package app is capstan-controller-manager, shaped like
// kube-controller-manager: component-base options, leader election through a
// coordination.k8s.io Lease, /healthz and /metrics behind delegated
// authentication and authorization, and controllers that run only while this
// replica leads.
package app

import (
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserveroptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	cliflag "k8s.io/component-base/cli/flag"
	componentbaseconfig "k8s.io/component-base/config"
	componentbaseoptions "k8s.io/component-base/config/options"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// Port is where /healthz and /metrics are served by default.
const Port = 10260

// Options are the flags of capstan-controller-manager.
type Options struct {
	// Kubeconfig reaches kube-apiserver; empty means the in-cluster config.
	Kubeconfig string
	// KubeAPIQPS and KubeAPIBurst limit the requests to kube-apiserver.
	KubeAPIQPS   float32
	KubeAPIBurst int32
	// ConcurrentSyncs is how many ConfigSets are synced at once.
	ConcurrentSyncs int
	// Resync replays the informer caches to the handlers this often.
	Resync time.Duration

	LeaderElection componentbaseconfig.LeaderElectionConfiguration
	SecureServing  *apiserveroptions.SecureServingOptions
	Authentication *apiserveroptions.DelegatingAuthenticationOptions
	Authorization  *apiserveroptions.DelegatingAuthorizationOptions
	Logs           *logs.Options
}

// NewOptions returns the defaults: a leader-elected controller manager with
// its lease in capstan-system, serving on Port with a self-signed certificate.
func NewOptions() *Options {
	o := &Options{
		// A change of a ConfigSet costs about 15 requests: its pair, one
		// update per consuming workload, its status. At 50 or 100 requests
		// per second, 10 changes/s of ConfigSets with 10 Deployments each
		// queued on the client for seconds (make bench, wl: p99 26 s and
		// 6 s); at 200 its p99 was 81 ms. kube-apiserver's priority and
		// fairness still bounds the controller's share.
		KubeAPIQPS:      200,
		KubeAPIBurst:    400,
		ConcurrentSyncs: 5,
		Resync:          10 * time.Minute,
		LeaderElection: componentbaseconfig.LeaderElectionConfiguration{
			LeaderElect:       true,
			LeaseDuration:     metav1.Duration{Duration: 15 * time.Second},
			RenewDeadline:     metav1.Duration{Duration: 10 * time.Second},
			RetryPeriod:       metav1.Duration{Duration: 2 * time.Second},
			ResourceLock:      resourcelock.LeasesResourceLock,
			ResourceName:      "capstan-controller-manager",
			ResourceNamespace: "capstan-system",
		},
		SecureServing:  apiserveroptions.NewSecureServingOptions(),
		Authentication: apiserveroptions.NewDelegatingAuthenticationOptions(),
		Authorization:  apiserveroptions.NewDelegatingAuthorizationOptions(),
		Logs:           logs.NewOptions(),
	}
	o.SecureServing.BindPort = Port
	o.SecureServing.ServerCert.CertDirectory = ""
	o.SecureServing.ServerCert.PairName = "capstan-controller-manager"
	// As kube-controller-manager: outside a cluster without these flags,
	// only the always-allowed paths answer.
	o.Authentication.RemoteKubeConfigFileOptional = true
	o.Authorization.RemoteKubeConfigFileOptional = true
	o.Authorization.AlwaysAllowPaths = []string{"/healthz", "/readyz", "/livez"}
	return o
}

// Flags returns the flags by section, for the help text.
func (o *Options) Flags() cliflag.NamedFlagSets {
	var fss cliflag.NamedFlagSets
	fs := fss.FlagSet("generic")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig for kube-apiserver; empty uses the in-cluster configuration.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Requests per second to kube-apiserver.")
	fs.Int32Var(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of requests to kube-apiserver.")
	fs.IntVar(&o.ConcurrentSyncs, "concurrent-configset-syncs", o.ConcurrentSyncs, "How many ConfigSets are synced at once.")
	fs.DurationVar(&o.Resync, "min-resync-period", o.Resync, "How often the informer caches are replayed to the controllers.")
	componentbaseoptions.BindLeaderElectionFlags(&o.LeaderElection, fss.FlagSet("leader election"))
	o.SecureServing.AddFlags(fss.FlagSet("secure serving"))
	o.Authentication.AddFlags(fss.FlagSet("authentication"))
	o.Authorization.AddFlags(fss.FlagSet("authorization"))
	logsapi.AddFlags(o.Logs, fss.FlagSet("logs"))
	return fss
}

// Validate reports every invalid flag.
func (o *Options) Validate() error {
	var errs []error
	if o.ConcurrentSyncs < 1 {
		errs = append(errs, fmt.Errorf("--concurrent-configset-syncs must be at least 1, not %d", o.ConcurrentSyncs))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		errs = append(errs, errors.New("--kube-api-qps must be positive and --kube-api-burst at least 1"))
	}
	if le := o.LeaderElection; le.LeaderElect {
		if le.LeaseDuration.Duration <= le.RenewDeadline.Duration {
			errs = append(errs, errors.New("--leader-elect-lease-duration must be longer than --leader-elect-renew-deadline"))
		}
		if le.RenewDeadline.Duration <= le.RetryPeriod.Duration {
			errs = append(errs, errors.New("--leader-elect-renew-deadline must be longer than --leader-elect-retry-period"))
		}
		if le.ResourceLock != resourcelock.LeasesResourceLock {
			errs = append(errs, fmt.Errorf("--leader-elect-resource-lock must be %q", resourcelock.LeasesResourceLock))
		}
	}
	errs = append(errs, o.SecureServing.Validate()...)
	errs = append(errs, o.Authentication.Validate()...)
	errs = append(errs, o.Authorization.Validate()...)
	if err := logsapi.ValidateAndApply(o.Logs, nil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
