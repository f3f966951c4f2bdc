// Package storage wires the ConfigPolicy strategies to etcd through genericregistry.Store.
package storage

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configpolicy"
	"capstan.dev/capstan/pkg/registry/status"
)

// ConfigPolicyStorage holds the REST storage of the ConfigPolicy resource and its status.
type ConfigPolicyStorage struct {
	ConfigPolicy *REST
	Status       *status.REST
}

// NewStorage returns the REST storage of ConfigPolicies and their status subresource.
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter) (ConfigPolicyStorage, error) {
	strategy := configpolicy.NewStrategy(scheme)
	statusStrategy := configpolicy.NewStatusStrategy(strategy)

	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &config.ConfigPolicy{} },
		NewListFunc:               func() runtime.Object { return &config.ConfigPolicyList{} },
		PredicateFunc:             configpolicy.MatchConfigPolicy,
		DefaultQualifiedResource:  config.Resource("configpolicies"),
		SingularQualifiedResource: config.Resource("configpolicy"),

		CreateStrategy:      strategy,
		UpdateStrategy:      strategy,
		DeleteStrategy:      strategy,
		ResetFieldsStrategy: strategy,

		TableConvertor: tableConvertor,
	}
	options := &generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: configpolicy.GetAttrs}
	if err := store.CompleteWithOptions(options); err != nil {
		return ConfigPolicyStorage{}, fmt.Errorf("configpolicies storage: %w", err)
	}

	return ConfigPolicyStorage{
		ConfigPolicy: &REST{Store: store},
		Status:       status.NewREST(store, statusStrategy),
	}, nil
}

// REST is the main ConfigPolicy endpoint.
type REST struct {
	*genericregistry.Store
}

var (
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
)

// ShortNames lets `kubectl get cfgpol` work.
func (r *REST) ShortNames() []string { return []string{"cfgpol"} }

// Categories puts ConfigPolicies into `kubectl get capstan`.
func (r *REST) Categories() []string { return []string{"capstan"} }
