package integration

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestAPIVersionRoundTrip writes through one version, reads and writes back
// through the other, and checks that nothing is lost either way.
func TestAPIVersionRoundTrip(t *testing.T) {
	e := sharedEnv(t)
	const ns = "roundtrip"
	alpha := e.cs.ConfigV1alpha1().ConfigSets(ns)
	beta := e.cs.ConfigV1beta1().ConfigSets(ns)

	t.Run("v1beta1 binary secrets through v1alpha1", func(t *testing.T) {
		binary := []byte{0, 255, 1}
		created, err := beta.Create(e.ctx, &v1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "new-client"},
			Spec: v1beta1.ConfigSetSpec{
				Data:       map[string]string{"mode": "fast", "unicode": "héllo ✓"},
				SecretData: map[string][]byte{"bin": binary, "text": []byte("plain-secret")},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create v1beta1: %v", err)
		}

		a, err := alpha.Get(e.ctx, "new-client", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get v1alpha1: %v", err)
		}
		want := []v1alpha1.ConfigEntry{
			{Key: "bin", Value: "AP8B", Secret: true},
			{Key: "mode", Value: "fast"},
			{Key: "text", Value: base64.StdEncoding.EncodeToString([]byte("plain-secret")), Secret: true},
			{Key: "unicode", Value: "héllo ✓"},
		}
		if !reflect.DeepEqual(a.Spec.Entries, want) {
			t.Errorf("v1alpha1 entries = %+v, want %+v", a.Spec.Entries, want)
		}
		if ptr.Deref(a.Spec.RevisionHistoryLimit, -1) != 10 || a.Status.CurrentRevision != 1 {
			t.Errorf("v1alpha1 revisionHistoryLimit %s revision %d, want 10, 1", describeInt32(a.Spec.RevisionHistoryLimit), a.Status.CurrentRevision)
		}

		if _, err := alpha.Update(e.ctx, a, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update v1alpha1 unchanged: %v", err)
		}
		b, err := beta.Get(e.ctx, "new-client", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get v1beta1: %v", err)
		}
		if !reflect.DeepEqual(b.Spec, created.Spec) {
			t.Errorf("v1beta1 spec after v1alpha1 round trip = %+v, want %+v", b.Spec, created.Spec)
		}
		if !bytes.Equal(b.Spec.SecretData["bin"], binary) {
			t.Errorf("binary secret = %v, want %v", b.Spec.SecretData["bin"], binary)
		}
		if b.Status.CurrentRevision != 1 || b.Generation != 1 {
			t.Errorf("after round trip: revision %d generation %d, want 1, 1", b.Status.CurrentRevision, b.Generation)
		}
	})

	t.Run("status conditions survive both versions", func(t *testing.T) {
		cur := e.mustGet(t, ns, "new-client")
		cur.Status.Conditions = []metav1.Condition{{Type: "Applied", Status: metav1.ConditionTrue, Reason: "Done", Message: "m", LastTransitionTime: metav1.Now()}}
		if _, err := beta.UpdateStatus(e.ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update status: %v", err)
		}
		a, err := alpha.Get(e.ctx, "new-client", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get v1alpha1: %v", err)
		}
		if len(a.Status.Conditions) != 1 || a.Status.Conditions[0].Type != "Applied" || a.Status.Conditions[0].Message != "m" {
			t.Errorf("v1alpha1 conditions = %+v", a.Status.Conditions)
		}
		a.Spec.Entries = append(a.Spec.Entries, v1alpha1.ConfigEntry{Key: "zz", Value: "last"})
		a2, err := alpha.Update(e.ctx, a, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update v1alpha1: %v", err)
		}
		if a2.Status.CurrentRevision != 2 || len(a2.Status.Conditions) != 1 {
			t.Errorf("after v1alpha1 update: revision %d conditions %+v, want 2 and the condition kept", a2.Status.CurrentRevision, a2.Status.Conditions)
		}
		b := e.mustGet(t, ns, "new-client")
		if b.Spec.Data["zz"] != "last" || !bytes.Equal(b.Spec.SecretData["bin"], []byte{0, 255, 1}) {
			t.Errorf("v1beta1 after v1alpha1 update: data %q secretData %v", b.Spec.Data, b.Spec.SecretData)
		}
	})
}

// TestAPIVersionRoundTripFromV1alpha1: v1alpha1 to v1beta1 and back.
func TestAPIVersionRoundTripFromV1alpha1(t *testing.T) {
	e := sharedEnv(t)
	const ns = "roundtrip-alpha"
	alpha := e.cs.ConfigV1alpha1().ConfigSets(ns)
	beta := e.cs.ConfigV1beta1().ConfigSets(ns)

	secret := []byte("p@ss\x00word")
	_, err := alpha.Create(e.ctx, &v1alpha1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "old-client",
			Labels:      map[string]string{"app": "legacy"},
			Annotations: map[string]string{"note": "kept"},
		},
		Spec: v1alpha1.ConfigSetSpec{
			Entries: []v1alpha1.ConfigEntry{
				{Key: "plain", Value: "value"},
				{Key: "empty-plain", Value: ""},
				{Key: "secret", Value: base64.StdEncoding.EncodeToString(secret), Secret: true},
				{Key: "empty-secret", Value: "", Secret: true},
			},
			Immutable:            ptr.To(false),
			RevisionHistoryLimit: ptr.To[int32](7),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create v1alpha1: %v", err)
	}

	b1, err := beta.Get(e.ctx, "old-client", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v1beta1: %v", err)
	}
	if want := map[string]string{"plain": "value", "empty-plain": ""}; !reflect.DeepEqual(b1.Spec.Data, want) {
		t.Errorf("v1beta1 data = %q, want %q", b1.Spec.Data, want)
	}
	if len(b1.Spec.SecretData) != 2 || !bytes.Equal(b1.Spec.SecretData["secret"], secret) {
		t.Errorf("v1beta1 secretData = %q, want secret=%q and empty-secret", b1.Spec.SecretData, secret)
	}
	if v, ok := b1.Spec.SecretData["empty-secret"]; !ok || len(v) != 0 {
		t.Errorf("v1beta1 secretData[empty-secret] = %q (present %v), want present and empty", v, ok)
	}
	if ptr.Deref(b1.Spec.RevisionHistoryLimit, -1) != 7 || ptr.Deref(b1.Spec.Immutable, true) {
		t.Errorf("v1beta1 revisionHistoryLimit/immutable = %s/%s, want 7/false", describeInt32(b1.Spec.RevisionHistoryLimit), describeBool(b1.Spec.Immutable))
	}
	if b1.Status.CurrentRevision != 1 {
		t.Errorf("currentRevision = %d, want 1", b1.Status.CurrentRevision)
	}

	a, err := alpha.Get(e.ctx, "old-client", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v1alpha1: %v", err)
	}
	wantEntries := []v1alpha1.ConfigEntry{
		{Key: "empty-plain", Value: ""},
		{Key: "empty-secret", Value: "", Secret: true},
		{Key: "plain", Value: "value"},
		{Key: "secret", Value: base64.StdEncoding.EncodeToString(secret), Secret: true},
	}
	if !reflect.DeepEqual(a.Spec.Entries, wantEntries) {
		t.Errorf("v1alpha1 entries = %+v, want %+v", a.Spec.Entries, wantEntries)
	}
	// An old client writes back what it read, unchanged.
	a2, err := alpha.Update(e.ctx, a, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update v1alpha1 unchanged: %v", err)
	}
	if a2.Status.CurrentRevision != 1 || a2.Generation != 1 {
		t.Errorf("unchanged v1alpha1 update: revision %d generation %d, want 1, 1", a2.Status.CurrentRevision, a2.Generation)
	}
	if !reflect.DeepEqual(a2.Spec.Entries, wantEntries) {
		t.Errorf("entries after unchanged update = %+v", a2.Spec.Entries)
	}

	b2, err := beta.Get(e.ctx, "old-client", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v1beta1 again: %v", err)
	}
	if !reflect.DeepEqual(b2.Spec, b1.Spec) {
		t.Errorf("v1beta1 spec after v1alpha1 round trip = %+v, want %+v", b2.Spec, b1.Spec)
	}
	if !reflect.DeepEqual(b2.Labels, b1.Labels) || !reflect.DeepEqual(b2.Annotations, b1.Annotations) || b2.UID != b1.UID {
		t.Errorf("metadata after round trip: labels %v annotations %v uid %s; want %v %v %s", b2.Labels, b2.Annotations, b2.UID, b1.Labels, b1.Annotations, b1.UID)
	}
	if b2.Status.CurrentRevision != 1 || b2.Generation != 1 || b2.Status.ObservedGeneration != 1 {
		t.Errorf("after round trip: revision %d generation %d observed %d, want 1, 1, 1", b2.Status.CurrentRevision, b2.Generation, b2.Status.ObservedGeneration)
	}

	// Reordering the entries is no change of the entries either.
	a2.Spec.Entries = []v1alpha1.ConfigEntry{wantEntries[3], wantEntries[2], wantEntries[1], wantEntries[0]}
	a3, err := alpha.Update(e.ctx, a2, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update v1alpha1 reordered: %v", err)
	}
	if a3.Status.CurrentRevision != 1 || !reflect.DeepEqual(a3.Spec.Entries, wantEntries) {
		t.Errorf("after reordering: revision %d entries %+v; want 1 and sorted entries", a3.Status.CurrentRevision, a3.Spec.Entries)
	}

	// Turning a plain entry into a secret one with the same value is a change.
	a3.Spec.Entries[2] = v1alpha1.ConfigEntry{Key: "plain", Value: base64.StdEncoding.EncodeToString([]byte("value")), Secret: true}
	a4, err := alpha.Update(e.ctx, a3, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update v1alpha1 plain to secret: %v", err)
	}
	if a4.Status.CurrentRevision != 2 {
		t.Errorf("after plain to secret: revision %d, want 2", a4.Status.CurrentRevision)
	}
	b3, err := beta.Get(e.ctx, "old-client", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v1beta1: %v", err)
	}
	if _, inData := b3.Spec.Data["plain"]; inData || string(b3.Spec.SecretData["plain"]) != "value" {
		t.Errorf("after plain to secret: data %q secretData %q", b3.Spec.Data, b3.Spec.SecretData)
	}
}
