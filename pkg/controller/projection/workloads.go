package projection

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
)

// Kinds of the workloads that may consume a ConfigSet, all in group apps.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

// consumer is one workload that names a ConfigSet in its annotation, as the
// informer cache holds it: never modified in place.
type consumer struct {
	kind      string
	name      string
	template  *corev1.PodTemplateSpec
	rolledOut bool
	// update writes a copy of the workload whose template mutate changed;
	// it writes nothing when mutate reports no change.
	update func(ctx context.Context, mutate func(*corev1.PodTemplateSpec) bool) error
}

// workloads reads Deployments, StatefulSets and DaemonSets from the informer
// caches and writes them through the clientset.
type workloads struct {
	client       kubernetes.Interface
	deployments  appslisters.DeploymentLister
	statefulSets appslisters.StatefulSetLister
	daemonSets   appslisters.DaemonSetLister
}

// fieldManager is the controller manager's name in managedFields.
const fieldManager = "capstan-controller-manager"

// consumersOf returns the workloads of namespace that name the ConfigSet.
func (w workloads) consumersOf(namespace, configSet string) ([]consumer, error) {
	names := func(m metav1.Object) bool {
		for _, n := range consumedConfigSets(m.GetAnnotations()) {
			if n == configSet {
				return true
			}
		}
		return false
	}
	var out []consumer
	deployments, err := w.deployments.Deployments(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, d := range deployments {
		if !names(d) {
			continue
		}
		out = append(out, consumer{
			kind: KindDeployment, name: d.Name, template: &d.Spec.Template, rolledOut: deploymentRolledOut(d),
			update: func(ctx context.Context, mutate func(*corev1.PodTemplateSpec) bool) error {
				d := d.DeepCopy()
				if !mutate(&d.Spec.Template) {
					return nil
				}
				_, err := w.client.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{FieldManager: fieldManager})
				return err
			},
		})
	}
	statefulSets, err := w.statefulSets.StatefulSets(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, s := range statefulSets {
		if !names(s) {
			continue
		}
		out = append(out, consumer{
			kind: KindStatefulSet, name: s.Name, template: &s.Spec.Template, rolledOut: statefulSetRolledOut(s),
			update: func(ctx context.Context, mutate func(*corev1.PodTemplateSpec) bool) error {
				s := s.DeepCopy()
				if !mutate(&s.Spec.Template) {
					return nil
				}
				_, err := w.client.AppsV1().StatefulSets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
				return err
			},
		})
	}
	daemonSets, err := w.daemonSets.DaemonSets(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, ds := range daemonSets {
		if !names(ds) {
			continue
		}
		out = append(out, consumer{
			kind: KindDaemonSet, name: ds.Name, template: &ds.Spec.Template, rolledOut: daemonSetRolledOut(ds),
			update: func(ctx context.Context, mutate func(*corev1.PodTemplateSpec) bool) error {
				ds := ds.DeepCopy()
				if !mutate(&ds.Spec.Template) {
					return nil
				}
				_, err := w.client.AppsV1().DaemonSets(ds.Namespace).Update(ctx, ds, metav1.UpdateOptions{FieldManager: fieldManager})
				return err
			},
		})
	}
	return out, nil
}

// templateReferences adds what the pod templates of the namespace's
// workloads use to refs.
func (w workloads) templateReferences(namespace string, refs sets.Set[objectRef]) error {
	deployments, err := w.deployments.Deployments(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, d := range deployments {
		references(&d.Spec.Template.Spec, refs)
	}
	statefulSets, err := w.statefulSets.StatefulSets(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, s := range statefulSets {
		references(&s.Spec.Template.Spec, refs)
	}
	daemonSets, err := w.daemonSets.DaemonSets(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, ds := range daemonSets {
		references(&ds.Spec.Template.Spec, refs)
	}
	return nil
}

// deploymentRolledOut says what `kubectl rollout status` waits for: the
// controller saw the latest spec and every replica is updated and available.
func deploymentRolledOut(d *appsv1.Deployment) bool {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == replicas &&
		s.Replicas == s.UpdatedReplicas && s.AvailableReplicas == s.UpdatedReplicas
}

// statefulSetRolledOut says whether every replica runs the latest revision and is ready.
func statefulSetRolledOut(s *appsv1.StatefulSet) bool {
	replicas := int32(1)
	if s.Spec.Replicas != nil {
		replicas = *s.Spec.Replicas
	}
	st := s.Status
	return st.ObservedGeneration >= s.Generation && st.UpdateRevision != "" && st.CurrentRevision == st.UpdateRevision &&
		st.UpdatedReplicas == replicas && st.ReadyReplicas == replicas
}

// daemonSetRolledOut says whether every scheduled pod is updated and available.
func daemonSetRolledOut(ds *appsv1.DaemonSet) bool {
	st := ds.Status
	return st.ObservedGeneration >= ds.Generation && st.UpdatedNumberScheduled == st.DesiredNumberScheduled &&
		st.NumberAvailable == st.DesiredNumberScheduled
}
