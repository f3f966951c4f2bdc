package quota

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/resourcequota"

	"capstan.dev/capstan/pkg/apis/config"
)

func configSet(rev int64) *config.ConfigSet {
	return &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "team", ResourceVersion: "7"},
		Status:     config.ConfigSetStatus{CurrentRevision: rev},
	}
}

func attrs(op admission.Operation, obj, old *config.ConfigSet, subresource string) admission.Attributes {
	var oldObj runtime.Object
	if old != nil {
		oldObj = old
	}
	return admission.NewAttributesRecord(obj, oldObj, config.Kind("ConfigSet").WithVersion(""), "team", "a",
		config.Resource("configsets").WithVersion(""), subresource, op, nil, false, nil)
}

func resourceQuota(hard, used corev1.ResourceList) corev1.ResourceQuota {
	return corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "team"},
		Status:     corev1.ResourceQuotaStatus{Hard: hard, Used: used},
	}
}

func qty(n int64) resource.Quantity { return *resource.NewQuantity(n, resource.DecimalSI) }

// TestConfigSetCharges runs the ResourceQuota plugin's own check with the
// ConfigSet evaluator: what each write costs and when it is refused.
func TestConfigSetCharges(t *testing.T) {
	hard := corev1.ResourceList{ConfigSetsCount: qty(2), ConfigRevisionsCount: qty(4)}
	tests := []struct {
		name     string
		a        admission.Attributes
		used     corev1.ResourceList
		history  bool
		want     corev1.ResourceList
		exceeded string
	}{
		{name: "create charges a ConfigSet and its first revision",
			a: attrs(admission.Create, configSet(1), nil, ""), used: corev1.ResourceList{ConfigSetsCount: qty(0), ConfigRevisionsCount: qty(0)}, history: true,
			want: corev1.ResourceList{ConfigSetsCount: qty(1), ConfigRevisionsCount: qty(1)}},
		{name: "a change of the entries charges one revision",
			a: attrs(admission.Update, configSet(4), configSet(3), ""), used: corev1.ResourceList{ConfigSetsCount: qty(1), ConfigRevisionsCount: qty(3)}, history: true,
			want: corev1.ResourceList{ConfigSetsCount: qty(1), ConfigRevisionsCount: qty(4)}},
		{name: "an update that writes no revision is free at the limit",
			a: attrs(admission.Update, configSet(4), configSet(4), ""), used: corev1.ResourceList{ConfigSetsCount: qty(2), ConfigRevisionsCount: qty(4)}, history: true,
			want: corev1.ResourceList{ConfigSetsCount: qty(2), ConfigRevisionsCount: qty(4)}},
		{name: "a change of the entries at the revision limit is refused",
			a: attrs(admission.Update, configSet(5), configSet(4), ""), used: corev1.ResourceList{ConfigSetsCount: qty(1), ConfigRevisionsCount: qty(4)}, history: true,
			exceeded: "exceeded quota: q, requested: count/configrevisions.config.capstan.dev=1, used: count/configrevisions.config.capstan.dev=4, limited: count/configrevisions.config.capstan.dev=4"},
		{name: "a create at the ConfigSet limit is refused",
			a: attrs(admission.Create, configSet(1), nil, ""), used: corev1.ResourceList{ConfigSetsCount: qty(2), ConfigRevisionsCount: qty(2)}, history: true,
			exceeded: "exceeded quota: q, requested: count/configsets.config.capstan.dev=1, used: count/configsets.config.capstan.dev=2, limited: count/configsets.config.capstan.dev=2"},
		{name: "without history a create charges no revision",
			a: attrs(admission.Create, configSet(1), nil, ""), used: corev1.ResourceList{ConfigSetsCount: qty(0), ConfigRevisionsCount: qty(4)}, history: false,
			want: corev1.ResourceList{ConfigSetsCount: qty(1), ConfigRevisionsCount: qty(4)}},
		{name: "status writes are not charged",
			a: attrs(admission.Update, configSet(5), configSet(4), "status"), used: corev1.ResourceList{ConfigSetsCount: qty(2), ConfigRevisionsCount: qty(4)}, history: true,
			want: corev1.ResourceList{ConfigSetsCount: qty(2), ConfigRevisionsCount: qty(4)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &configSetEvaluator{recordsHistory: tc.history}
			out, err := resourcequota.CheckRequest([]corev1.ResourceQuota{resourceQuota(hard, tc.used)}, tc.a, e, nil)
			if tc.exceeded != "" {
				if err == nil || !strings.Contains(err.Error(), tc.exceeded) {
					t.Fatalf("got %v, want an error with %q", err, tc.exceeded)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := out[0].Status.Used
			for res, want := range tc.want {
				if q := got[res]; q.Cmp(want) != 0 {
					t.Errorf("used %s = %s, want %s", res, q.String(), want.String())
				}
			}
		})
	}
}
