package integration

import (
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/cmd/apiserver/app/local"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestAPIStatusSubresource checks that the status endpoint writes only the
// status and the main endpoint writes everything but the status.
func TestAPIStatusSubresource(t *testing.T) {
	e := sharedEnv(t)
	const ns = "status"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	t.Run("configset status update keeps the spec", func(t *testing.T) {
		created := e.mustCreate(t, ns, &v1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"l": "1"}},
			Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"k": "v"}},
		})
		changed := created.DeepCopy()
		changed.Spec.Data = map[string]string{"k": "changed-through-status"}
		changed.Spec.RevisionHistoryLimit = ptr.To[int32](3)
		changed.Labels = map[string]string{"l": "2"}
		changed.Status.CurrentRevision = 50
		changed.Status.ObservedGeneration = 50
		changed.Status.Conditions = []metav1.Condition{{
			Type: "Applied", Status: metav1.ConditionTrue, Reason: "Rollout", Message: "revision 1 is live",
			LastTransitionTime: metav1.Now(), ObservedGeneration: 1,
		}}
		got, err := client.UpdateStatus(e.ctx, changed, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update status: %v", err)
		}
		for name, obj := range map[string]*v1beta1.ConfigSet{"response": got, "stored": e.mustGet(t, ns, "app")} {
			if !reflect.DeepEqual(obj.Spec.Data, map[string]string{"k": "v"}) || ptr.Deref(obj.Spec.RevisionHistoryLimit, -1) != 10 {
				t.Errorf("%s: spec after status update = %+v, want it unchanged", name, obj.Spec)
			}
			if obj.Labels["l"] != "1" {
				t.Errorf("%s: labels after status update = %v, want l=1", name, obj.Labels)
			}
			if obj.Status.CurrentRevision != 1 || obj.Status.ObservedGeneration != 1 {
				t.Errorf("%s: currentRevision/observedGeneration = %d/%d, want 1/1 (server-owned)", name, obj.Status.CurrentRevision, obj.Status.ObservedGeneration)
			}
			if len(obj.Status.Conditions) != 1 || obj.Status.Conditions[0].Type != "Applied" || obj.Status.Conditions[0].Message != "revision 1 is live" ||
				obj.Status.Conditions[0].ObservedGeneration != 1 {
				t.Errorf("%s: conditions = %+v, want the Applied condition", name, obj.Status.Conditions)
			}
			if obj.Generation != 1 {
				t.Errorf("%s: generation = %d, want 1", name, obj.Generation)
			}
		}

		// A merge patch of the status subresource behaves the same.
		patched, err := client.Patch(e.ctx, "app", types.MergePatchType,
			[]byte(`{"spec":{"data":{"k":"patched"}},"status":{"conditions":[{"type":"Applied","status":"False","reason":"Failed","message":"oops","lastTransitionTime":"2024-01-01T00:00:00Z"}]}}`),
			metav1.PatchOptions{}, "status")
		if err != nil {
			t.Fatalf("patch status: %v", err)
		}
		if patched.Spec.Data["k"] != "v" || len(patched.Status.Conditions) != 1 || patched.Status.Conditions[0].Status != metav1.ConditionFalse {
			t.Errorf("after status patch: data %v conditions %+v; want k=v and Applied=False", patched.Spec.Data, patched.Status.Conditions)
		}
	})

	t.Run("configset main update keeps the status", func(t *testing.T) {
		cur := e.mustGet(t, ns, "app")
		conditions := cur.Status.Conditions
		cur.Status.Conditions = nil
		cur.Status.CurrentRevision = 77
		cur.Status.ObservedGeneration = 77
		cur.Labels["l"] = "main"
		got, err := client.Update(e.ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		if got.Labels["l"] != "main" {
			t.Errorf("labels = %v, want l=main", got.Labels)
		}
		if got.Status.CurrentRevision != 1 || got.Status.ObservedGeneration != 1 || !reflect.DeepEqual(got.Status.Conditions, conditions) {
			t.Errorf("status after main update = %+v, want revision 1, observed 1, conditions %+v", got.Status, conditions)
		}
		// A status-only merge patch on the main endpoint changes nothing.
		patched, err := client.Patch(e.ctx, "app", types.MergePatchType, []byte(`{"status":{"currentRevision":5,"conditions":null}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("patch: %v", err)
		}
		if patched.Status.CurrentRevision != 1 || len(patched.Status.Conditions) != 1 {
			t.Errorf("status after main patch = %+v", patched.Status)
		}
	})

}

// TestAPIStatusCreateIgnoresAGivenStatus: configset create ignores a given status.
func TestAPIStatusCreateIgnoresAGivenStatus(t *testing.T) {
	e := sharedEnv(t)
	const ns = "status-create"

	obj := configSet("with-status", map[string]string{"k": "v"}, nil)
	obj.Status = v1beta1.ConfigSetStatus{
		CurrentRevision: 9, ObservedGeneration: 9,
		Conditions: []metav1.Condition{{Type: "X", Status: metav1.ConditionTrue, Reason: "Y", LastTransitionTime: metav1.Now()}},
	}
	obj.Generation = 5
	got := e.mustCreate(t, ns, obj)
	if got.Status.CurrentRevision != 1 || got.Status.ObservedGeneration != 1 || len(got.Status.Conditions) != 0 || got.Generation != 1 {
		t.Errorf("created status %+v generation %d, want revision 1, observed 1, no conditions, generation 1", got.Status, got.Generation)
	}
}

// TestAPIStatusOfAConfigPolicy: configpolicy status.
func TestAPIStatusOfAConfigPolicy(t *testing.T) {
	e := sharedEnv(t)
	const ns = "status-policy"

	pc := e.cs.ConfigV1beta1().ConfigPolicies()
	p, err := pc.Create(e.ctx, &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "status-policy"},
		Spec: v1beta1.ConfigPolicySpec{
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"apitest-never": "selected"}},
			RequiredKeys: []string{"owner"},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	var got *v1beta1.ConfigPolicy
	e.onFreshPolicy(t, p.Name, func(changed *v1beta1.ConfigPolicy) error {
		changed.Spec.RequiredKeys = []string{"other"}
		meta.SetStatusCondition(&changed.Status.Conditions, metav1.Condition{
			Type: "Audited", Status: metav1.ConditionTrue, Reason: "Reviewed", Message: "by the test", ObservedGeneration: 1,
		})
		var err error
		got, err = pc.UpdateStatus(e.ctx, changed, metav1.UpdateOptions{})
		return err
	})
	if !reflect.DeepEqual(got.Spec.RequiredKeys, []string{"owner"}) || got.Generation != 1 {
		t.Errorf("policy spec after status update = %+v generation %d, want requiredKeys [owner], generation 1", got.Spec, got.Generation)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, "Audited"); c == nil || c.Reason != "Reviewed" || c.Message != "by the test" {
		t.Errorf("policy status = %+v, want the Audited condition", got.Status)
	}
	var updated *v1beta1.ConfigPolicy
	e.onFreshPolicy(t, p.Name, func(fresh *v1beta1.ConfigPolicy) error {
		fresh.Status.Conditions = nil
		fresh.Spec.MaxKeys = ptr.To[int32](3)
		var err error
		updated, err = pc.Update(e.ctx, fresh, metav1.UpdateOptions{})
		return err
	})
	if meta.FindStatusCondition(updated.Status.Conditions, "Audited") == nil || updated.Generation != 2 || updated.Spec.MaxKeys == nil || *updated.Spec.MaxKeys != 3 {
		t.Errorf("policy after main update: status %+v generation %d maxKeys %s; want status kept, generation 2, maxKeys 3",
			updated.Status, updated.Generation, describeInt32(updated.Spec.MaxKeys))
	}
}

// apiMustGetConfigSet reads a v1beta1 ConfigSet or fails the test.
func apiMustGetConfigSet(t *testing.T, e *env, ns, name string) *v1beta1.ConfigSet {
	t.Helper()
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	return got
}

// TestAPIRevisionCounting follows status.currentRevision, metadata.generation
// and status.observedGeneration through changes of every kind.
func TestAPIRevisionCounting(t *testing.T) {
	e := sharedEnv(t)
	const ns = "counting"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	cur := e.mustCreate(t, ns, configSet("app", map[string]string{"k": "v1"}, nil))
	steps := []struct {
		name           string
		change         func(*v1beta1.ConfigSet)
		wantRevision   int64
		wantGeneration int64
	}{
		{"create", nil, 1, 1},
		{"data value change", func(cs *v1beta1.ConfigSet) { cs.Spec.Data["k"] = "v2" }, 2, 2},
		{"label-only change", func(cs *v1beta1.ConfigSet) { cs.Labels = map[string]string{"x": "y"} }, 2, 2},
		{"annotation-only change", func(cs *v1beta1.ConfigSet) {
			cs.Annotations = map[string]string{"config.capstan.dev/change-cause": "nothing"}
		}, 2, 2},
		{"revisionHistoryLimit change", func(cs *v1beta1.ConfigSet) { cs.Spec.RevisionHistoryLimit = ptr.To[int32](5) }, 2, 3},
		{"secretData change", func(cs *v1beta1.ConfigSet) { cs.Spec.SecretData = map[string][]byte{"s": []byte("x")} }, 3, 4},
		{"secretData value change", func(cs *v1beta1.ConfigSet) { cs.Spec.SecretData["s"] = []byte("y") }, 4, 5},
		{"unchanged update", func(*v1beta1.ConfigSet) {}, 4, 5},
		{"data key added", func(cs *v1beta1.ConfigSet) { cs.Spec.Data["k2"] = "new" }, 5, 6},
		{"data key removed", func(cs *v1beta1.ConfigSet) { delete(cs.Spec.Data, "k2") }, 6, 7},
		{"immutable set", func(cs *v1beta1.ConfigSet) { cs.Spec.Immutable = ptr.To(true) }, 6, 8},
	}
	for _, step := range steps {
		if step.change != nil {
			next := cur.DeepCopy()
			step.change(next)
			var err error
			if cur, err = client.Update(e.ctx, next, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("%s: update: %v", step.name, err)
			}
		}
		stored := e.mustGet(t, ns, "app")
		for name, obj := range map[string]*v1beta1.ConfigSet{"response": cur, "stored": stored} {
			if obj.Status.CurrentRevision != step.wantRevision {
				t.Errorf("%s (%s): currentRevision = %d, want %d", step.name, name, obj.Status.CurrentRevision, step.wantRevision)
			}
			if obj.Generation != step.wantGeneration {
				t.Errorf("%s (%s): generation = %d, want %d", step.name, name, obj.Generation, step.wantGeneration)
			}
			if obj.Status.ObservedGeneration != obj.Generation {
				t.Errorf("%s (%s): observedGeneration = %d, generation %d", step.name, name, obj.Status.ObservedGeneration, obj.Generation)
			}
		}
	}

	t.Run("history follows the revisions", func(t *testing.T) {
		// Revisions 1 to 6 were made; the limit of 5 keeps 2 to 6. The
		// change-cause annotation was set between revisions 2 and 3.
		list, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "configSetName=app"})
		if err != nil {
			t.Fatalf("list revisions: %v", err)
		}
		byRevision := map[int64]v1beta1.ConfigRevision{}
		var numbers []int64
		for _, rev := range list.Items {
			byRevision[rev.Revision] = rev
			numbers = append(numbers, rev.Revision)
		}
		slices.Sort(numbers)
		if !reflect.DeepEqual(numbers, []int64{2, 3, 4, 5, 6}) {
			t.Fatalf("kept revisions = %v, want [2 3 4 5 6]", numbers)
		}
		for n, rev := range byRevision {
			wantCause := "nothing"
			if n == 2 {
				wantCause = ""
			}
			if rev.ChangeCause != wantCause || rev.Author != local.AdminUser || rev.ConfigSetName != "app" || rev.RollbackOf != 0 {
				t.Errorf("revision %d: changeCause %q author %q configSetName %q rollbackOf %d; want %q, %q, app, 0",
					n, rev.ChangeCause, rev.Author, rev.ConfigSetName, rev.RollbackOf, wantCause, local.AdminUser)
			}
		}
		if r := byRevision[3]; !reflect.DeepEqual(r.Data, map[string]string{"k": "v2"}) || string(r.SecretData["s"]) != "x" {
			t.Errorf("revision 3 entries: data %v secretData %q", r.Data, r.SecretData)
		}
		if r := byRevision[5]; !reflect.DeepEqual(r.Data, map[string]string{"k": "v2", "k2": "new"}) || string(r.SecretData["s"]) != "y" {
			t.Errorf("revision 5 entries: data %v secretData %q", r.Data, r.SecretData)
		}
		if r := byRevision[6]; !reflect.DeepEqual(r.Data, map[string]string{"k": "v2"}) || string(r.SecretData["s"]) != "y" {
			t.Errorf("revision 6 entries: data %v secretData %q", r.Data, r.SecretData)
		}
	})

	t.Run("patch and apply count too", func(t *testing.T) {
		obj := e.mustCreate(t, ns, configSet("patched", map[string]string{"k": "v1"}, nil))
		if obj.Status.CurrentRevision != 1 {
			t.Fatalf("create: revision %d", obj.Status.CurrentRevision)
		}
		got, err := client.Patch(e.ctx, "patched", types.MergePatchType, []byte(`{"spec":{"data":{"k":"v2"}}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("merge patch: %v", err)
		}
		if got.Status.CurrentRevision != 2 || got.Generation != 2 {
			t.Errorf("after merge patch: revision %d generation %d, want 2, 2", got.Status.CurrentRevision, got.Generation)
		}
		got, err = client.Patch(e.ctx, "patched", types.JSONPatchType, []byte(`[{"op":"add","path":"/spec/secretData","value":{"s":"AQ=="}}]`), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("json patch: %v", err)
		}
		if got.Status.CurrentRevision != 3 || got.Generation != 3 {
			t.Errorf("after json patch: revision %d generation %d, want 3, 3", got.Status.CurrentRevision, got.Generation)
		}
		got, err = client.Patch(e.ctx, "patched", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"only":"labels"}}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("strategic merge patch: %v", err)
		}
		if got.Status.CurrentRevision != 3 || got.Generation != 3 {
			t.Errorf("after label patch: revision %d generation %d, want 3, 3", got.Status.CurrentRevision, got.Generation)
		}
	})
}
