// Package storage wires the ConfigSet strategies to etcd through genericregistry.Store.
package storage

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configset"
	"capstan.dev/capstan/pkg/registry/config/status"
)

// ConfigSetStorage holds the REST storage of the ConfigSet resource and its subresources.
type ConfigSetStorage struct {
	ConfigSet *REST
	Status    *status.REST
}

// NewStorage returns the REST storage of ConfigSets and their status subresource.
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter) (ConfigSetStorage, error) {
	strategy := configset.NewStrategy(scheme)
	statusStrategy := configset.NewStatusStrategy(strategy)

	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &config.ConfigSet{} },
		NewListFunc:               func() runtime.Object { return &config.ConfigSetList{} },
		PredicateFunc:             configset.MatchConfigSet,
		DefaultQualifiedResource:  config.Resource("configsets"),
		SingularQualifiedResource: config.Resource("configset"),

		CreateStrategy:      strategy,
		UpdateStrategy:      strategy,
		DeleteStrategy:      strategy,
		ResetFieldsStrategy: strategy,

		TableConvertor: tableConvertor,
	}
	options := &generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: configset.GetAttrs}
	if err := store.CompleteWithOptions(options); err != nil {
		return ConfigSetStorage{}, fmt.Errorf("configsets storage: %w", err)
	}

	return ConfigSetStorage{
		ConfigSet: &REST{Store: store},
		Status:    status.NewREST(store, statusStrategy),
	}, nil
}

// REST is the main ConfigSet endpoint.
type REST struct {
	*genericregistry.Store
}

var (
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
)

// ShortNames lets `kubectl get cfgs` work.
func (r *REST) ShortNames() []string { return []string{"cfgs"} }

// Categories puts ConfigSets into `kubectl get capstan`.
func (r *REST) Categories() []string { return []string{"capstan"} }
