// Package rest assembles the storage of every config.capstan.dev resource into
// the APIGroupInfo the generic server installs.
package rest

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/configsetjson"
	"capstan.dev/capstan/pkg/apiserver/configsetproto"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
	configpolicystorage "capstan.dev/capstan/pkg/registry/config/configpolicy/storage"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	configrevisionstorage "capstan.dev/capstan/pkg/registry/config/configrevision/storage"
	configsetstorage "capstan.dev/capstan/pkg/registry/config/configset/storage"
	"capstan.dev/capstan/pkg/registry/storagedecorator"
)

// StorageProvider builds the REST storage of the config.capstan.dev group.
type StorageProvider struct {
	Scheme *runtime.Scheme
	Codecs serializer.CodecFactory
	// Admit validates the ConfigSet update a rollback makes; nil admits everything.
	Admit configsetstorage.UpdateAdmitter
	// Authorizer decides whether callers of the ConfigSet subresources that
	// answer with the whole ConfigSet may read it.
	Authorizer authorizer.Authorizer
	// WithoutHistory serves ConfigSets without recording revisions, to measure
	// what history costs; rollback then finds nothing to restore.
	WithoutHistory bool
	// History configures the history of ConfigSets.
	History history.Options
}

// Storage is what NewAPIGroupInfo built, for the parts of the server that write
// through the stores directly rather than over HTTP.
type Storage struct {
	History         *history.History
	ConfigSets      configsetstorage.ConfigSetStorage
	ConfigRevisions *genericregistry.Store
	ConfigPolicies  configpolicystorage.ConfigPolicyStorage
}

// NewAPIGroupInfo returns the group's APIGroupInfo with both versions served
// from the same stores.
func (p StorageProvider) NewAPIGroupInfo(optsGetter generic.RESTOptionsGetter) (*genericapiserver.APIGroupInfo, *Storage, error) {
	// NewDefaultAPIGroupInfo's serializer offers JSON, YAML, protobuf (the
	// versioned types have generated protobuf code) and CBOR when the
	// CBORServingAndStorage feature gate is on, and encodes lists item by item
	// (streaming). Its JSON encoder is replaced for v1beta1 ConfigSets and
	// their lists by one that writes the same bytes at a third of the cost,
	// and both JSON and protobuf lists keep their items encoded between lists.
	apiGroupInfo := genericapiserver.NewDefaultAPIGroupInfo(config.GroupName, p.Scheme, runtime.NewParameterCodec(p.Scheme), p.Codecs)
	jsonItems, protobufItems := itemcache.New("json", itemcache.DefaultBudget), itemcache.New("protobuf", itemcache.DefaultBudget)
	apiGroupInfo.NegotiatedSerializer = configsetproto.NegotiatedSerializer(configsetjson.NegotiatedSerializer(apiGroupInfo.NegotiatedSerializer, jsonItems), protobufItems)
	forget := func(cs *config.ConfigSet) {
		jsonItems.Forget(cs.Namespace, cs.Name, cs.UID)
		protobufItems.Forget(cs.Namespace, cs.Name, cs.UID)
	}
	raw := optsGetter
	optsGetter = storagedecorator.RESTOptionsGetter{RESTOptionsGetter: raw}

	// Revisions are served from etcd, without a watch cache: a replica's
	// memory must not grow with the number or the size of revisions, which one
	// tenant decides. The history keeps only summaries of them.
	revisions, err := configrevisionstorage.NewStore(p.Scheme, storagedecorator.RESTOptionsGetter{RESTOptionsGetter: uncached{raw}})
	if err != nil {
		return nil, nil, fmt.Errorf("building configrevisions storage: %w", err)
	}
	histOpts := p.History
	if histOpts.RevisionStorage, err = history.RevisionStorageFrom(raw); err != nil {
		return nil, nil, fmt.Errorf("building configrevisions storage: %w", err)
	}
	hist := history.New(revisions, histOpts)
	var recorder history.Recorder = hist
	// A change of a ConfigSet and its revision are written in one etcd transaction.
	var configSetOpts generic.RESTOptionsGetter = storagedecorator.RESTOptionsGetter{RESTOptionsGetter: hist.ConfigSetStorage(raw)}
	if p.WithoutHistory {
		recorder = history.Disabled{}
		configSetOpts = optsGetter
	}
	configSets, err := configsetstorage.NewStorage(p.Scheme, configSetOpts, recorder, configsetstorage.Options{Admit: p.Admit, Authorizer: p.Authorizer, Deleted: forget})
	if err != nil {
		return nil, nil, fmt.Errorf("building configsets storage: %w", err)
	}
	policies, err := configpolicystorage.NewStorage(p.Scheme, optsGetter)
	if err != nil {
		return nil, nil, fmt.Errorf("building configpolicies storage: %w", err)
	}

	resources := map[string]rest.Storage{
		"configsets":            configSets.ConfigSet,
		"configsets/status":     configSets.Status,
		"configsets/rollback":   configSets.Rollback,
		"configrevisions":       configrevisionstorage.NewREST(revisions),
		"configpolicies":        policies.ConfigPolicy,
		"configpolicies/status": policies.Status,
	}
	apiGroupInfo.VersionedResourcesStorageMap[v1beta1.SchemeGroupVersion.Version] = resources
	apiGroupInfo.VersionedResourcesStorageMap[v1alpha1.SchemeGroupVersion.Version] = resources

	return &apiGroupInfo, &Storage{History: hist, ConfigSets: configSets, ConfigRevisions: revisions, ConfigPolicies: policies}, nil
}

// uncached gives stores that read and watch etcd directly, without a watch cache.
type uncached struct {
	generic.RESTOptionsGetter
}

func (g uncached) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	opts.Decorator = generic.UndecoratedStorage
	return opts, err
}
