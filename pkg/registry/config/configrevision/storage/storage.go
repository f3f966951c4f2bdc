// Package storage wires the ConfigRevision strategy to etcd and exposes only
// the verbs users may call.
package storage

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/validation"
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

// readDeleter is the part of the store users may call as it is: revisions are
// written by the server, so create is not installed and answers 405, and
// update is REST's own.
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

// REST is the user-facing ConfigRevision endpoint: get, list, watch, delete,
// and an update that only rewrites a revision unchanged.
type REST struct {
	readDeleter
	store *genericregistry.Store
}

// NewREST exposes the read and delete verbs of store, and unchanged rewrites.
func NewREST(store *genericregistry.Store) *REST {
	return &REST{readDeleter: store, store: store}
}

var (
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
	_ rest.Updater            = &REST{}
)

// Update writes a revision back only when it is unchanged: a revision is a
// record of the past, but after an encryption key rotation each one must be
// rewritten to be encrypted with the new key, and storage rewrites a value
// exactly when it is unchanged and encrypted with a key that is no longer the
// write key. This is the explicit re-encryption path (`kubectl replace` of
// every revision, or a storage version migrator), for roles with update on
// configrevisions; any change is refused with 422.
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, _ rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, _ bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.store.Update(ctx, name, unchangedOnly{objInfo}, nil, updateValidation, false, options)
}

// unchangedOnly refuses an updated revision that differs from the stored one.
type unchangedOnly struct {
	rest.UpdatedObjectInfo
}

func (u unchangedOnly) UpdatedObject(ctx context.Context, oldObj runtime.Object) (runtime.Object, error) {
	obj, err := u.UpdatedObjectInfo.UpdatedObject(ctx, oldObj)
	if err != nil {
		return nil, err
	}
	newRev, ok := obj.(*config.ConfigRevision)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a ConfigRevision: %T", obj))
	}
	oldRev := oldObj.(*config.ConfigRevision)
	// The field manager records every writer; an unchanged rewrite keeps the
	// record as it was, so the stored bytes change only with their key.
	newRev.ManagedFields = oldRev.ManagedFields
	if errs := validation.ValidateConfigRevisionRewrite(newRev, oldRev); len(errs) > 0 {
		return nil, apierrors.NewInvalid(config.Kind("ConfigRevision"), oldRev.Name, errs)
	}
	return newRev, nil
}

// ShortNames lets `kubectl get cfgrev` work.
func (r *REST) ShortNames() []string { return []string{"cfgrev"} }

// Categories puts ConfigRevisions into `kubectl get capstan`.
func (r *REST) Categories() []string { return []string{"capstan"} }
