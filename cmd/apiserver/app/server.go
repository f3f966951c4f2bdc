package app

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/generic"
	genericapiserver "k8s.io/apiserver/pkg/server"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/client-go/kubernetes"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/term"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"

	capstaninit "capstan.dev/capstan/pkg/admission/initializer"
	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver"
	"capstan.dev/capstan/pkg/apiserver/configsetjson"
	"capstan.dev/capstan/pkg/apiserver/frontproxy"
	"capstan.dev/capstan/pkg/apiserver/responsegzip"
	"capstan.dev/capstan/pkg/apiserver/scheme"
	clientset "capstan.dev/capstan/pkg/generated/clientset/versioned"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
	"capstan.dev/capstan/pkg/generated/openapi"
	"capstan.dev/capstan/pkg/quota"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
)

// informerResync replays the informer caches to their handlers, so that a
// repair missed on an event is retried; it reads memory, not etcd.
const informerResync = 10 * time.Minute

// NewCommand returns the capstan-apiserver command; it runs until ctx ends.
func NewCommand(ctx context.Context) *cobra.Command {
	o := NewOptions(os.Stdout)
	cmd := &cobra.Command{
		Use:   "capstan-apiserver",
		Short: "Serve config.capstan.dev: versioned configuration with history, rollback and policy",
		Long: "capstan-apiserver serves ConfigSets, ConfigRevisions and ConfigPolicies. " +
			"With --mode=local it runs alone with an embedded etcd; with --mode=aggregated it runs " +
			"behind kube-apiserver's aggregation layer.",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.SetContext(ctx)
	fss := o.Flags()
	for _, f := range fss.FlagSets {
		cmd.Flags().AddFlagSet(f)
	}
	cols, _, _ := term.TerminalSize(cmd.OutOrStdout())
	cliflag.SetUsageAndHelpFunc(cmd, fss, cols)
	return cmd
}

// Run starts the server and blocks until ctx ends and the server has shut down.
func (o *Options) Run(ctx context.Context) error {
	cfg, cleanup, err := o.Config(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	server, err := cfg.Complete().New()
	if err != nil {
		return err
	}
	// After New: its stores start etcd's feature detection with their own
	// clients, which the check's short-lived one must not do for them.
	if err := o.checkStoredObjectsDecrypt(ctx, cfg.GenericConfig.RESTOptionsGetter); err != nil {
		server.GenericAPIServer.Destroy()
		return err
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// storedObjectsCheckTimeout bounds checkStoredObjectsDecrypt: when etcd does
// not answer in time, start-up goes on and /readyz reports etcd.
const storedObjectsCheckTimeout = 5 * time.Second

// checkStoredObjectsDecrypt reads each resource's stored objects, up to the
// first that can be read, through the storage the server is about to serve
// from, encryption at rest included, and fails start-up when one cannot be
// decrypted or decoded. Started with an EncryptionConfiguration that lacks the
// key its data was written with (a restored backup without its key, local mode
// on a restored etcd folder without its encryption-config.yaml), Capstan would
// otherwise run unready for ever, answer 500 to every read and log a line per
// object every second, some as cryptic as "output array was not large enough".
// The error names the object's etcd key and the configuration's path, never a
// value or key material. Reading so little, it catches a configuration without
// the key, not one object left behind under a key removed since. Anything
// else, such as etcd not answering yet, is logged and left to /readyz.
//
// It must run after the server's stores exist: the first store built for an
// etcd endpoint detects, once per process and with its own client, whether the
// endpoint supports watch progress requests (which consistent reads from the
// watch cache need); a store of this check, closed at once, would leave that
// undetected, and so off, for the life of the process.
func (o *Options) checkStoredObjectsDecrypt(ctx context.Context, getter generic.RESTOptionsGetter) error {
	ctx, cancel := context.WithTimeout(ctx, storedObjectsCheckTimeout)
	defer cancel()
	encryption := "no --encryption-provider-config"
	if path := o.Recommended.Etcd.EncryptionProviderConfigFilepath; path != "" {
		encryption = "the encryption configuration " + path
	}
	kinds := []struct {
		resource             string
		newFunc, newListFunc func() runtime.Object
	}{
		{"configsets", func() runtime.Object { return &config.ConfigSet{} }, func() runtime.Object { return &config.ConfigSetList{} }},
		{"configrevisions", func() runtime.Object { return &config.ConfigRevision{} }, func() runtime.Object { return &config.ConfigRevisionList{} }},
		{"configpolicies", func() runtime.Object { return &config.ConfigPolicy{} }, func() runtime.Object { return &config.ConfigPolicyList{} }},
	}
	for _, k := range kinds {
		resource := config.Resource(k.resource)
		opts, err := getter.GetRESTOptions(resource, k.newFunc())
		if err != nil {
			return err
		}
		prefix := "/" + strings.TrimPrefix(opts.ResourcePrefix, "/")
		// One read needs no compactor beside the server's.
		storageConfig := *opts.StorageConfig
		storageConfig.CompactionInterval = 0
		store, destroy, err := generic.NewRawStorage(&storageConfig, k.newFunc, k.newListFunc, prefix)
		if err != nil {
			return err
		}
		first := storage.SelectionPredicate{Label: labels.Everything(), Field: fields.Everything(), Limit: 1}
		err = store.GetList(ctx, prefix, storage.ListOptions{Recursive: true, Predicate: first}, k.newListFunc())
		destroy()
		switch {
		case err == nil:
		case storage.IsCorruptObject(err) || apierrors.ReasonForError(err) == metav1.StatusReasonStoreReadError:
			return fmt.Errorf("stored %s cannot be decrypted or decoded with %s; start Capstan with the EncryptionConfiguration whose keys wrote them (a restored backup needs the keys of the server it was taken from): %w",
				resource, encryption, err)
		default:
			klog.Warningf("Could not read stored %s at start-up to check that they decrypt: %v", resource, err)
			return nil
		}
	}
	return nil
}

// Config builds the server configuration. In local mode it also starts the
// embedded etcd; cleanup stops what Config started and must be called once the
// server has stopped.
func (o *Options) Config(ctx context.Context) (*apiserver.Config, func(), error) {
	cleanup := func() {}
	serverConfig := genericapiserver.NewRecommendedConfig(scheme.Codecs)

	namer := openapinamer.NewDefinitionNamer(scheme.Scheme)
	serverConfig.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openapi.GetOpenAPIDefinitions, namer)
	serverConfig.OpenAPIConfig.Info.Title = "Capstan"
	serverConfig.OpenAPIConfig.Info.Version = version.Get().GitVersion
	serverConfig.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openapi.GetOpenAPIDefinitions, namer)
	serverConfig.OpenAPIV3Config.Info.Title = "Capstan"
	serverConfig.OpenAPIV3Config.Info.Version = version.Get().GitVersion
	// Large gets and lists of the group are compressed by responsegzip, the
	// rest of the chain as k8s.io/apiserver builds it.
	buildChain := serverConfig.BuildHandlerChainFunc
	serverConfig.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		return buildChain(responsegzip.WithCompression(h, config.GroupName), c)
	}

	if err := o.ServerRun.ApplyTo(&serverConfig.Config); err != nil {
		return nil, cleanup, err
	}

	// Capstan's own informers (ConfigPolicies for admission, ConfigSets for
	// the history reconciler) read through the loopback client, which exists
	// once secure serving is configured. Revisions have no informer: the
	// history keeps its own index of their summaries, read in-process. The
	// initializer is built once: local mode asks for it again to build its
	// own admission chain.
	var configInformers informers.SharedInformerFactory
	var configInitializers []admission.PluginInitializer
	o.Recommended.ExtraAdmissionInitializers = func(c *genericapiserver.RecommendedConfig) ([]admission.PluginInitializer, error) {
		if configInitializers != nil {
			return configInitializers, nil
		}
		client, err := clientset.NewForConfig(c.LoopbackClientConfig)
		if err != nil {
			return nil, err
		}
		configInformers = informers.NewSharedInformerFactoryWithOptions(client, informerResync, informers.WithTransform(trimCached))
		configInitializers = []admission.PluginInitializer{capstaninit.New(configInformers, quota.NewConfiguration(o.RecordHistory))}
		return configInitializers, nil
	}

	// The one difference between the modes before the options apply is
	// where etcd, the serving certificate and the encryption configuration
	// come from: local mode starts an embedded etcd and writes its own PKI
	// and key into --data-dir and fills the options in; aggregated mode
	// takes them from flags.
	var prepared *localPrepared
	if o.Mode == ModeLocal {
		var err error
		if prepared, cleanup, err = o.prepareLocal(ctx); err != nil {
			return nil, cleanup, err
		}
	}
	// The storage factory kube-apiserver uses honours --storage-media-type;
	// the simple one the options apply takes the codec as given. The codec is
	// therefore built here: it writes the v1beta1 form in that media type and
	// reads any of them, so objects stored as JSON and as protobuf can sit
	// side by side.
	// Stored as JSON, a ConfigSet is written by configsetjson, as responses
	// are: the same bytes as encoding/json's, at a third of the cost; and
	// ConfigSets and ConfigRevisions are read back by it, each write's
	// objects and watch events, at a sixth of the serializer's cost.
	codecConfig := serverstorage.StorageCodecConfig{
		StorageMediaType:  o.Recommended.Etcd.DefaultStorageMediaType,
		StorageSerializer: scheme.Codecs,
		StorageVersion:    configv1beta1.SchemeGroupVersion,
		MemoryVersion:     config.SchemeGroupVersion,
		Config:            o.Recommended.Etcd.StorageConfig,
	}
	if mediaType, _, err := mime.ParseMediaType(codecConfig.StorageMediaType); err == nil && mediaType == runtime.ContentTypeJSON {
		codecConfig.EncoderDecoratorFn = configsetjson.StorageEncoder
		codecConfig.DecoderDecoratorFn = configsetjson.StorageDecoders
	}
	storageCodec, _, err := serverstorage.NewStorageCodec(codecConfig)
	if err != nil {
		return nil, cleanup, fmt.Errorf("--storage-media-type: %w", err)
	}
	o.Recommended.Etcd.StorageConfig.Codec = storageCodec
	// As sample-apiserver does, once, in both modes. In local mode the
	// delegating authentication, authorization, admission and core API
	// options are nil (Complete) and apply nothing; applyLocal puts its own
	// in place afterwards.
	if err := o.Recommended.ApplyTo(serverConfig); err != nil {
		return nil, cleanup, err
	}
	var kubeClient kubernetes.Interface
	if o.Mode == ModeLocal {
		if err := o.applyLocal(serverConfig, prepared); err != nil {
			return nil, cleanup, err
		}
	} else {
		if serverConfig.ClientConfig == nil {
			return nil, cleanup, fmt.Errorf("aggregated mode needs the cluster's core API: set --kubeconfig or run in a pod")
		}
		var err error
		if kubeClient, err = kubernetes.NewForConfig(serverConfig.ClientConfig); err != nil {
			return nil, cleanup, err
		}
		// Requests kube-apiserver proxied were authorized there; the
		// handler chain does not ask it again.
		frontproxy.Apply(&serverConfig.Config)
	}
	return &apiserver.Config{
		GenericConfig: serverConfig,
		ExtraConfig: apiserver.ExtraConfig{
			ConfigInformers:     configInformers,
			NamespacesAvailable: o.Mode != ModeLocal,
			ServeCoreDiscovery:  o.Mode == ModeLocal,
			History:             history.Options{MaxBytes: o.HistoryMaxBytes, RepairGrace: o.HistoryRepairGracePeriod},
			WithoutHistory:      !o.RecordHistory,
			KubeClient:          kubeClient,
		},
	}, cleanup, nil
}

// trimCached drops from the objects Capstan's informers keep what no reader of
// those informers uses: the entries of ConfigSets (the history reconciler
// compares names, UIDs, revision numbers and limits, and reads a ConfigSet from
// storage before it writes a revision from it) and managedFields. The watch
// cache already holds every ConfigSet in full; without this the informers held
// a second copy, decrypted secrets included.
func trimCached(obj interface{}) (interface{}, error) {
	switch o := obj.(type) {
	case *configv1beta1.ConfigSet:
		o.Spec.Data, o.Spec.SecretData = nil, nil
		o.ManagedFields = nil
	case *configv1beta1.ConfigPolicy:
		o.ManagedFields = nil
	}
	return obj, nil
}
