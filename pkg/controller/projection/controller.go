// Package projection brings ConfigSets to workloads. For a ConfigSet that asks
// for it, it writes every kept revision N into an immutable ConfigMap and
// Secret named NAME-rN, and the current revision into a pair named NAME
// updated in place; it points the pod templates of the Deployments,
// StatefulSets and DaemonSets that name the ConfigSet in their
// config.capstan.dev/configsets annotation at the current revision, so that a
// change is a rolling update; it deletes per-revision pairs once they are
// neither kept nor used by any workload, ReplicaSet, ControllerRevision or
// Pod; and it reports all of it in the ConfigSet's status.
//
// One sync per ConfigSet does all of it, so that a single writer owns
// status.projection. It never writes an object it does not own: a ConfigMap
// or Secret that has a projected name but another owner is reported, not
// touched.
package projection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
	listers "capstan.dev/capstan/pkg/generated/listers/config/v1beta1"
)

// ConditionProjected is the ConfigSet condition that says whether its
// ConfigMaps and Secrets are written.
const ConditionProjected = "Projected"

// Reasons of the Projected condition.
const (
	ReasonProjected        = "Projected"
	ReasonNameConflict     = "NameConflict"
	ReasonProjectionFailed = "ProjectionFailed"
)

// Controller projects ConfigSets and rolls their consumers.
type Controller struct {
	kube      kubernetes.Interface
	capstan   versioned.Interface
	workloads workloads

	configSets          listers.ConfigSetLister
	configMaps          corelisters.ConfigMapLister
	secrets             corelisters.SecretLister
	replicaSets         appslisters.ReplicaSetLister
	controllerRevisions appslisters.ControllerRevisionLister

	synced []cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[cache.ObjectName]
	lag    *lagTracker
}

// New returns a controller over the given informer factories: capstanInformers
// for ConfigSets, kubeInformers for the workloads, ReplicaSets and
// ControllerRevisions, and projected for ConfigMaps and Secrets, which must be
// limited to those with the config.capstan.dev/projection label (see
// ProjectedListOptions) so that the controller caches no other Secret.
func New(kube kubernetes.Interface, capstan versioned.Interface, capstanInformers informers.SharedInformerFactory,
	kubeInformers, projected kubeinformers.SharedInformerFactory) (*Controller, error) {
	registerMetrics()
	csInf := capstanInformers.Config().V1beta1().ConfigSets()
	apps := kubeInformers.Apps().V1()
	core := projected.Core().V1()
	c := &Controller{
		kube:    kube,
		capstan: capstan,
		workloads: workloads{
			client:       kube,
			deployments:  apps.Deployments().Lister(),
			statefulSets: apps.StatefulSets().Lister(),
			daemonSets:   apps.DaemonSets().Lister(),
		},
		configSets:          csInf.Lister(),
		configMaps:          core.ConfigMaps().Lister(),
		secrets:             core.Secrets().Lister(),
		replicaSets:         apps.ReplicaSets().Lister(),
		controllerRevisions: apps.ControllerRevisions().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[cache.ObjectName](),
			workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: "capstan_projection"}),
		lag: newLagTracker(),
	}
	handlers := []struct {
		inf     cache.SharedIndexInformer
		handler cache.ResourceEventHandler
	}{
		{csInf.Informer(), c.handler(c.configSetKeys)},
		{apps.Deployments().Informer(), c.handler(c.consumerKeys)},
		{apps.StatefulSets().Informer(), c.handler(c.consumerKeys)},
		{apps.DaemonSets().Informer(), c.handler(c.consumerKeys)},
		{apps.ReplicaSets().Informer(), c.deleteHandler(c.referrerKeys)},
		{apps.ControllerRevisions().Informer(), c.deleteHandler(c.referrerKeys)},
		{core.ConfigMaps().Informer(), c.handler(c.ownerKeys)},
		{core.Secrets().Informer(), c.handler(c.ownerKeys)},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.handler); err != nil {
			return nil, err
		}
		c.synced = append(c.synced, h.inf.HasSynced)
	}
	return c, nil
}

// ProjectedListOptions limits an informer factory to the projected ConfigMaps
// and Secrets, for New's projected argument.
func ProjectedListOptions(o *metav1.ListOptions) {
	o.LabelSelector = config.ProjectionLabel
}

// handler enqueues the ConfigSets keys returns for an object on every event.
func (c *Controller) handler(keys func(obj any) []cache.ObjectName) cache.ResourceEventHandler {
	add := func(obj any) {
		for _, k := range keys(obj) {
			c.queue.Add(k)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: add,
		UpdateFunc: func(old, obj any) {
			add(old)
			add(obj)
		},
		DeleteFunc: add,
	}
}

// deleteHandler enqueues only on deletions: a ReplicaSet or ControllerRevision
// going away may free a revision for pruning.
func (c *Controller) deleteHandler(keys func(obj any) []cache.ObjectName) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			for _, k := range keys(obj) {
				c.queue.Add(k)
			}
		},
	}
}

// object unwraps the tombstone a deletion may hand over.
func object(obj any) metav1.Object {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	return m
}

// configSetKeys returns the ConfigSet itself, and notes when its revision
// was first seen, for the lag metrics.
func (c *Controller) configSetKeys(obj any) []cache.ObjectName {
	if cs, ok := obj.(*configv1beta1.ConfigSet); ok {
		c.lag.observe(cs)
	}
	if m := object(obj); m != nil {
		return []cache.ObjectName{{Namespace: m.GetNamespace(), Name: m.GetName()}}
	}
	return nil
}

// consumerKeys returns the ConfigSets a workload names.
func (c *Controller) consumerKeys(obj any) []cache.ObjectName {
	m := object(obj)
	if m == nil {
		return nil
	}
	var keys []cache.ObjectName
	for _, n := range consumedConfigSets(m.GetAnnotations()) {
		keys = append(keys, cache.ObjectName{Namespace: m.GetNamespace(), Name: n})
	}
	return keys
}

// referrerKeys returns the ConfigSets of the namespace that project per
// revision, for a ReplicaSet or ControllerRevision that went away.
func (c *Controller) referrerKeys(obj any) []cache.ObjectName {
	m := object(obj)
	if m == nil {
		return nil
	}
	all, err := c.configSets.ConfigSets(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil
	}
	var keys []cache.ObjectName
	for _, cs := range all {
		if cs.Spec.Projection != nil && cs.Spec.Projection.PerRevision {
			keys = append(keys, cache.ObjectName{Namespace: cs.Namespace, Name: cs.Name})
		}
	}
	return keys
}

// ownerKeys returns the ConfigSet that controls a projected ConfigMap or Secret.
func (c *Controller) ownerKeys(obj any) []cache.ObjectName {
	m := object(obj)
	if m == nil {
		return nil
	}
	if ref := metav1.GetControllerOf(m); ref != nil && ref.Kind == "ConfigSet" && strings.HasPrefix(ref.APIVersion, config.GroupName+"/") {
		return []cache.ObjectName{{Namespace: m.GetNamespace(), Name: ref.Name}}
	}
	return nil
}

// Run processes the queue with the given number of workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting the projection controller")
	defer logger.Info("Stopped the projection controller")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	for range workers {
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			for c.processNext(ctx) {
			}
		}, time.Second)
	}
	<-ctx.Done()
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		klog.FromContext(ctx).V(2).Info("Syncing the projection failed; will retry", "configset", key.String(), "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// errConflict is a projected name held by an object the ConfigSet does not own.
type errConflict struct{ msg string }

func (e *errConflict) Error() string { return e.msg }

// sync brings one ConfigSet's projection, consumers and status up to date.
func (c *Controller) sync(ctx context.Context, key cache.ObjectName) error {
	cs, err := c.configSets.ConfigSets(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		// Its ConfigMaps and Secrets go with it through the garbage collector.
		c.lag.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if cs.DeletionTimestamp != nil {
		return nil
	}
	current := cs.Status.CurrentRevision
	proj := cs.Spec.Projection
	if proj == nil {
		proj = &configv1beta1.ConfigSetProjection{}
	}

	// Write what is wanted; a conflict or an error stops the rollout below,
	// since workloads must never point at a pair that does not exist.
	var projectErr error
	keepFrom := current + 1
	if proj.Stable {
		projectErr = c.ensurePair(ctx, cs, cs.Name, config.ProjectionStable, current, cs.Spec.Data, cs.Spec.SecretData)
	}
	if proj.PerRevision && projectErr == nil {
		keepFrom, projectErr = c.ensureRevisions(ctx, cs)
	}
	// Prune what is no longer wanted, unless something still uses it.
	pruneErr := c.prune(ctx, cs, keepFrom, proj.Stable)

	status := cs.Status.DeepCopy()
	ps := status.Projection
	if ps == nil {
		ps = &configv1beta1.ConfigSetProjectionStatus{}
	}
	projected := cs.Spec.Projection != nil && projectErr == nil
	if projected {
		ps.Revision = current
	}

	consumers, err := c.workloads.consumersOf(cs.Namespace, cs.Name)
	if err != nil {
		return err
	}
	pushed, rollErr := c.rollout(ctx, cs, proj, projected, consumers, ps)
	if projected && rollErr == nil {
		ps.RolloutRevision = current
	}
	c.lag.done(key, current, projected, pushed, projected && rollErr == nil)

	if cs.Spec.Projection == nil && len(ps.Consumers) == 0 {
		status.Projection = nil
		meta.RemoveStatusCondition(&status.Conditions, ConditionProjected)
	} else {
		status.Projection = ps
		meta.SetStatusCondition(&status.Conditions, projectedCondition(cs, projectErr))
	}
	if !equality.Semantic.DeepEqual(status, &cs.Status) {
		updated := cs.DeepCopy()
		updated.Status = *status
		_, err := c.capstan.ConfigV1beta1().ConfigSets(cs.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{FieldManager: fieldManager})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	var conflict *errConflict
	if errors.As(projectErr, &conflict) {
		// Reported in the condition; the owner's change of mind comes as an event.
		projectErr = nil
	}
	err = errors.Join(projectErr, pruneErr, rollErr)
	syncsTotal.WithLabelValues(syncResult(cs, conflict != nil, err)).Inc()
	return err
}

// syncResult is the result label of capstan_projection_syncs_total.
func syncResult(cs *configv1beta1.ConfigSet, conflict bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case cs.Spec.Projection == nil:
		return "not_requested"
	case conflict:
		return "name_conflict"
	default:
		return "projected"
	}
}

// projectedCondition is the Projected condition for the outcome of a sync.
func projectedCondition(cs *configv1beta1.ConfigSet, err error) metav1.Condition {
	cond := metav1.Condition{Type: ConditionProjected, ObservedGeneration: cs.Generation}
	var conflict *errConflict
	switch {
	case cs.Spec.Projection == nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, "NotRequested"
		cond.Message = "spec.projection is not set; workloads that name this ConfigSet are reported but not changed"
	case err == nil:
		cond.Status, cond.Reason = metav1.ConditionTrue, ReasonProjected
		cond.Message = fmt.Sprintf("revision %d is projected", cs.Status.CurrentRevision)
	case errors.As(err, &conflict):
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonNameConflict, conflict.msg
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonProjectionFailed
		cond.Message = err.Error()
	}
	return cond
}

// ensureRevisions writes the pair of every kept revision that has none yet:
// the current one from the ConfigSet, older ones from their ConfigRevisions.
// It returns the oldest kept revision: history is pruned oldest first, so the
// kept revisions are those from it to the current one.
func (c *Controller) ensureRevisions(ctx context.Context, cs *configv1beta1.ConfigSet) (int64, error) {
	current := cs.Status.CurrentRevision
	name := ProjectedName(cs.Name, current)
	if err := c.ensurePair(ctx, cs, name, config.ProjectionPerRevision, current, cs.Spec.Data, cs.Spec.SecretData); err != nil {
		return current, err
	}
	limit := int64(config.DefaultRevisionHistoryLimit)
	if cs.Spec.RevisionHistoryLimit != nil {
		limit = int64(*cs.Spec.RevisionHistoryLimit)
	}
	oldest := max(1, current-limit+1)
	for rev := current - 1; rev >= oldest; rev-- {
		name := ProjectedName(cs.Name, rev)
		if c.hasPair(cs, name) {
			continue
		}
		r, err := c.capstan.ConfigV1beta1().ConfigRevisions(cs.Namespace).Get(ctx, config.RevisionName(cs.Name, rev), metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(r, cs)) {
			return rev + 1, nil
		}
		if err != nil {
			return oldest, err
		}
		if err := c.ensurePair(ctx, cs, name, config.ProjectionPerRevision, rev, r.Data, r.SecretData); err != nil {
			return oldest, err
		}
	}
	return oldest, nil
}

// hasPair says whether the cache holds both objects of a pair, owned by cs.
func (c *Controller) hasPair(cs *configv1beta1.ConfigSet, name string) bool {
	cm, err := c.configMaps.ConfigMaps(cs.Namespace).Get(name)
	if err != nil || !metav1.IsControlledBy(cm, cs) {
		return false
	}
	s, err := c.secrets.Secrets(cs.Namespace).Get(name)
	return err == nil && metav1.IsControlledBy(s, cs)
}

// objectMeta is the metadata of a projected ConfigMap or Secret.
func objectMeta(cs *configv1beta1.ConfigSet, name, projection string, rev int64) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: cs.Namespace,
		Labels: map[string]string{
			config.ConfigSetLabel:  config.ConfigSetLabelValue(cs.Name),
			config.ProjectionLabel: projection,
			config.RevisionLabel:   fmt.Sprint(rev),
		},
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cs, configv1beta1.SchemeGroupVersion.WithKind("ConfigSet"))},
	}
}

// ensurePair writes the ConfigMap (data) and the Secret (secretData) named
// name. A per-revision pair is immutable and written once; the stable pair is
// updated in place when it holds another revision.
func (c *Controller) ensurePair(ctx context.Context, cs *configv1beta1.ConfigSet, name, projection string, rev int64,
	data map[string]string, secretData map[string][]byte) error {
	immutable := projection == config.ProjectionPerRevision
	om := objectMeta(cs, name, projection, rev)

	wantCM := &corev1.ConfigMap{ObjectMeta: om, Data: data}
	wantSecret := &corev1.Secret{ObjectMeta: *om.DeepCopy(), Type: corev1.SecretTypeOpaque, Data: secretData}
	if immutable {
		wantCM.Immutable = ptr.To(true)
		wantSecret.Immutable = ptr.To(true)
	}

	cm, err := c.configMaps.ConfigMaps(cs.Namespace).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		_, err := c.kube.CoreV1().ConfigMaps(cs.Namespace).Create(ctx, wantCM, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			return c.checkOwner(ctx, cs, "ConfigMap", name)
		}
		if err != nil {
			return err
		}
		objectWritesTotal.WithLabelValues("ConfigMap", "create").Inc()
	case err != nil:
		return err
	case !metav1.IsControlledBy(cm, cs):
		return conflictError(cs, "ConfigMap", name)
	case !immutable && (cm.Labels[config.RevisionLabel] != om.Labels[config.RevisionLabel] || !equality.Semantic.DeepEqual(cm.Data, data)):
		cm = cm.DeepCopy()
		cm.Labels = om.Labels
		cm.Data = data
		cm.BinaryData = nil
		if _, err := c.kube.CoreV1().ConfigMaps(cs.Namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
			return err
		}
		objectWritesTotal.WithLabelValues("ConfigMap", "update").Inc()
	}

	s, err := c.secrets.Secrets(cs.Namespace).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		_, err := c.kube.CoreV1().Secrets(cs.Namespace).Create(ctx, wantSecret, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			return c.checkOwner(ctx, cs, "Secret", name)
		}
		if err == nil {
			objectWritesTotal.WithLabelValues("Secret", "create").Inc()
		}
		return err
	case err != nil:
		return err
	case !metav1.IsControlledBy(s, cs):
		return conflictError(cs, "Secret", name)
	case !immutable && (s.Labels[config.RevisionLabel] != om.Labels[config.RevisionLabel] || !equality.Semantic.DeepEqual(s.Data, secretData)):
		s = s.DeepCopy()
		s.Labels = om.Labels
		s.Data = secretData
		s.StringData = nil
		_, err := c.kube.CoreV1().Secrets(cs.Namespace).Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
		if err == nil {
			objectWritesTotal.WithLabelValues("Secret", "update").Inc()
		}
		return err
	}
	return nil
}

// checkOwner reads an object whose create found the name taken: the cache may
// be behind our own write, or the object belongs to someone else.
func (c *Controller) checkOwner(ctx context.Context, cs *configv1beta1.ConfigSet, kind, name string) error {
	var (
		m   metav1.Object
		err error
	)
	if kind == "ConfigMap" {
		m, err = c.kube.CoreV1().ConfigMaps(cs.Namespace).Get(ctx, name, metav1.GetOptions{})
	} else {
		m, err = c.kube.CoreV1().Secrets(cs.Namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	if !metav1.IsControlledBy(m, cs) {
		return conflictError(cs, kind, name)
	}
	// Ours, and the cache is behind: the next event completes the pair.
	return fmt.Errorf("%s %s was created but is not in the cache yet", kind, name)
}

func conflictError(cs *configv1beta1.ConfigSet, kind, name string) error {
	return &errConflict{msg: fmt.Sprintf("%s %s/%s exists and is not owned by ConfigSet %s: it is left alone; "+
		"delete or rename it, or rename the ConfigSet", kind, cs.Namespace, name, cs.Name)}
}

// prune deletes the pairs the ConfigSet owns that are no longer wanted, the
// per-revision ones older than keepFrom and the stable one when stable is
// false, except those a workload, ReplicaSet, ControllerRevision or Pod of
// the namespace still uses.
func (c *Controller) prune(ctx context.Context, cs *configv1beta1.ConfigSet, keepFrom int64, stable bool) error {
	wanted := func(m metav1.Object) bool {
		if !metav1.IsControlledBy(m, cs) {
			return true
		}
		switch m.GetLabels()[config.ProjectionLabel] {
		case config.ProjectionStable:
			return stable || m.GetName() != cs.Name
		case config.ProjectionPerRevision:
			rev, ok := projectedRevision(m.GetName(), cs.Name)
			return !ok || rev >= keepFrom
		}
		return true
	}
	sel := labels.SelectorFromSet(labels.Set{config.ConfigSetLabel: config.ConfigSetLabelValue(cs.Name)})
	cms, err := c.configMaps.ConfigMaps(cs.Namespace).List(sel)
	if err != nil {
		return err
	}
	secrets, err := c.secrets.Secrets(cs.Namespace).List(sel)
	if err != nil {
		return err
	}
	var candidates []metav1.Object
	for _, cm := range cms {
		if !wanted(cm) {
			candidates = append(candidates, cm)
		}
	}
	for _, s := range secrets {
		if !wanted(s) {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	used, err := c.usedInNamespace(ctx, cs.Namespace)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range candidates {
		_, secret := m.(*corev1.Secret)
		if used.Has(objectRef{secret: secret, name: m.GetName()}) {
			continue
		}
		uid := m.GetUID()
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}
		if secret {
			err = c.kube.CoreV1().Secrets(cs.Namespace).Delete(ctx, m.GetName(), opts)
		} else {
			err = c.kube.CoreV1().ConfigMaps(cs.Namespace).Delete(ctx, m.GetName(), opts)
		}
		kind := "ConfigMap"
		if secret {
			kind = "Secret"
		}
		switch {
		case err == nil:
			objectWritesTotal.WithLabelValues(kind, "delete").Inc()
		case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// usedInNamespace returns every ConfigMap and Secret that a pod template of
// the namespace uses: workloads, ReplicaSets (rollback targets of
// Deployments), ControllerRevisions (of StatefulSets and DaemonSets) and Pods.
// Pods are listed from kube-apiserver, since the controller does not cache them.
func (c *Controller) usedInNamespace(ctx context.Context, namespace string) (sets.Set[objectRef], error) {
	used := sets.New[objectRef]()
	if err := c.workloads.templateReferences(namespace, used); err != nil {
		return nil, err
	}
	rss, err := c.replicaSets.ReplicaSets(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, rs := range rss {
		references(&rs.Spec.Template.Spec, used)
	}
	crs, err := c.controllerRevisions.ControllerRevisions(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, cr := range crs {
		if t, ok := controllerRevisionTemplate(cr); ok {
			references(&t.Spec, used)
		}
	}
	// Served from kube-apiserver's watch cache.
	pods, err := c.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		references(&pods.Items[i].Spec, used)
	}
	return used, nil
}

// rollout points the consumers at the current revision when the ConfigSet's
// revision changed since the last rollout, or when a consumer is new to it,
// and records in ps what each consumer's template refers to. A consumer
// rolled back by hand stays where it is until the next revision.
func (c *Controller) rollout(ctx context.Context, cs *configv1beta1.ConfigSet, proj *configv1beta1.ConfigSetProjection,
	projected bool, consumers []consumer, ps *configv1beta1.ConfigSetProjectionStatus) (bool, error) {
	current := cs.Status.CurrentRevision
	known := map[[2]string]bool{}
	for _, k := range ps.Consumers {
		known[[2]string{k.Kind, k.Name}] = true
	}
	target := cs.Name
	if proj.PerRevision {
		target = ProjectedName(cs.Name, current)
	}
	var errs []error
	pushed := false
	statuses := make([]configv1beta1.ConfigSetConsumer, 0, len(consumers))
	for _, w := range consumers {
		rev := TemplateRevision(w.template.Annotations, cs.Name)
		push := projected && rev != current &&
			(ps.RolloutRevision != current || !known[[2]string{w.kind, w.name}] || rev == 0)
		rolledOut := w.rolledOut
		if push {
			err := w.update(ctx, func(t *corev1.PodTemplateSpec) bool {
				revs := templateRevisions(t.Annotations[config.RevisionsAnnotation])
				revs[cs.Name] = current
				if t.Annotations == nil {
					t.Annotations = map[string]string{}
				}
				t.Annotations[config.RevisionsAnnotation] = formatRevisions(revs)
				pointAt(&t.Spec, cs.Name, target)
				return true
			})
			if err != nil {
				workloadUpdatesTotal.WithLabelValues(w.kind, "error").Inc()
				errs = append(errs, fmt.Errorf("pointing %s %s at revision %d: %w", w.kind, w.name, current, err))
			} else {
				workloadUpdatesTotal.WithLabelValues(w.kind, "success").Inc()
				rev, rolledOut, pushed = current, false, true
				klog.FromContext(ctx).V(2).Info("Pointed a workload at a ConfigSet revision", "configset", klog.KObj(cs),
					"kind", w.kind, "name", w.name, "revision", current)
			}
		}
		statuses = append(statuses, configv1beta1.ConfigSetConsumer{Kind: w.kind, Name: w.name, Revision: rev, RolledOut: rolledOut})
	}
	slices.SortFunc(statuses, func(a, b configv1beta1.ConfigSetConsumer) int {
		return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name)
	})
	ps.Consumers = statuses
	return pushed, errors.Join(errs...)
}
