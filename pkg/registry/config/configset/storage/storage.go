// Package storage wires the ConfigSet strategies to etcd through
// genericregistry.Store, records every change of the entries as a
// ConfigRevision, and serves the rollback subresource.
package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/util/dryrun"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	"capstan.dev/capstan/pkg/registry/config/configset"
	"capstan.dev/capstan/pkg/registry/status"
)

// ConfigSetStorage holds the REST storage of the ConfigSet resource and its subresources.
type ConfigSetStorage struct {
	ConfigSet *REST
	Status    *StatusREST
	Rollback  *RollbackREST
}

// Options are what the ConfigSet endpoints need beside storage.
type Options struct {
	// Admit validates the ConfigSet update a rollback makes as the admission
	// chain would an update of the ConfigSet; nil admits everything.
	Admit UpdateAdmitter
	// Authorizer decides whether callers of the rollback and status
	// subresources may read the ConfigSet they answer with; nil allows everyone,
	// for storage tests that run without a server.
	Authorizer authorizer.Authorizer
	// Deleted, when set, is told of each ConfigSet this storage has removed
	// (not of dry runs), before the response is written: the list item caches
	// drop what can no longer be listed.
	Deleted func(*config.ConfigSet)
}

// NewStorage returns the REST storage of ConfigSets and their status and
// rollback subresources. Every change and deletion is handed to hist, which
// keeps the history (history.Disabled keeps none).
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, hist history.Recorder, opts Options) (ConfigSetStorage, error) {
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
	options := &generic.StoreOptions{RESTOptions: sharedVersions{optsGetter}, AttrFunc: configset.GetAttrs}
	if err := store.CompleteWithOptions(options); err != nil {
		return ConfigSetStorage{}, fmt.Errorf("configsets storage: %w", err)
	}

	access := readAccess{authorizer: opts.Authorizer}
	if access.authorizer == nil {
		access.authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()
	}
	main := &REST{Store: store, history: hist, deleted: opts.Deleted}
	return ConfigSetStorage{
		ConfigSet: main,
		Status:    &StatusREST{REST: status.NewREST(store, statusStrategy), access: access},
		Rollback:  newRollbackREST(main, hist, opts.Admit, access),
	}, nil
}

// REST is the main ConfigSet endpoint. Every write that changes the entries
// (create, update, patch, apply) records a ConfigRevision before it returns.
type REST struct {
	*genericregistry.Store
	history history.Recorder
	deleted func(*config.ConfigSet)
}

var (
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
	_ rest.Creater            = &REST{}
	_ rest.Updater            = &REST{}
	_ rest.GracefulDeleter    = &REST{}
	_ rest.CollectionDeleter  = &REST{}
)

// ShortNames lets `kubectl get cfgs` work.
func (r *REST) ShortNames() []string { return []string{"cfgs"} }

// Categories puts ConfigSets into `kubectl get capstan`.
func (r *REST) Categories() []string { return []string{"capstan"} }

// Create stores a new ConfigSet and records its first revision. Like every
// ConfigSet write, it runs without the client's cancellation
// (history.Uncancelled), so that a change etcd applies gets its revision from
// its own request even when the client went away.
func (r *REST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	ctx, cancel := history.Uncancelled(ctx)
	defer cancel()
	change := history.Change{Author: history.AuthorFrom(ctx)}
	ctx = r.history.Begin(ctx, change)
	out, err := r.Store.Create(ctx, obj, createValidation, options)
	if err != nil || dryrun.IsDryRun(options.DryRun) {
		return out, err
	}
	r.history.Changed(ctx, nil, out.(*config.ConfigSet), change)
	return out, nil
}

// Update stores a change (update, patch or apply) and records a revision when
// the entries changed.
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options, 0)
}

// update is Update with the revision a rollback restores; forceAllowCreate
// lets server-side apply create a ConfigSet that does not exist yet.
func (r *REST) update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions, rollbackOf int64) (runtime.Object, bool, error) {
	ctx, cancel := history.Uncancelled(ctx)
	defer cancel()
	change := history.Change{Author: history.AuthorFrom(ctx), RollbackOf: rollbackOf}
	ctx = r.history.Begin(ctx, change)
	info := &oldCapturingInfo{UpdatedObjectInfo: objInfo}
	out, created, err := r.Store.Update(ctx, name, info, createValidation, updateValidation, forceAllowCreate, options)
	if dryrun.IsDryRun(options.DryRun) {
		return out, created, err
	}
	if err != nil {
		if old, ok := info.old.(*config.ConfigSet); ok && outcomeUnknown(err) {
			// etcd may apply this change after the request gave up, and
			// then this request was the last to know the state it replaced.
			r.history.Uncertain(old)
		}
		return out, created, err
	}
	cs := out.(*config.ConfigSet)
	if cs.DeletionTimestamp != nil && len(cs.Finalizers) == 0 {
		// Removing the last finalizer of a deleting ConfigSet deleted it.
		r.gone(ctx, cs)
		return out, created, nil
	}
	old, _ := info.old.(*config.ConfigSet)
	if created {
		old = nil
	}
	r.history.Changed(ctx, old, cs, change)
	return out, created, nil
}

// outcomeUnknown reports whether err leaves open whether storage applied the
// write: a server-side error (a timeout, etcd unavailable) rather than a
// refusal such as a conflict, a validation error or a denial.
func outcomeUnknown(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code >= http.StatusInternalServerError
	}
	return true
}

// oldCapturingInfo remembers the stored object the last attempt of an update
// started from: the update is a compare-and-swap loop, and the last attempt is
// the one that was written.
type oldCapturingInfo struct {
	rest.UpdatedObjectInfo
	old runtime.Object
}

func (i *oldCapturingInfo) UpdatedObject(ctx context.Context, oldObj runtime.Object) (runtime.Object, error) {
	i.old = oldObj
	return i.UpdatedObjectInfo.UpdatedObject(ctx, oldObj)
}

// Delete deletes the ConfigSet and, once it is gone, its revisions, so that
// history does not outlive its ConfigSet even without a garbage collector.
// Revisions are part of their ConfigSet: an orphaning delete removes them too,
// as the history reconciler would.
func (r *REST) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	var deleting *config.ConfigSet
	capture := func(ctx context.Context, obj runtime.Object) error {
		deleting, _ = obj.(*config.ConfigSet)
		if deleteValidation == nil {
			return nil
		}
		return deleteValidation(ctx, obj)
	}
	ctx, cancel := history.Uncancelled(ctx)
	defer cancel()
	out, deleted, err := r.Store.Delete(ctx, name, capture, options)
	if err != nil || !deleted || deleting == nil || !deletesHistory(options) {
		return out, deleted, err
	}
	r.gone(ctx, deleting)
	return out, deleted, nil
}

// DeleteCollection deletes the selected ConfigSets and, of those that are
// gone, their revisions. It answers with the ConfigSets as they were listed
// before the deletion, which does not say whether a finalizer (one they had,
// or one the propagation policy adds) keeps them, so each is looked for again.
func (r *REST) DeleteCollection(ctx context.Context, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions, listOptions *metainternalversion.ListOptions) (runtime.Object, error) {
	out, err := r.Store.DeleteCollection(ctx, deleteValidation, options, listOptions)
	if err != nil || !deletesHistory(options) {
		return out, err
	}
	items, err := meta.ExtractList(out)
	if err != nil {
		return out, nil
	}
	for _, item := range items {
		cs, ok := item.(*config.ConfigSet)
		if !ok || !r.removed(ctx, cs) {
			continue
		}
		r.gone(ctx, cs)
	}
	return out, nil
}

// removed reports whether cs is no longer stored: not found, or found as
// another ConfigSet of its name. The read is consistent (from etcd), so a
// deletion just made is seen.
func (r *REST) removed(ctx context.Context, cs *config.ConfigSet) bool {
	got, err := r.Store.Get(genericapirequest.WithNamespace(ctx, cs.Namespace), cs.Name, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true
	}
	found, ok := got.(*config.ConfigSet)
	return err == nil && ok && found.UID != cs.UID
}

// gone hands a removed ConfigSet to the history, which deletes its revisions,
// and to Options.Deleted.
func (r *REST) gone(ctx context.Context, cs *config.ConfigSet) {
	r.history.Deleted(ctx, cs)
	if r.deleted != nil {
		r.deleted(cs)
	}
}

func deletesHistory(options *metav1.DeleteOptions) bool {
	return options == nil || !dryrun.IsDryRun(options.DryRun)
}
