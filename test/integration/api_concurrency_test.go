package integration

import (
	"reflect"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// The TestAPIConcurrency tests check optimistic concurrency on update,
// AlreadyExists on create, and delete preconditions.

// TestAPIConcurrencyStaleUpdate: stale resourceVersion on update is a conflict.
func TestAPIConcurrencyStaleUpdate(t *testing.T) {
	e := sharedEnv(t)
	const ns = "concurrency-stale"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	first := e.mustCreate(t, ns, configSet("stale", map[string]string{"k": "0"}, nil))
	fresh := first.DeepCopy()
	fresh.Spec.Data["k"] = "1"
	updated, err := client.Update(e.ctx, fresh, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("first update: %v", err)
	}
	stale := first.DeepCopy()
	stale.Spec.Data["k"] = "2"
	_, err = client.Update(e.ctx, stale, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("update with resourceVersion %s after %s: err = %v, want 409 Conflict", first.ResourceVersion, updated.ResourceVersion, err)
	}
	got, err := client.Get(e.ctx, "stale", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Spec.Data["k"] != "1" || got.ResourceVersion != updated.ResourceVersion || got.Status.CurrentRevision != 2 {
		t.Errorf("after refused update: data %v rv %s revision %d; want k=1, rv %s, revision 2",
			got.Spec.Data, got.ResourceVersion, got.Status.CurrentRevision, updated.ResourceVersion)
	}

	// The same through the old version, and for a status write.
	alphaStale, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Get(e.ctx, "stale", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v1alpha1: %v", err)
	}
	got.Spec.Data["k"] = "3"
	if _, err := client.Update(e.ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	alphaStale.Spec.Entries = []v1alpha1.ConfigEntry{{Key: "k", Value: "4"}}
	if _, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Update(e.ctx, alphaStale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("v1alpha1 update with a stale resourceVersion: err = %v, want 409 Conflict", err)
	}
	got.Status.Conditions = []metav1.Condition{{Type: "Seen", Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: metav1.Now()}}
	if _, err := client.UpdateStatus(e.ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("status update with a stale resourceVersion: err = %v, want 409 Conflict", err)
	}
}

// TestAPIConcurrencyStalePolicyUpdate: stale resourceVersion on a policy update is a conflict.
func TestAPIConcurrencyStalePolicyUpdate(t *testing.T) {
	e := sharedEnv(t)
	const ns = "concurrency-stale-policy"

	pc := e.cs.ConfigV1beta1().ConfigPolicies()
	p, err := pc.Create(e.ctx, &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "stale-policy"},
		Spec:       v1beta1.ConfigPolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"apitest-never": "selected"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	e.onFreshPolicy(t, p.Name, func(fresh *v1beta1.ConfigPolicy) error {
		fresh.Spec.MaxKeys = ptr.To[int32](5)
		_, err := pc.Update(e.ctx, fresh, metav1.UpdateOptions{})
		return err
	})
	p.Spec.KeyPattern = "^x$"
	if _, err := pc.Update(e.ctx, p, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("policy update with a stale resourceVersion: err = %v, want 409 Conflict", err)
	}
}

// TestAPIConcurrencyCreateExisting: create of an existing name is AlreadyExists.
func TestAPIConcurrencyCreateExisting(t *testing.T) {
	e := sharedEnv(t)
	const ns = "concurrency-exists"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	orig := e.mustCreate(t, ns, configSet("dup", map[string]string{"k": "original"}, nil))
	_, err := client.Create(e.ctx, configSet("dup", map[string]string{"k": "second"}, nil), metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: err = %v, want AlreadyExists", err)
	}
	_, err = e.cs.ConfigV1alpha1().ConfigSets(ns).Create(e.ctx, &v1alpha1.ConfigSet{ObjectMeta: metav1.ObjectMeta{Name: "dup"}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create through v1alpha1: err = %v, want AlreadyExists", err)
	}
	got, err := client.Get(e.ctx, "dup", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.UID != orig.UID || !reflect.DeepEqual(got.Spec.Data, map[string]string{"k": "original"}) {
		t.Errorf("after refused create: uid %s data %v; want uid %s, k=original", got.UID, got.Spec.Data, orig.UID)
	}
	pc := e.cs.ConfigV1beta1().ConfigPolicies()
	policy := &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "dup-policy"},
		Spec:       v1beta1.ConfigPolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"apitest-never": "selected"}}},
	}
	if _, err := pc.Create(e.ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	if _, err := pc.Create(e.ctx, policy, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second policy create: err = %v, want AlreadyExists", err)
	}
}

// TestAPIConcurrencyDeletePreconditions: delete preconditions.
func TestAPIConcurrencyDeletePreconditions(t *testing.T) {
	e := sharedEnv(t)
	const ns = "concurrency-preconditions"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	obj := e.mustCreate(t, ns, configSet("guarded", map[string]string{"k": "v"}, nil))
	wrongUID := types.UID("00000000-0000-0000-0000-000000000000")
	err := client.Delete(e.ctx, "guarded", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrongUID}})
	if !apierrors.IsConflict(err) {
		t.Errorf("delete with wrong UID: err = %v, want 409 Conflict", err)
	}
	// A resourceVersion that was valid once but is no longer current.
	updated := obj.DeepCopy()
	updated.Spec.Data["k"] = "w"
	updated, err = client.Update(e.ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	oldRV := obj.ResourceVersion
	err = client.Delete(e.ctx, "guarded", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &oldRV}})
	if !apierrors.IsConflict(err) {
		t.Errorf("delete with stale resourceVersion: err = %v, want 409 Conflict", err)
	}
	if got, err := client.Get(e.ctx, "guarded", metav1.GetOptions{}); err != nil || got.UID != obj.UID {
		t.Fatalf("ConfigSet gone after refused deletes: %v", err)
	}
	uid, rv := updated.UID, updated.ResourceVersion
	if err := client.Delete(e.ctx, "guarded", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}}); err != nil {
		t.Fatalf("delete with matching preconditions: %v", err)
	}
	if _, err := client.Get(e.ctx, "guarded", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: err = %v, want NotFound", err)
	}

	// A ConfigSet recreated under the same name has a new UID: a delete
	// aimed at the old one must not remove it.
	e.mustCreate(t, ns, configSet("guarded", nil, nil))
	if err := client.Delete(e.ctx, "guarded", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); !apierrors.IsConflict(err) {
		t.Errorf("delete of a recreated ConfigSet with the old UID: err = %v, want 409 Conflict", err)
	}

	pc := e.cs.ConfigV1beta1().ConfigPolicies()
	p, err := pc.Create(e.ctx, &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "guarded-policy"},
		Spec:       v1beta1.ConfigPolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"apitest-never": "selected"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	if err := pc.Delete(e.ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrongUID}}); !apierrors.IsConflict(err) {
		t.Errorf("policy delete with wrong UID: err = %v, want 409 Conflict", err)
	}
	e.onFreshPolicy(t, p.Name, func(fresh *v1beta1.ConfigPolicy) error {
		return pc.Delete(e.ctx, fresh.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &fresh.UID, ResourceVersion: &fresh.ResourceVersion}})
	})
	if _, err := pc.Get(e.ctx, p.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("policy get after delete: err = %v, want NotFound", err)
	}
}
