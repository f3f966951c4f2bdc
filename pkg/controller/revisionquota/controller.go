// Package revisionquota keeps the usage of count/configrevisions.config.capstan.dev
// in the cluster's ResourceQuotas, which kube-controller-manager cannot.
//
// kube-controller-manager's resource quota controller counts only resources
// that clients can create, list, watch and delete; clients never create
// ConfigRevisions, so it leaves their usage unset, and ResourceQuota admission
// refuses every write a quota covers while its usage is unknown ("status
// unknown for quota"). Capstan counts them itself from the history's index,
// in memory, and writes the count into status.used of every quota that
// limits them, beside what kube-controller-manager writes there (it keeps
// usage it does not compute). Admission charges each revision when its
// ConfigSet change is admitted; this controller corrects the usage when
// revisions come and go (written, pruned, deleted with their ConfigSet), as
// kube-controller-manager's replenishment does for other resources.
package revisionquota

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"capstan.dev/capstan/pkg/quota"
)

// Revisions counts revisions per namespace from an in-memory index.
type Revisions interface {
	CountIn(namespace string) int
	HasSynced() bool
	AddEventHandler(cache.ResourceEventHandler) error
}

// Controller writes the revision count of each namespace into the usage of
// the quotas there that limit it.
type Controller struct {
	quotas       corelisters.ResourceQuotaLister
	quotasSynced cache.InformerSynced
	client       corev1client.ResourceQuotasGetter
	revisions    Revisions
	queue        workqueue.TypedRateLimitingInterface[string]
}

// New returns a controller over the cluster's ResourceQuota informer and the
// history's index.
func New(quotas coreinformers.ResourceQuotaInformer, client corev1client.ResourceQuotasGetter, revisions Revisions) (*Controller, error) {
	c := &Controller{
		quotas:       quotas.Lister(),
		quotasSynced: quotas.Informer().HasSynced,
		client:       client,
		revisions:    revisions,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "capstan_revision_quota"}),
	}
	_, err := quotas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.quotaChanged(nil, obj) },
		UpdateFunc: c.quotaChanged,
	})
	if err != nil {
		return nil, err
	}
	enqueueNamespace := func(obj interface{}) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if m, err := meta.Accessor(obj); err == nil {
			c.enqueueIfLimited(m.GetNamespace())
		}
	}
	err = revisions.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueNamespace,
		DeleteFunc: enqueueNamespace,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// quotaChanged enqueues the namespace of a quota that limits revisions when
// it is new, its limits changed, its usage of revisions is missing, or the
// informer replays it; not on the usage admission charges as it admits.
func (c *Controller) quotaChanged(old, cur interface{}) {
	q, ok := cur.(*corev1.ResourceQuota)
	if !ok || !limitsRevisions(q) {
		return
	}
	if o, ok := old.(*corev1.ResourceQuota); ok && o.ResourceVersion != q.ResourceVersion &&
		apiequality.Semantic.DeepEqual(o.Spec.Hard, q.Spec.Hard) {
		if _, known := q.Status.Used[quota.ConfigRevisionsCount]; known {
			return
		}
	}
	c.queue.Add(q.Namespace)
}

// enqueueIfLimited enqueues namespace if one of its quotas limits revisions.
func (c *Controller) enqueueIfLimited(namespace string) {
	qs, err := c.quotas.ResourceQuotas(namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range qs {
		if limitsRevisions(q) {
			c.queue.Add(namespace)
			return
		}
	}
}

func limitsRevisions(q *corev1.ResourceQuota) bool {
	_, ok := q.Spec.Hard[quota.ConfigRevisionsCount]
	return ok
}

// Run syncs namespaces with workers goroutines until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.quotasSynced, c.revisions.HasSynced) {
		return
	}
	for range workers {
		go wait.UntilWithContext(ctx, c.work, time.Second)
	}
	<-ctx.Done()
}

func (c *Controller) work(ctx context.Context) {
	for {
		ns, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.sync(ctx, ns)
		if err == nil {
			c.queue.Forget(ns)
		} else {
			klog.FromContext(ctx).V(2).Info("Updating the revision usage of quotas", "namespace", ns, "err", err)
			c.queue.AddRateLimited(ns)
		}
		c.queue.Done(ns)
	}
}

// sync writes the namespace's revision count into each quota there that
// limits revisions and says otherwise.
func (c *Controller) sync(ctx context.Context, namespace string) error {
	qs, err := c.quotas.ResourceQuotas(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	used := *resource.NewQuantity(int64(c.revisions.CountIn(namespace)), resource.DecimalSI)
	var errs []error
	for _, q := range qs {
		if !limitsRevisions(q) {
			continue
		}
		if cur, ok := q.Status.Used[quota.ConfigRevisionsCount]; ok && cur.Cmp(used) == 0 {
			continue
		}
		q = q.DeepCopy()
		if q.Status.Used == nil {
			q.Status.Used = corev1.ResourceList{}
		}
		q.Status.Used[quota.ConfigRevisionsCount] = used
		_, err := c.client.ResourceQuotas(namespace).UpdateStatus(ctx, q, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			// A conflict means the quota changed: the informer brings the
			// new one and the retry writes over it.
			errs = append(errs, fmt.Errorf("quota %s/%s: %w", namespace, q.Name, err))
		}
	}
	return utilerrors.NewAggregate(errs)
}
