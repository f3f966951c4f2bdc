// Package configpolicystatus reports on every ConfigPolicy whether it is in
// force: a Ready condition and the generation it describes.
package configpolicystatus

import (
	"context"
	"fmt"
	"regexp"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
	listers "capstan.dev/capstan/pkg/generated/listers/config/v1beta1"
	"capstan.dev/capstan/pkg/policyrule"
)

// ConditionReady is the condition type that says whether a policy is enforced.
const ConditionReady = "Ready"

// Reasons of the Ready condition.
const (
	ReasonEnforced                     = "Enforced"
	ReasonNamespaceSelectorUnsupported = "NamespaceSelectorUnsupported"
	ReasonInvalidRule                  = "InvalidRule"
)

// StatusREST is the status subresource of ConfigPolicies.
type StatusREST interface {
	Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error)
	Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc,
		updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error)
}

// Controller writes the Ready condition of ConfigPolicies.
type Controller struct {
	lister  listers.ConfigPolicyLister
	synced  cache.InformerSynced
	status  StatusREST
	queue   workqueue.TypedRateLimitingInterface[string]
	hasNSes bool
}

// New returns a controller over f's ConfigPolicy informer. namespacesAvailable
// is false in local mode, where a namespaceSelector can match nothing.
func New(f informers.SharedInformerFactory, status StatusREST, namespacesAvailable bool) (*Controller, error) {
	inf := f.Config().V1beta1().ConfigPolicies()
	c := &Controller{
		lister:  inf.Lister(),
		synced:  inf.Informer().HasSynced,
		status:  status,
		hasNSes: namespacesAvailable,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "capstan_configpolicy_status"}),
	}
	enqueue := func(obj interface{}) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	})
	return c, err
}

// Run processes the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		for c.processNext(ctx) {
		}
	}, time.Second)
	<-ctx.Done()
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		klog.FromContext(ctx).V(2).Info("Updating configpolicy status failed; will retry", "configpolicy", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *Controller) sync(ctx context.Context, name string) error {
	p, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	want := c.readyCondition(&p.Spec, p.Generation)
	current := meta.FindStatusCondition(p.Status.Conditions, ConditionReady)
	if p.Status.ObservedGeneration == p.Generation && current != nil && current.Status == want.Status &&
		current.Reason == want.Reason && current.Message == want.Message && current.ObservedGeneration == want.ObservedGeneration {
		return nil
	}

	// The store reads the (empty) namespace of a cluster-scoped object from the context.
	ctx = genericapirequest.WithNamespace(ctx, metav1.NamespaceNone)
	obj, err := c.status.Get(ctx, name, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	policy := obj.(*config.ConfigPolicy)
	if policy.Generation != p.Generation {
		// The cache is behind storage; the newer generation's event comes next.
		return nil
	}
	policy.Status.ObservedGeneration = policy.Generation
	meta.SetStatusCondition(&policy.Status.Conditions, want)
	_, _, err = c.status.Update(ctx, name, rest.DefaultUpdatedObjectInfo(policy), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// readyCondition says whether the admission plugin can enforce the policy.
func (c *Controller) readyCondition(spec *configv1beta1.ConfigPolicySpec, generation int64) metav1.Condition {
	cond := metav1.Condition{
		Type:               ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             ReasonEnforced,
		Message:            fmt.Sprintf("checked on every create, update, patch, apply and rollback of the ConfigSets it selects (%s)", spec.Enforcement),
		ObservedGeneration: generation,
	}
	if spec.NamespaceSelector != nil && !c.hasNSes {
		cond.Status = metav1.ConditionFalse
		cond.Reason = ReasonNamespaceSelectorUnsupported
		cond.Message = "this server runs without a cluster (local mode), so there are no namespace labels: a policy with a namespaceSelector matches no ConfigSet"
		return cond
	}
	if spec.KeyPattern != "" {
		if _, err := regexp.Compile(spec.KeyPattern); err != nil {
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonInvalidRule, fmt.Sprintf("keyPattern: %v", err)
			return cond
		}
	}
	for i, rule := range spec.Rules {
		if _, err := policyrule.Compile(rule.Expression); err != nil {
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonInvalidRule, fmt.Sprintf("rules[%d]: %v", i, err)
			return cond
		}
	}
	return cond
}
