// Package storage wires the ConfigSet strategies to etcd through
// genericregistry.Store, records every change of the entries as a
// ConfigRevision, and serves the rollback subresource.
package storage

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/util/dryrun"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/klog/v2"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	"capstan.dev/capstan/pkg/registry/config/configset"
	"capstan.dev/capstan/pkg/registry/config/status"
)

// ConfigSetStorage holds the REST storage of the ConfigSet resource and its subresources.
type ConfigSetStorage struct {
	ConfigSet *REST
	Status    *status.REST
	Rollback  *RollbackREST
}

// NewStorage returns the REST storage of ConfigSets and their status and
// rollback subresources. Changes of the entries are recorded through hist
// (nil records nothing, which only benchmarks of the cost of history want);
// admit validates the update a rollback makes as the admission chain would an
// update of the ConfigSet (nil admits everything).
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, hist *history.History, admit UpdateAdmitter) (ConfigSetStorage, error) {
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

	main := &REST{Store: store, history: hist}
	return ConfigSetStorage{
		ConfigSet: main,
		Status:    status.NewREST(store, statusStrategy),
		Rollback:  &RollbackREST{configSets: main, history: hist, admit: admit},
	}, nil
}

// REST is the main ConfigSet endpoint. Every write that changes the entries
// (create, update, patch, apply) records a ConfigRevision before it returns.
type REST struct {
	*genericregistry.Store
	history *history.History
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

// Create stores a new ConfigSet and records its first revision.
func (r *REST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	out, err := r.Store.Create(ctx, obj, createValidation, options)
	if err != nil || dryrun.IsDryRun(options.DryRun) || r.history == nil {
		return out, err
	}
	r.record(ctx, out.(*config.ConfigSet), history.Change{Author: history.AuthorFrom(ctx)})
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
	info := &oldCapturingInfo{UpdatedObjectInfo: objInfo}
	out, created, err := r.Store.Update(ctx, name, info, createValidation, updateValidation, forceAllowCreate, options)
	if err != nil || dryrun.IsDryRun(options.DryRun) || r.history == nil {
		return out, created, err
	}
	cs := out.(*config.ConfigSet)
	if cs.DeletionTimestamp != nil && len(cs.Finalizers) == 0 {
		// Removing the last finalizer of a deleting ConfigSet deleted it.
		if err := r.history.DeleteAll(ctx, cs.Namespace, cs.Name, cs.UID); err != nil {
			warning.AddWarning(ctx, "", fmt.Sprintf("the revisions of configset %s were not all deleted (%v); the server will remove them", cs.Name, err))
		}
		return out, created, nil
	}
	old, _ := info.old.(*config.ConfigSet)
	changed := created || old == nil || old.Status.CurrentRevision != cs.Status.CurrentRevision
	if changed && !created && old != nil {
		r.restorePreviousIfMissing(old)
	}
	if changed {
		r.record(ctx, cs, history.Change{Author: history.AuthorFrom(ctx), RollbackOf: rollbackOf})
	}
	switch {
	case old != nil && cs.Spec.RevisionHistoryLimit < old.Spec.RevisionHistoryLimit:
		// Recording prunes only the revision the new one pushed out.
		if err := r.history.Prune(ctx, cs); err != nil {
			warning.AddWarning(ctx, "", fmt.Sprintf("history of configset %s was not pruned to the new limit (%v); the server will prune it", cs.Name, err))
		}
	case !changed && isReplace(ctx):
		// `kubectl replace` of every object is how encryption keys are
		// rotated; revisions cannot be replaced by users, so they follow
		// their ConfigSet.
		if err := r.history.Rewrite(ctx, cs); err != nil {
			warning.AddWarning(ctx, "", fmt.Sprintf("revisions of configset %s were not rewritten (%v)", cs.Name, err))
		}
	}
	return out, created, nil
}

// record writes the revision of a change that is already stored. A failure
// does not fail the request: the change happened, the client is warned, and
// the history reconciler restores the revision.
func (r *REST) record(ctx context.Context, cs *config.ConfigSet, change history.Change) {
	if err := r.history.Record(ctx, cs, change); err != nil {
		warning.AddWarning(ctx, "", fmt.Sprintf("revision %d of configset %s was stored but its history was not written (%v); the server will restore it", cs.Status.CurrentRevision, cs.Name, err))
	}
}

// restorePreviousIfMissing makes sure the change this one replaced has its
// revision. The request that made that change writes it before answering;
// but if that request ended first (its deadline passed while etcd was away and
// etcd applied the change later, or its server died), the revision is missing,
// and once a newer change is stored no one else knows what the ConfigSet held.
// So when the revision is not in the cache, this request keeps prev and, after
// the grace period the other request has to write it, restores it with the
// reconciler as author, unless it appeared meanwhile or fell out of the
// history window.
func (r *REST) restorePreviousIfMissing(prev *config.ConfigSet) {
	rev := prev.Status.CurrentRevision
	if rev < 1 || r.history.Cached(context.Background(), prev, rev) {
		return
	}
	prev = prev.DeepCopy()
	time.AfterFunc(r.history.RepairGrace(), func() {
		ctx, cancel := context.WithTimeout(genericapirequest.WithNamespace(context.Background(), prev.Namespace), 30*time.Second)
		defer cancel()
		if _, err := r.history.Get(ctx, prev, rev); !apierrors.IsNotFound(err) {
			return
		}
		obj, err := r.Store.Get(ctx, prev.Name, &metav1.GetOptions{})
		if err != nil {
			return
		}
		cur := obj.(*config.ConfigSet)
		if cur.UID != prev.UID || rev <= cur.Status.CurrentRevision-int64(cur.Spec.RevisionHistoryLimit) {
			return
		}
		logger := klog.Background()
		if err := r.history.Restore(ctx, prev, history.Change{Author: history.ReconcilerUser}); err != nil {
			logger.Error(err, "Restoring the revision of an earlier change", "configset", prev.Namespace+"/"+prev.Name, "revision", rev)
			return
		}
		logger.Info("Restored the revision of an earlier change its request did not write", "configset", prev.Namespace+"/"+prev.Name, "revision", rev)
	})
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
	out, deleted, err := r.Store.Delete(ctx, name, capture, options)
	if err != nil || !deleted || deleting == nil || !deletesHistory(options) || r.history == nil {
		return out, deleted, err
	}
	if err := r.history.DeleteAll(ctx, deleting.Namespace, deleting.Name, deleting.UID); err != nil {
		warning.AddWarning(ctx, "", fmt.Sprintf("the revisions of configset %s were not all deleted (%v); the server will remove them", name, err))
	}
	return out, deleted, nil
}

// DeleteCollection deletes the selected ConfigSets and their revisions.
func (r *REST) DeleteCollection(ctx context.Context, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions, listOptions *metainternalversion.ListOptions) (runtime.Object, error) {
	out, err := r.Store.DeleteCollection(ctx, deleteValidation, options, listOptions)
	if err != nil || !deletesHistory(options) || r.history == nil {
		return out, err
	}
	items, err := meta.ExtractList(out)
	if err != nil {
		return out, nil
	}
	for _, item := range items {
		cs, ok := item.(*config.ConfigSet)
		if !ok || cs.DeletionTimestamp != nil && len(cs.Finalizers) > 0 {
			continue
		}
		if err := r.history.DeleteAll(ctx, cs.Namespace, cs.Name, cs.UID); err != nil {
			warning.AddWarning(ctx, "", fmt.Sprintf("the revisions of configset %s were not all deleted (%v); the server will remove them", cs.Name, err))
		}
	}
	return out, nil
}

func deletesHistory(options *metav1.DeleteOptions) bool {
	return options == nil || !dryrun.IsDryRun(options.DryRun)
}

// isReplace reports whether the request is a PUT of the whole object, as
// opposed to a patch or apply or an update made inside the server.
func isReplace(ctx context.Context) bool {
	info, ok := genericapirequest.RequestInfoFrom(ctx)
	return ok && info.Verb == "update" && info.Subresource == ""
}
