// Package history runs the reconciler that repairs ConfigSet history after a
// crash: a missing current revision, revisions whose ConfigSet is gone, and
// history beyond the limit. It works from informers, so it reads etcd only
// when its caches show something to repair, and every action is idempotent,
// so several replicas may run it on one etcd.
package history

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
	listers "capstan.dev/capstan/pkg/generated/listers/config/v1beta1"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
)

// byConfigSet indexes revisions by namespace/configSetName.
const byConfigSet = "configSet"

// DefaultGracePeriod is how long a current revision may be missing before the
// reconciler writes it: the request that changed the ConfigSet writes it right
// after the ConfigSet, and should be the one to record its author.
const DefaultGracePeriod = 5 * time.Second

// ConfigSetGetter reads a ConfigSet from storage, bypassing any cache.
type ConfigSetGetter interface {
	Get(ctx context.Context, namespace, name string) (*config.ConfigSet, error)
}

// Reconciler repairs the ConfigRevisions of ConfigSets.
type Reconciler struct {
	history     *history.History
	configSets  ConfigSetGetter
	csLister    listers.ConfigSetLister
	revIndexer  cache.Indexer
	synced      []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]
	gracePeriod time.Duration

	mu          sync.Mutex
	missingFrom map[string]time.Time
}

// NewReconciler registers its event handlers on f's ConfigSet and ConfigRevision informers.
func NewReconciler(f informers.SharedInformerFactory, hist *history.History, configSets ConfigSetGetter, gracePeriod time.Duration) (*Reconciler, error) {
	csInformer := f.Config().V1beta1().ConfigSets()
	revInformer := f.Config().V1beta1().ConfigRevisions()
	if err := revInformer.Informer().AddIndexers(cache.Indexers{byConfigSet: indexByConfigSet}); err != nil {
		return nil, fmt.Errorf("indexing configrevisions: %w", err)
	}
	r := &Reconciler{
		history:     hist,
		configSets:  configSets,
		csLister:    csInformer.Lister(),
		revIndexer:  revInformer.Informer().GetIndexer(),
		synced:      []cache.InformerSynced{csInformer.Informer().HasSynced, revInformer.Informer().HasSynced},
		gracePeriod: gracePeriod,
		missingFrom: map[string]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "capstan_history_reconciler"}),
	}
	enqueueSet := func(obj interface{}) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	enqueueOwner := func(obj interface{}) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if rev, ok := obj.(*configv1beta1.ConfigRevision); ok {
			r.queue.Add(rev.Namespace + "/" + rev.ConfigSetName)
		}
	}
	if _, err := csInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueSet,
		UpdateFunc: func(_, obj interface{}) { enqueueSet(obj) },
		DeleteFunc: enqueueSet,
	}); err != nil {
		return nil, err
	}
	if _, err := revInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueOwner,
		UpdateFunc: func(_, obj interface{}) { enqueueOwner(obj) },
		DeleteFunc: enqueueOwner,
	}); err != nil {
		return nil, err
	}
	return r, nil
}

func indexByConfigSet(obj interface{}) ([]string, error) {
	rev, ok := obj.(*configv1beta1.ConfigRevision)
	if !ok {
		return nil, nil
	}
	return []string{rev.Namespace + "/" + rev.ConfigSetName}, nil
}

// Run processes the queue until ctx ends.
func (r *Reconciler) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer r.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), r.synced...) {
		return
	}
	for i := 0; i < workers; i++ {
		go wait.UntilWithContext(ctx, r.worker, time.Second)
	}
	<-ctx.Done()
}

func (r *Reconciler) worker(ctx context.Context) {
	for r.processNext(ctx) {
	}
}

func (r *Reconciler) processNext(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	retryAfter, err := r.sync(ctx, key)
	switch {
	case err != nil:
		klog.FromContext(ctx).Info("Repairing configset history failed; will retry", "configset", key, "err", err)
		r.queue.AddRateLimited(key)
	case retryAfter > 0:
		r.queue.Forget(key)
		r.queue.AddAfter(key, retryAfter)
	default:
		r.queue.Forget(key)
	}
	return true
}

// sync compares a ConfigSet with its revisions in the caches and repairs what
// differs. It returns a delay after which to look again, when a repair is not
// due yet.
func (r *Reconciler) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	objs, err := r.revIndexer.ByIndex(byConfigSet, key)
	if err != nil {
		return 0, err
	}
	revs := make([]*configv1beta1.ConfigRevision, 0, len(objs))
	for _, o := range objs {
		revs = append(revs, o.(*configv1beta1.ConfigRevision))
	}

	cs, err := r.csLister.ConfigSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		if len(revs) == 0 {
			return 0, nil
		}
		return 0, r.removeOrphans(ctx, namespace, name, revs)
	}
	if err != nil {
		return 0, err
	}
	if !needsRepair(cs, revs) {
		r.clearMissing(key)
		return 0, nil
	}
	if !hasCurrent(cs, revs) {
		if wait := r.waitForWriter(key); wait > 0 {
			return wait, nil
		}
	}
	return 0, r.repair(ctx, namespace, name, revs)
}

// needsRepair reports, from the caches alone, whether the current revision is
// missing, a revision belongs to another ConfigSet, or history is over the limit.
func needsRepair(cs *configv1beta1.ConfigSet, revs []*configv1beta1.ConfigRevision) bool {
	if !hasCurrent(cs, revs) {
		return true
	}
	limit := int64(10)
	if cs.Spec.RevisionHistoryLimit != nil {
		limit = int64(*cs.Spec.RevisionHistoryLimit)
	}
	oldestKept := cs.Status.CurrentRevision - limit + 1
	for _, rev := range revs {
		if !ownedBy(rev, cs.UID) || rev.Revision < oldestKept {
			return true
		}
	}
	return false
}

func hasCurrent(cs *configv1beta1.ConfigSet, revs []*configv1beta1.ConfigRevision) bool {
	for _, rev := range revs {
		if rev.Revision == cs.Status.CurrentRevision && ownedBy(rev, cs.UID) {
			return true
		}
	}
	return false
}

func ownedBy(rev *configv1beta1.ConfigRevision, uid types.UID) bool {
	for _, ref := range rev.OwnerReferences {
		if ref.Kind == "ConfigSet" && ref.UID == uid {
			return true
		}
	}
	return false
}

// waitForWriter returns how long to wait before writing a missing current
// revision, giving the request that made the change time to write it.
func (r *Reconciler) waitForWriter(key string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	since, ok := r.missingFrom[key]
	if !ok {
		r.missingFrom[key] = time.Now()
		return r.gracePeriod
	}
	if left := r.gracePeriod - time.Since(since); left > 0 {
		return left
	}
	return 0
}

func (r *Reconciler) clearMissing(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.missingFrom, key)
}

// repair reads the ConfigSet from storage, writes its current revision if it is
// missing, and prunes revisions of other ConfigSets and beyond the limit.
func (r *Reconciler) repair(ctx context.Context, namespace, name string, revs []*configv1beta1.ConfigRevision) error {
	cs, err := r.configSets.Get(ctx, namespace, name)
	if apierrors.IsNotFound(err) {
		return r.removeOrphans(ctx, namespace, name, revs)
	}
	if err != nil {
		return err
	}
	if _, err := r.history.Get(ctx, cs, cs.Status.CurrentRevision); apierrors.IsNotFound(err) {
		klog.FromContext(ctx).Info("Restoring a missing revision", "configset", namespace+"/"+name, "revision", cs.Status.CurrentRevision)
		if err := r.history.Record(ctx, cs, history.Change{Author: history.ReconcilerUser}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	r.clearMissing(namespace + "/" + name)
	return r.history.Prune(ctx, cs)
}

// removeOrphans deletes the given revisions unless they belong to the
// ConfigSet that storage holds under that name. Each delete is conditional on
// the revision's UID, so a revision written meanwhile for a new ConfigSet of
// the same name is never touched.
func (r *Reconciler) removeOrphans(ctx context.Context, namespace, name string, revs []*configv1beta1.ConfigRevision) error {
	var live types.UID
	cs, err := r.configSets.Get(ctx, namespace, name)
	switch {
	case err == nil:
		live = cs.UID
	case !apierrors.IsNotFound(err):
		return err
	}
	for _, rev := range revs {
		if live != "" && ownedBy(rev, live) {
			continue
		}
		klog.FromContext(ctx).V(2).Info("Deleting a revision whose configset is gone", "revision", namespace+"/"+rev.Name)
		if err := r.history.Delete(ctx, namespace, rev.Name, rev.UID); err != nil {
			return err
		}
	}
	return nil
}
