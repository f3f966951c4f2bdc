// Package apiserver builds Capstan's generic API server from a completed configuration.
package apiserver

import (
	"fmt"

	"k8s.io/apiserver/pkg/admission"
	genericapiserver "k8s.io/apiserver/pkg/server"

	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
	configrest "capstan.dev/capstan/pkg/registry/config/rest"
)

// ExtraConfig holds Capstan's own configuration beyond the generic server's.
type ExtraConfig struct {
	// ConfigInformers is the shared informer factory of config.capstan.dev over
	// the loopback client; the server starts it once it serves.
	ConfigInformers informers.SharedInformerFactory
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

	provider := configrest.StorageProvider{Scheme: Scheme, Codecs: Codecs}
	if chain, ok := c.GenericConfig.AdmissionControl.(admission.ValidationInterface); ok && chain != nil {
		provider.Admit = chainUpdateAdmitter{chain: chain, scheme: Scheme}
	}
	apiGroupInfo, storage, err := provider.NewAPIGroupInfo(c.GenericConfig.RESTOptionsGetter)
	if err != nil {
		return nil, err
	}
	if err := genericServer.InstallAPIGroup(apiGroupInfo); err != nil {
		return nil, fmt.Errorf("installing config.capstan.dev: %w", err)
	}
	if f := c.ExtraConfig.ConfigInformers; f != nil {
		err := genericServer.AddPostStartHook("start-capstan-informers", func(ctx genericapiserver.PostStartHookContext) error {
			f.Start(ctx.Done())
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return &CapstanServer{GenericAPIServer: genericServer, Storage: storage}, nil
}
