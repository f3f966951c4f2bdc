// Package quota says how writes to config.capstan.dev count against the
// cluster's ResourceQuotas: the configuration k8s.io/apiserver's ResourceQuota
// admission plugin evaluates in aggregated mode.
//
// kube-controller-manager's resource quota controller computes each quota's
// usage by listing ConfigSets and ConfigRevisions through the aggregator, as
// it does for every listable resource; it also frees usage when they are
// deleted. Admission charges each write as it happens, which for ConfigSets
// includes the revision the server writes for a change of the entries: no
// client ever creates a ConfigRevision, so without that charge a namespace at
// its revision quota would only be noticed at the controller's next full
// resync.
package quota

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	quota "k8s.io/apiserver/pkg/quota/v1"
	"k8s.io/apiserver/pkg/quota/v1/generic"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

var (
	configSets      = config.Resource("configsets")
	configRevisions = config.Resource("configrevisions")

	// ConfigSetsCount and ConfigRevisionsCount are the object-count quota
	// names, as kube-controller-manager computes them.
	ConfigSetsCount      = generic.ObjectCountQuotaResourceNameFor(configSets)
	ConfigRevisionsCount = generic.ObjectCountQuotaResourceNameFor(configRevisions)
)

// NewConfiguration returns the quota configuration of the admission plugin.
// recordsHistory says whether a change of the entries writes a revision
// (--record-history).
func NewConfiguration(recordsHistory bool) quota.Configuration {
	return generic.NewConfiguration([]quota.Evaluator{&configSetEvaluator{recordsHistory: recordsHistory}}, nil)
}

// configSetEvaluator charges a ConfigSet create one ConfigSet and one revision,
// and an update (a rollback included, which the server admits as an update)
// one revision when it changes the entries. Admission charges an update the
// difference of the usage of the new and the old object, so the usage of a
// ConfigSet counts the revisions it has made: status.currentRevision, which
// the strategy has already advanced when admission runs.
type configSetEvaluator struct {
	recordsHistory bool
}

var _ quota.Evaluator = &configSetEvaluator{}

func (e *configSetEvaluator) GroupResource() schema.GroupResource { return configSets }

// Handles is true for creates and updates of the ConfigSet itself; its status
// never changes the entries.
func (e *configSetEvaluator) Handles(a admission.Attributes) bool {
	if a.GetSubresource() != "" {
		return false
	}
	op := a.GetOperation()
	return op == admission.Create || op == admission.Update
}

func (e *configSetEvaluator) Usage(obj runtime.Object) (corev1.ResourceList, error) {
	var revisions int64
	switch cs := obj.(type) {
	case *config.ConfigSet:
		revisions = cs.Status.CurrentRevision
	case *v1beta1.ConfigSet:
		revisions = cs.Status.CurrentRevision
	default:
		return nil, fmt.Errorf("quota: not a ConfigSet: %T", obj)
	}
	usage := corev1.ResourceList{ConfigSetsCount: *resource.NewQuantity(1, resource.DecimalSI)}
	if e.recordsHistory {
		usage[ConfigRevisionsCount] = *resource.NewQuantity(revisions, resource.DecimalSI)
	}
	return usage, nil
}

func (e *configSetEvaluator) MatchingResources(input []corev1.ResourceName) []corev1.ResourceName {
	return quota.Intersection(input, []corev1.ResourceName{ConfigSetsCount, ConfigRevisionsCount})
}

func (e *configSetEvaluator) Matches(q *corev1.ResourceQuota, obj runtime.Object) (bool, error) {
	return generic.Matches(q, obj, e.MatchingResources, generic.MatchesNoScopeFunc)
}

// Constraints requires nothing of a ConfigSet: there are no per-object limits.
func (e *configSetEvaluator) Constraints([]corev1.ResourceName, runtime.Object) error { return nil }

// MatchingScopes is empty: quota scopes (priority class, terminating, ...)
// describe pods.
func (e *configSetEvaluator) MatchingScopes(runtime.Object, []corev1.ScopedResourceSelectorRequirement) ([]corev1.ScopedResourceSelectorRequirement, error) {
	return nil, nil
}

func (e *configSetEvaluator) UncoveredQuotaScopes([]corev1.ScopedResourceSelectorRequirement, []corev1.ScopedResourceSelectorRequirement) ([]corev1.ScopedResourceSelectorRequirement, error) {
	return nil, nil
}

// UsageStats is what the quota controller computes; Capstan runs none.
func (e *configSetEvaluator) UsageStats(quota.UsageStatsOptions) (quota.UsageStats, error) {
	return quota.UsageStats{}, fmt.Errorf("quota: the usage of %s is computed by kube-controller-manager", configSets)
}
