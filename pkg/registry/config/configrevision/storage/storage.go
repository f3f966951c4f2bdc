// Package storage wires the ConfigRevision strategy to etcd and exposes only
// the verbs users may call.
package storage

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision"
)

// NewStore returns the full store of ConfigRevisions, with create and update,
// for the server's own use. Users reach it through REST.
func NewStore(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter) (*genericregistry.Store, error) {
	strategy := configrevision.NewStrategy(scheme)
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &config.ConfigRevision{} },
		NewListFunc:               func() runtime.Object { return &config.ConfigRevisionList{} },
		PredicateFunc:             configrevision.MatchConfigRevision,
		DefaultQualifiedResource:  config.Resource("configrevisions"),
		SingularQualifiedResource: config.Resource("configrevision"),

		CreateStrategy:      strategy,
		UpdateStrategy:      strategy,
		DeleteStrategy:      strategy,
		ResetFieldsStrategy: strategy,

		TableConvertor: tableConvertor,
	}
	options := &generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: configrevision.GetAttrs}
	if err := store.CompleteWithOptions(options); err != nil {
		return nil, fmt.Errorf("configrevisions storage: %w", err)
	}
	return store, nil
}

// readDeleter is the part of the store users may call: revisions are written by
// the server, so create, update and patch are not installed and answer 405.
type readDeleter interface {
	rest.Storage
	rest.Scoper
	rest.SingularNameProvider
	rest.StorageVersionProvider
	rest.Getter
	rest.Lister
	rest.Watcher
	rest.GracefulDeleter
	rest.CollectionDeleter
	rest.TableConvertor
}

// REST is the user-facing ConfigRevision endpoint: get, list, watch, delete.
type REST struct {
	readDeleter
}

// NewREST exposes the read and delete verbs of store.
func NewREST(store *genericregistry.Store) *REST {
	return &REST{readDeleter: store}
}

var (
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
)

// ShortNames lets `kubectl get cfgrev` work.
func (r *REST) ShortNames() []string { return []string{"cfgrev"} }

// Categories puts ConfigRevisions into `kubectl get capstan`.
func (r *REST) Categories() []string { return []string{"capstan"} }
