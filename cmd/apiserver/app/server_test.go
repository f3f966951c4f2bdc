package app

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// The informers keep what the history reconciler compares and nothing of the
// entries, secret or not.
func TestTrimCached(t *testing.T) {
	meta := metav1.ObjectMeta{
		Name: "checkout", Namespace: "shop", UID: "u1",
		OwnerReferences: []metav1.OwnerReference{{Kind: "ConfigSet", Name: "checkout", UID: "u0"}},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
	cs := &configv1beta1.ConfigSet{
		ObjectMeta: *meta.DeepCopy(),
		Spec: configv1beta1.ConfigSetSpec{
			Data: map[string]string{"A": "1"}, SecretData: map[string][]byte{"TOKEN": []byte("s3cr3t")},
			RevisionHistoryLimit: ptr.To[int32](7),
		},
		Status: configv1beta1.ConfigSetStatus{CurrentRevision: 4},
	}
	out, err := trimCached(cs)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*configv1beta1.ConfigSet)
	if got.Spec.Data != nil || got.Spec.SecretData != nil || got.ManagedFields != nil {
		t.Errorf("ConfigSet kept entries or managedFields: %+v", got)
	}
	if got.Name != "checkout" || got.UID != "u1" || got.Status.CurrentRevision != 4 || *got.Spec.RevisionHistoryLimit != 7 {
		t.Errorf("ConfigSet lost what the reconciler reads: %+v", got)
	}

	policy := &configv1beta1.ConfigPolicy{ObjectMeta: *meta.DeepCopy(), Spec: configv1beta1.ConfigPolicySpec{ForbiddenKeys: []string{"DEBUG"}}}
	out, _ = trimCached(policy)
	if p := out.(*configv1beta1.ConfigPolicy); p.ManagedFields != nil || len(p.Spec.ForbiddenKeys) != 1 {
		t.Errorf("ConfigPolicy: want its spec kept and managedFields dropped, got %+v", p)
	}
}
