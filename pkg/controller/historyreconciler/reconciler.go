// Package historyreconciler runs the reconciler that repairs ConfigSet history: a
// revision whose request did not write it (the request's server died, or etcd
// applied the change after the request gave up), revisions whose ConfigSet is
// gone, and history beyond the count or byte limit. It decides from the
// ConfigSet informer and the history's index of revision summaries, so it
// reads etcd only when they show something to repair, and every action is
// idempotent, so several replicas may run it on one etcd.
package historyreconciler

import (
	"context"
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

// maxPendingRestores bounds the earlier states of ConfigSets the reconciler
// holds while their requests' grace period runs: each is a whole ConfigSet.
// Beyond it a missing revision is logged as lost instead of held.
const maxPendingRestores = 256

// ConfigSetGetter reads a ConfigSet from storage: Get from etcd, GetCached
// from the API server's watch cache, which may trail etcd but never trails
// the informers the API server serves from it.
type ConfigSetGetter interface {
	Get(ctx context.Context, namespace, name string) (*config.ConfigSet, error)
	GetCached(ctx context.Context, namespace, name string) (*config.ConfigSet, error)
}

// item is one unit of work: the history of the ConfigSet namespace/name, or,
// when restore is set, the revision of an earlier state of it.
type item struct {
	namespace, name string
	restore         int64
	uid             types.UID
}

// Reconciler repairs the ConfigRevisions of ConfigSets.
type Reconciler struct {
	history    *history.History
	configSets ConfigSetGetter
	csLister   listers.ConfigSetLister
	synced     []cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[item]

	mu          sync.Mutex
	missingFrom map[item]missing
	pending     map[item]*config.ConfigSet
}

var _ history.Repairer = &Reconciler{}

// NewReconciler registers its event handlers on f's ConfigSet informer and on
// hist's revision index, and registers itself as hist's repairer.
func NewReconciler(f informers.SharedInformerFactory, hist *history.History, configSets ConfigSetGetter) (*Reconciler, error) {
	registerMetrics()
	csInformer := f.Config().V1beta1().ConfigSets()
	r := &Reconciler{
		history:     hist,
		configSets:  configSets,
		csLister:    csInformer.Lister(),
		synced:      []cache.InformerSynced{csInformer.Informer().HasSynced, hist.HasSynced},
		missingFrom: map[item]missing{},
		pending:     map[item]*config.ConfigSet{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[item](),
			workqueue.TypedRateLimitingQueueConfig[item]{Name: "capstan_history_reconciler"}),
	}
	enqueueSet := func(obj interface{}) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if cs, ok := obj.(*configv1beta1.ConfigSet); ok {
			r.queue.Add(item{namespace: cs.Namespace, name: cs.Name})
		}
	}
	enqueueOwner := func(obj interface{}) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if s, ok := obj.(*history.Summary); ok {
			r.queue.Add(item{namespace: s.Namespace, name: s.ConfigSetName})
		}
	}
	if _, err := csInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueSet,
		UpdateFunc: func(_, obj interface{}) { enqueueSet(obj) },
		DeleteFunc: enqueueSet,
	}); err != nil {
		return nil, err
	}
	if err := hist.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueOwner,
		UpdateFunc: func(_, obj interface{}) { enqueueOwner(obj) },
		DeleteFunc: enqueueOwner,
	}); err != nil {
		return nil, err
	}
	hist.SetRepairer(r)
	return r, nil
}

// RestoreLater holds prev, an earlier state of a ConfigSet whose revision the
// index does not show, and writes that revision after the grace period unless
// it appeared meanwhile or fell out of the history window.
func (r *Reconciler) RestoreLater(prev *config.ConfigSet) {
	key := item{namespace: prev.Namespace, name: prev.Name, restore: prev.Status.CurrentRevision, uid: prev.UID}
	r.mu.Lock()
	_, held := r.pending[key]
	full := !held && len(r.pending) >= maxPendingRestores
	if !full {
		r.pending[key] = prev
	}
	r.mu.Unlock()
	if full {
		klog.Background().Error(nil, "Too many revisions waiting to be restored; this one is not held and stays missing unless its request wrote it",
			"configset", prev.Namespace+"/"+prev.Name, "revision", prev.Status.CurrentRevision)
		return
	}
	r.queue.AddAfter(key, r.history.RepairGrace())
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
	var retryAfter time.Duration
	var err error
	if key.restore > 0 {
		err = r.restore(ctx, key)
	} else {
		retryAfter, err = r.sync(ctx, key)
	}
	switch {
	case err != nil:
		klog.FromContext(ctx).Info("Repairing configset history failed; will retry", "configset", key.namespace+"/"+key.name, "err", err)
		r.queue.AddRateLimited(key)
	case retryAfter > 0:
		r.queue.Forget(key)
		r.queue.AddAfter(key, retryAfter)
	default:
		r.queue.Forget(key)
	}
	return true
}

// restore writes the held revision of an earlier state, unless etcd has it or
// the live ConfigSet no longer keeps it.
func (r *Reconciler) restore(ctx context.Context, key item) error {
	r.mu.Lock()
	prev := r.pending[key]
	r.mu.Unlock()
	if prev == nil {
		return nil
	}
	done := func() {
		r.mu.Lock()
		delete(r.pending, key)
		r.mu.Unlock()
	}
	_, err := r.history.Revision(ctx, prev, key.restore)
	if err == nil {
		done()
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	cur, err := r.configSets.Get(ctx, prev.Namespace, prev.Name)
	if apierrors.IsNotFound(err) {
		done()
		return nil
	}
	if err != nil {
		return err
	}
	if cur.UID != prev.UID || key.restore <= cur.Status.CurrentRevision-int64(cur.Spec.RevisionHistoryLimit) {
		done()
		return nil
	}
	restored, err := r.history.Restore(ctx, prev)
	if err != nil {
		return err
	}
	done()
	if restored {
		repairs.WithLabelValues(repairRestoredEarlier).Inc()
		klog.FromContext(ctx).Info("Restored the revision of an earlier change its request did not write", "configset", prev.Namespace+"/"+prev.Name, "revision", key.restore)
	}
	// A restored revision may put history over its byte budget.
	return r.history.Prune(ctx, cur)
}

// sync compares a ConfigSet with its revisions' summaries and repairs what
// differs. It returns a delay after which to look again, when a repair is not
// due yet.
func (r *Reconciler) sync(ctx context.Context, key item) (time.Duration, error) {
	cs, err := r.csLister.ConfigSets(key.namespace).Get(key.name)
	if apierrors.IsNotFound(err) {
		return r.syncMissing(ctx, key)
	}
	if err != nil {
		return 0, err
	}
	subject := history.Subject{Namespace: cs.Namespace, Name: cs.Name, UID: cs.UID, CurrentRevision: cs.Status.CurrentRevision, Limit: config.DefaultRevisionHistoryLimit}
	if cs.Spec.RevisionHistoryLimit != nil {
		subject.Limit = *cs.Spec.RevisionHistoryLimit
	}
	hasCurrent, prunable := r.history.Check(subject)
	if hasCurrent && !prunable {
		r.forget(key)
		return 0, nil
	}
	if !hasCurrent {
		if wait := r.waitForWriter(key, cs.Status.CurrentRevision); wait > 0 {
			return wait, nil
		}
	}
	return 0, r.repair(ctx, key, cs.Status.CurrentRevision)
}

// missing is when the reconciler first saw a revision of a ConfigSet
// missing, or, with revision 0, the ConfigSet of revisions it indexes.
type missing struct {
	revision int64
	since    time.Time
}

// syncMissing handles the revisions of a ConfigSet its informer does not
// hold: they are orphaned unless the ConfigSet is on its way. A revision is
// written with its ConfigSet, but the revision index watches etcd while the
// informer is served from the watch cache, so the index often reports the
// revision first. The watch cache answers most of these: when it holds the
// owner of every revision, nothing is orphaned. Otherwise the ConfigSet has
// the repair grace period to reach the informer before etcd is asked and the
// orphans deleted. A deleted ConfigSet's revisions wait as long.
func (r *Reconciler) syncMissing(ctx context.Context, key item) (time.Duration, error) {
	sums := r.history.Summaries(key.namespace, key.name)
	if len(sums) == 0 {
		r.forget(key)
		return 0, nil
	}
	if cs, err := r.configSets.GetCached(ctx, key.namespace, key.name); err == nil && ownsAll(cs.UID, sums) {
		r.forget(key)
		return 0, nil
	}
	if wait := r.waitForWriter(key, 0); wait > 0 {
		return wait, nil
	}
	r.forget(key)
	return 0, r.removeOrphans(ctx, key.namespace, key.name)
}

// waitForWriter returns how long to wait before writing revision rev, the
// missing current revision, giving the request that made the change time to
// write it. The grace period runs per revision: a ConfigSet that keeps
// changing while the index lags must not have its newest revision written
// from under its request because an older one was missing long ago.
func (r *Reconciler) waitForWriter(key item, rev int64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.missingFrom[key]
	if !ok || m.revision != rev {
		r.missingFrom[key] = missing{revision: rev, since: time.Now()}
		return r.history.RepairGrace()
	}
	if left := r.history.RepairGrace() - time.Since(m.since); left > 0 {
		return left
	}
	return 0
}

// forget drops what the reconciler remembers of a ConfigSet that is in order or gone.
func (r *Reconciler) forget(key item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.missingFrom, key)
}

// repair reads the ConfigSet from storage, writes its current revision if it is
// missing, and prunes revisions of other ConfigSets and beyond the limits. rev
// is the current revision the informer showed, whose grace period passed; if
// storage holds a newer one, its request may still be writing it, and the
// informer's event for it brings the ConfigSet back.
func (r *Reconciler) repair(ctx context.Context, key item, rev int64) error {
	cs, err := r.configSets.Get(ctx, key.namespace, key.name)
	if apierrors.IsNotFound(err) {
		r.forget(key)
		return r.removeOrphans(ctx, key.namespace, key.name)
	}
	if err != nil {
		return err
	}
	if cs.Status.CurrentRevision != rev {
		return nil
	}
	restored, err := r.history.Repair(ctx, cs)
	if restored {
		repairs.WithLabelValues(repairRestoredCurrent).Inc()
		klog.FromContext(ctx).Info("Restored a missing revision", "configset", key.namespace+"/"+key.name, "revision", cs.Status.CurrentRevision)
	}
	if err != nil {
		return err
	}
	r.forget(key)
	return nil
}

// ownsAll reports whether the ConfigSet of UID uid owns every revision of sums.
func ownsAll(uid types.UID, sums []*history.Summary) bool {
	for _, s := range sums {
		if s.OwnerUID != uid {
			return false
		}
	}
	return true
}

// removeOrphans deletes the revisions named for namespace/name unless they
// belong to the ConfigSet that storage holds under that name. Each delete is
// conditional on the revision's UID, so a revision written meanwhile for a new
// ConfigSet of the same name is never touched.
func (r *Reconciler) removeOrphans(ctx context.Context, namespace, name string) error {
	sums := r.history.Summaries(namespace, name)
	if len(sums) == 0 {
		return nil
	}
	var live types.UID
	cs, err := r.configSets.Get(ctx, namespace, name)
	switch {
	case err == nil:
		live = cs.UID
	case !apierrors.IsNotFound(err):
		return err
	}
	for _, s := range sums {
		if live != "" && s.OwnerUID == live {
			continue
		}
		klog.FromContext(ctx).V(2).Info("Deleting a revision whose configset is gone", "revision", namespace+"/"+s.Name)
		deleted, err := r.history.Delete(ctx, namespace, s.Name, s.UID)
		if err != nil {
			return err
		}
		if deleted {
			repairs.WithLabelValues(repairOrphanDeleted).Inc()
		}
	}
	return nil
}
