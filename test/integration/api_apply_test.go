package integration

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	configac "capstan.dev/capstan/pkg/generated/applyconfiguration/config/v1beta1"
)

// managedEntry returns the managedFields entry of manager for the given
// subresource ("" for the main resource), or nil.
func managedEntry(obj metav1.Object, manager, subresource string) *metav1.ManagedFieldsEntry {
	for _, m := range obj.GetManagedFields() {
		if m.Manager == manager && m.Subresource == subresource {
			return &m
		}
	}
	return nil
}

// ownsField reports whether entry's field set contains the path, given in the
// managedFields spelling ("f:spec", "f:data", "f:a").
func ownsField(t *testing.T, entry *metav1.ManagedFieldsEntry, path ...string) bool {
	t.Helper()
	if entry == nil || entry.FieldsV1 == nil {
		return false
	}
	var node map[string]interface{}
	if err := json.Unmarshal(entry.FieldsV1.Raw, &node); err != nil {
		t.Fatalf("managedFields of %s: %v", entry.Manager, err)
	}
	for _, p := range path {
		next, ok := node[p].(map[string]interface{})
		if !ok {
			return false
		}
		node = next
	}
	return true
}

// TestAPIServerSideApply applies ConfigSets with the generated apply
// configurations: field ownership, conflicts, forcing, and the status as a
// reset field.
func TestAPIServerSideApply(t *testing.T) {
	e := sharedEnv(t)
	const ns = "apply"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	// An apply of a ConfigSet that does not exist creates it, as for every
	// built-in kind (kubectl apply --server-side relies on it).
	alice, err := client.Apply(e.ctx, configac.ConfigSet("shared", ns).
		WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"a": "1"})),
		metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Errorf("alice's apply of a new ConfigSet: %v; want it created", err)
		// Create it through an update-style apply so that the rest of the test still runs.
		if _, err := client.Create(e.ctx, configSet("shared", nil, nil), metav1.CreateOptions{FieldManager: "setup"}); err != nil {
			t.Fatalf("create: %v", err)
		}
		alice, err = client.Apply(e.ctx, configac.ConfigSet("shared", ns).
			WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"a": "1"})),
			metav1.ApplyOptions{FieldManager: "alice"})
		if err != nil {
			t.Fatalf("alice's apply of an existing ConfigSet: %v", err)
		}
	} else if alice.Status.CurrentRevision != 1 || alice.Generation != 1 {
		t.Errorf("after alice's creating apply: revision %d generation %d; want 1, 1", alice.Status.CurrentRevision, alice.Generation)
	}
	// Offsets from here on, so that the checks hold whichever way the object came to be.
	baseRevision, baseGeneration := alice.Status.CurrentRevision, alice.Generation
	if alice.Spec.Data["a"] != "1" {
		t.Errorf("after alice: data %v; want a=1", alice.Spec.Data)
	}
	if entry := managedEntry(alice, "alice", ""); entry == nil || entry.Operation != metav1.ManagedFieldsOperationApply ||
		!ownsField(t, entry, "f:spec", "f:data", "f:a") || entry.APIVersion != "config.capstan.dev/v1beta1" {
		t.Errorf("alice's managedFields entry = %+v, want an Apply entry owning f:spec.f:data.f:a", entry)
	}
	if revs, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "configSetName=shared"}); err != nil {
		t.Errorf("list revisions: %v", err)
	} else if len(revs.Items) == 0 || revs.Items[len(revs.Items)-1].Revision != baseRevision || revs.Items[len(revs.Items)-1].Data["a"] != "1" {
		t.Errorf("revisions after alice's apply = %s, want the last to be revision %d with a=1", describe(revs), baseRevision)
	}

	t.Run("conflict names the owner", func(t *testing.T) {
		_, err := client.Apply(e.ctx, configac.ConfigSet("shared", ns).
			WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"a": "2"})),
			metav1.ApplyOptions{FieldManager: "bob"})
		if !apierrors.IsConflict(err) {
			t.Fatalf("bob's apply of a field alice owns: err = %v, want 409 Conflict", err)
		}
		if !strings.Contains(err.Error(), `"alice"`) || !strings.Contains(err.Error(), ".spec.data.a") {
			t.Errorf("conflict message %q does not name alice and .spec.data.a", err.Error())
		}
		got, err := client.Get(e.ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if got.Spec.Data["a"] != "1" || got.Status.CurrentRevision != baseRevision {
			t.Errorf("after refused apply: data %v revision %d; want a=1, %d", got.Spec.Data, got.Status.CurrentRevision, baseRevision)
		}
	})

	t.Run("force takes ownership", func(t *testing.T) {
		bob, err := client.Apply(e.ctx, configac.ConfigSet("shared", ns).
			WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"a": "2"})),
			metav1.ApplyOptions{FieldManager: "bob", Force: true})
		if err != nil {
			t.Fatalf("bob's forced apply: %v", err)
		}
		if bob.Spec.Data["a"] != "2" || bob.Status.CurrentRevision != baseRevision+1 || bob.Generation != baseGeneration+1 || bob.Status.ObservedGeneration != bob.Generation {
			t.Errorf("after bob: data %v revision %d generation %d observed %d; want a=2, %d, %d, %d",
				bob.Spec.Data, bob.Status.CurrentRevision, bob.Generation, bob.Status.ObservedGeneration, baseRevision+1, baseGeneration+1, baseGeneration+1)
		}
		got, err := client.Get(e.ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if entry := managedEntry(got, "bob", ""); !ownsField(t, entry, "f:spec", "f:data", "f:a") || entry.Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("bob's entry = %+v, want an Apply entry owning f:spec.f:data.f:a", entry)
		}
		if entry := managedEntry(got, "alice", ""); ownsField(t, entry, "f:spec", "f:data", "f:a") {
			t.Errorf("alice still owns f:spec.f:data.f:a: %s", entry.FieldsV1.Raw)
		}

		// Alice applying without the field now removes nothing bob owns.
		if _, err := client.Apply(e.ctx, configac.ConfigSet("shared", ns).
			WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"b": "alice"})),
			metav1.ApplyOptions{FieldManager: "alice"}); err != nil {
			t.Fatalf("alice's second apply: %v", err)
		}
		got, err = client.Get(e.ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if want := map[string]string{"a": "2", "b": "alice"}; !reflect.DeepEqual(got.Spec.Data, want) || got.Status.CurrentRevision != baseRevision+2 {
			t.Errorf("after alice's second apply: data %v revision %d; want %v, %d", got.Spec.Data, got.Status.CurrentRevision, want, baseRevision+2)
		}
	})

	t.Run("status on the main endpoint is a reset field", func(t *testing.T) {
		before, err := client.Get(e.ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		after, err := client.Apply(e.ctx, configac.ConfigSet("shared", ns).
			WithLabels(map[string]string{"owner": "carol"}).
			WithStatus(configac.ConfigSetStatus().
				WithCurrentRevision(99).
				WithObservedGeneration(99).
				WithConditions(metav1ac.Condition().WithType("Forged").WithStatus(metav1.ConditionTrue).
					WithReason("Carol").WithMessage("from the main endpoint").WithLastTransitionTime(metav1.Now()))),
			metav1.ApplyOptions{FieldManager: "carol"})
		if err != nil {
			t.Fatalf("carol's apply with status: %v", err)
		}
		if after.Labels["owner"] != "carol" {
			t.Errorf("labels = %v, want owner=carol", after.Labels)
		}
		if after.Status.CurrentRevision != before.Status.CurrentRevision || after.Status.ObservedGeneration != before.Status.ObservedGeneration || len(after.Status.Conditions) != 0 {
			t.Errorf("status after apply on the main endpoint = %+v, want %+v", after.Status, before.Status)
		}
		if after.Generation != before.Generation {
			t.Errorf("generation = %d, want %d (no spec change)", after.Generation, before.Generation)
		}
		entry := managedEntry(after, "carol", "")
		if !ownsField(t, entry, "f:metadata", "f:labels", "f:owner") {
			t.Errorf("carol's entry = %+v, want it to own f:metadata.f:labels.f:owner", entry)
		}
		if ownsField(t, entry, "f:status") {
			t.Errorf("carol's entry claims the status: %s", entry.FieldsV1.Raw)
		}
	})

	t.Run("apply status", func(t *testing.T) {
		before, err := client.Get(e.ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		got, err := client.ApplyStatus(e.ctx, configac.ConfigSet("shared", ns).
			WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"a": "from-status"})).
			WithStatus(configac.ConfigSetStatus().
				WithCurrentRevision(42).
				WithConditions(metav1ac.Condition().WithType("Applied").WithStatus(metav1.ConditionTrue).
					WithReason("Synced").WithMessage("revision applied").WithLastTransitionTime(metav1.Now()))),
			metav1.ApplyOptions{FieldManager: "controller", Force: true})
		if err != nil {
			t.Fatalf("apply status: %v", err)
		}
		if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Type != "Applied" || got.Status.Conditions[0].Status != metav1.ConditionTrue ||
			got.Status.Conditions[0].Reason != "Synced" || got.Status.Conditions[0].Message != "revision applied" {
			t.Errorf("conditions = %+v, want Applied=True Synced", got.Status.Conditions)
		}
		if got.Status.CurrentRevision != before.Status.CurrentRevision {
			t.Errorf("status apply set currentRevision to %d, want %d kept", got.Status.CurrentRevision, before.Status.CurrentRevision)
		}
		if !reflect.DeepEqual(got.Spec.Data, before.Spec.Data) || got.Generation != before.Generation {
			t.Errorf("status apply changed the spec: data %v generation %d; want %v, %d", got.Spec.Data, got.Generation, before.Spec.Data, got.Generation)
		}
		reread, err := client.Get(e.ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if len(reread.Status.Conditions) != 1 || reread.Status.Conditions[0].Type != "Applied" {
			t.Errorf("stored conditions = %+v", reread.Status.Conditions)
		}
		entry := managedEntry(reread, "controller", "status")
		if !ownsField(t, entry, "f:status", "f:conditions") {
			t.Errorf("controller's status entry = %+v, want it to own f:status.f:conditions", entry)
		}
		if ownsField(t, entry, "f:spec") || ownsField(t, entry, "f:status", "f:currentRevision") {
			t.Errorf("controller's status entry claims reset fields: %s", entry.FieldsV1.Raw)
		}

		// A second manager's condition of another type merges into the list.
		got, err = client.ApplyStatus(e.ctx, configac.ConfigSet("shared", ns).
			WithStatus(configac.ConfigSetStatus().
				WithConditions(metav1ac.Condition().WithType("Validated").WithStatus(metav1.ConditionFalse).
					WithReason("Pending").WithMessage("not yet").WithLastTransitionTime(metav1.Now()))),
			metav1.ApplyOptions{FieldManager: "validator"})
		if err != nil {
			t.Fatalf("second apply status: %v", err)
		}
		var condTypes []string
		for _, c := range got.Status.Conditions {
			condTypes = append(condTypes, c.Type)
		}
		if !reflect.DeepEqual(condTypes, []string{"Applied", "Validated"}) {
			t.Errorf("condition types = %v, want [Applied Validated]", condTypes)
		}
	})

	t.Run("apply through v1alpha1", func(t *testing.T) {
		// An apply through the old version, whose entries are a list keyed by key.
		// Created first: that an apply creates is checked above, for v1beta1.
		if _, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Create(e.ctx, &v1alpha1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "alpha-applied"},
			Spec:       v1alpha1.ConfigSetSpec{Entries: []v1alpha1.ConfigEntry{{Key: "y", Value: "0"}}},
		}, metav1.CreateOptions{FieldManager: "creator"}); err != nil {
			t.Fatalf("create v1alpha1: %v", err)
		}
		body := []byte(`{"apiVersion":"config.capstan.dev/v1alpha1","kind":"ConfigSet","metadata":{"name":"alpha-applied","namespace":"` + ns + `"},` +
			`"spec":{"entries":[{"key":"x","value":"1"},{"key":"s","value":"AQI=","secret":true}]}}`)
		err := e.cs.ConfigV1alpha1().RESTClient().Patch(types.ApplyPatchType).Namespace(ns).Resource("configsets").Name("alpha-applied").
			Param("fieldManager", "dave").Body(body).Do(e.ctx).Error()
		if err != nil {
			t.Fatalf("v1alpha1 apply: %v", err)
		}
		result, err := client.Get(e.ctx, "alpha-applied", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if !reflect.DeepEqual(result.Spec.Data, map[string]string{"x": "1", "y": "0"}) || string(result.Spec.SecretData["s"]) != "\x01\x02" || len(result.Spec.SecretData) != 1 {
			t.Errorf("v1alpha1 apply stored data %v secretData %v", result.Spec.Data, result.Spec.SecretData)
		}
		if entry := managedEntry(result, "dave", ""); entry == nil || entry.APIVersion != "config.capstan.dev/v1alpha1" ||
			entry.Operation != metav1.ManagedFieldsOperationApply || !ownsField(t, entry, "f:spec", "f:entries") {
			t.Errorf("dave's entry = %+v, want an Apply entry in v1alpha1 owning spec.entries", entry)
		}
		if result.Status.CurrentRevision != 2 {
			t.Errorf("currentRevision after v1alpha1 apply = %d, want 2", result.Status.CurrentRevision)
		}
	})
}
