// Package apiserver builds Capstan's generic API server from a completed configuration.
package apiserver

import (
	"context"
	"fmt"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"

	"k8s.io/apiserver/pkg/admission"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apiserver/scheme"
	"capstan.dev/capstan/pkg/controller/configpolicystatus"
	"capstan.dev/capstan/pkg/controller/historyreconciler"
	"capstan.dev/capstan/pkg/controller/revisionquota"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	configrest "capstan.dev/capstan/pkg/registry/config/rest"
)

// ExtraConfig holds Capstan's own configuration beyond the generic server's.
type ExtraConfig struct {
	// ConfigInformers is the shared informer factory of config.capstan.dev over
	// the loopback client; the server starts it once it serves.
	ConfigInformers informers.SharedInformerFactory
	// NamespacesAvailable is false in local mode, where there is no cluster to
	// read namespace labels from.
	NamespacesAvailable bool
	// History configures the history of ConfigSets: its byte budget and how
	// long the reconciler lets a request write its own revision before
	// restoring a missing one.
	History history.Options
	// WithoutHistory serves ConfigSets without revisions and runs no history
	// reconciler; it exists to measure the cost of history in benchmarks.
	WithoutHistory bool
	// KubeClient reaches the cluster's core API in aggregated mode, where
	// Capstan keeps the revision usage of ResourceQuotas; nil in local mode.
	KubeClient kubernetes.Interface
	// ServeCoreDiscovery serves an empty core group (/api, /api/v1) in local
	// mode, where no kube-apiserver does, so that kubectl maps kind List.
	ServeCoreDiscovery bool
}

// Config is the configuration of a Capstan server.
type Config struct {
	GenericConfig *genericapiserver.RecommendedConfig
	ExtraConfig   ExtraConfig
}

type completedConfig struct {
	GenericConfig genericapiserver.CompletedConfig
	ExtraConfig   *ExtraConfig
}

// CompletedConfig is a Config whose defaults are filled in; only it can build a server.
type CompletedConfig struct {
	*completedConfig
}

// CapstanServer is a running Capstan: the generic server with the group installed.
type CapstanServer struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
	// Storage gives in-process access to the stores, for server-side writers.
	Storage *configrest.Storage
}

// Complete fills in the defaults the generic server needs.
func (c *Config) Complete() CompletedConfig {
	return CompletedConfig{&completedConfig{
		GenericConfig: c.GenericConfig.Complete(),
		ExtraConfig:   &c.ExtraConfig,
	}}
}

// New builds the server and installs config.capstan.dev.
func (c CompletedConfig) New() (*CapstanServer, error) {
	genericServer, err := c.GenericConfig.New("capstan-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, fmt.Errorf("building the generic server: %w", err)
	}

	provider := configrest.StorageProvider{Scheme: scheme.Scheme, Codecs: scheme.Codecs, WithoutHistory: c.ExtraConfig.WithoutHistory, History: c.ExtraConfig.History,
		Authorizer: c.GenericConfig.Authorization.Authorizer}
	if chain, ok := c.GenericConfig.AdmissionControl.(admission.ValidationInterface); ok && chain != nil {
		provider.Admit = chainUpdateAdmitter{chain: chain, scheme: scheme.Scheme}
	}
	apiGroupInfo, storage, err := provider.NewAPIGroupInfo(c.GenericConfig.RESTOptionsGetter)
	if err != nil {
		return nil, err
	}
	if err := genericServer.InstallAPIGroup(apiGroupInfo); err != nil {
		return nil, fmt.Errorf("installing config.capstan.dev: %w", err)
	}
	if c.ExtraConfig.ServeCoreDiscovery {
		installEmptyCoreGroup(genericServer)
	}
	if f := c.ExtraConfig.ConfigInformers; f != nil {
		if err := c.addControllers(genericServer, f, storage); err != nil {
			return nil, err
		}
	}
	return &CapstanServer{GenericAPIServer: genericServer, Storage: storage}, nil
}

// addControllers registers the history reconciler, the ConfigPolicy status
// controller and, in aggregated mode, the revision quota controller on the
// informers, and starts all of them once the server serves.
func (c CompletedConfig) addControllers(server *genericapiserver.GenericAPIServer, f informers.SharedInformerFactory, storage *configrest.Storage) error {
	var reconciler *historyreconciler.Reconciler
	if !c.ExtraConfig.WithoutHistory {
		var err error
		reconciler, err = historyreconciler.NewReconciler(f, storage.History, storeConfigSetGetter{storage.ConfigSets.ConfigSet.Store})
		if err != nil {
			return err
		}
	}
	var revisionQuota *revisionquota.Controller
	if reconciler != nil && c.ExtraConfig.KubeClient != nil && c.GenericConfig.SharedInformerFactory != nil {
		var err error
		revisionQuota, err = revisionquota.New(c.GenericConfig.SharedInformerFactory.Core().V1().ResourceQuotas(),
			c.ExtraConfig.KubeClient.CoreV1(), storage.History)
		if err != nil {
			return err
		}
	}
	policyStatus, err := configpolicystatus.New(f, storage.ConfigPolicies.Status, c.ExtraConfig.NamespacesAvailable)
	if err != nil {
		return err
	}
	// Ready only once admission and the reconciler read from synced caches:
	// before that, ConfigPolicy admission refuses every ConfigSet write.
	synced := []cache.InformerSynced{
		f.Config().V1beta1().ConfigPolicies().Informer().HasSynced,
	}
	if reconciler != nil {
		synced = append(synced, f.Config().V1beta1().ConfigSets().Informer().HasSynced, storage.History.HasSynced)
	}
	err = server.AddReadyzChecks(healthz.NamedCheck("capstan-informer-sync", func(*http.Request) error {
		for _, s := range synced {
			if !s() {
				return fmt.Errorf("config.capstan.dev informers have not synced yet")
			}
		}
		return nil
	}))
	if err != nil {
		return err
	}
	return server.AddPostStartHook("start-capstan-controllers", func(ctx genericapiserver.PostStartHookContext) error {
		f.Start(ctx.Done())
		if reconciler != nil {
			go storage.History.Run(ctx)
			go reconciler.Run(ctx, 2)
		}
		if revisionQuota != nil {
			go revisionQuota.Run(ctx, 1)
		}
		go policyStatus.Run(ctx)
		return nil
	})
}

// storeConfigSetGetter reads ConfigSets from storage for the reconciler.
type storeConfigSetGetter struct {
	store *genericregistry.Store
}

func (g storeConfigSetGetter) Get(ctx context.Context, namespace, name string) (*config.ConfigSet, error) {
	return g.get(ctx, namespace, name, "")
}

// GetCached reads from the watch cache: resourceVersion "0" is any version.
func (g storeConfigSetGetter) GetCached(ctx context.Context, namespace, name string) (*config.ConfigSet, error) {
	return g.get(ctx, namespace, name, "0")
}

func (g storeConfigSetGetter) get(ctx context.Context, namespace, name, rv string) (*config.ConfigSet, error) {
	obj, err := g.store.Get(genericapirequest.WithNamespace(ctx, namespace), name, &metav1.GetOptions{ResourceVersion: rv})
	if err != nil {
		return nil, err
	}
	return obj.(*config.ConfigSet), nil
}
