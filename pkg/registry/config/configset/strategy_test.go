package configset

import (
	"context"
	"testing"

	"capstan.dev/capstan/pkg/registry/registrytest"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/install"
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	install.Install(s)
	return s
}

func stored() *config.ConfigSet {
	return &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Generation: 4, ResourceVersion: "10", Labels: map[string]string{"a": "1"}},
		Spec: config.ConfigSetSpec{
			Data:                 map[string]string{"k": "v"},
			SecretData:           map[string][]byte{"s": []byte("x")},
			RevisionHistoryLimit: 10,
		},
		Status: config.ConfigSetStatus{
			CurrentRevision:    7,
			ObservedGeneration: 4,
			Conditions:         []metav1.Condition{{Type: "Applied", Status: metav1.ConditionTrue, Reason: "Done", LastTransitionTime: metav1.Now()}},
		},
	}
}

func TestPrepareForCreateResetsStatus(t *testing.T) {
	s := NewStrategy(testScheme(t))
	cs := stored()
	cs.Generation = 9
	s.PrepareForCreate(context.Background(), cs)
	if cs.Generation != 1 {
		t.Errorf("generation = %d, want 1", cs.Generation)
	}
	want := config.ConfigSetStatus{CurrentRevision: 1, ObservedGeneration: 1}
	if !apiequality.Semantic.DeepEqual(cs.Status, want) {
		t.Errorf("status = %+v, want %+v", cs.Status, want)
	}
}

func TestPrepareForUpdate(t *testing.T) {
	s := NewStrategy(testScheme(t))
	tests := []struct {
		name           string
		mutate         func(*config.ConfigSet)
		wantGeneration int64
		wantRevision   int64
	}{
		{"no change", func(*config.ConfigSet) {}, 4, 7},
		{"label only", func(cs *config.ConfigSet) { cs.Labels = map[string]string{"b": "2"} }, 4, 7},
		{"status written on main endpoint is ignored", func(cs *config.ConfigSet) {
			cs.Status.CurrentRevision = 100
			cs.Status.Conditions = nil
		}, 4, 7},
		{"empty map is the same as no map", func(cs *config.ConfigSet) {
			cs.Spec.SecretData = map[string][]byte{"s": []byte("x")}
			cs.Spec.Data = map[string]string{"k": "v"}
		}, 4, 7},
		{"history limit changes spec but not entries", func(cs *config.ConfigSet) { cs.Spec.RevisionHistoryLimit = 20 }, 5, 7},
		{"immutable changes spec but not entries", func(cs *config.ConfigSet) { cs.Spec.Immutable = true }, 5, 7},
		{"data value", func(cs *config.ConfigSet) { cs.Spec.Data["k"] = "w" }, 5, 8},
		{"data key added", func(cs *config.ConfigSet) { cs.Spec.Data["k2"] = "v" }, 5, 8},
		{"secret removed", func(cs *config.ConfigSet) { cs.Spec.SecretData = nil }, 5, 8},
		{"secret value", func(cs *config.ConfigSet) { cs.Spec.SecretData["s"] = []byte("y") }, 5, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := stored()
			obj := old.DeepCopy()
			// rest.BeforeUpdate copies the stored generation before the strategy runs.
			tc.mutate(obj)
			s.PrepareForUpdate(context.Background(), obj, old)
			if obj.Generation != tc.wantGeneration {
				t.Errorf("generation = %d, want %d", obj.Generation, tc.wantGeneration)
			}
			if obj.Status.CurrentRevision != tc.wantRevision {
				t.Errorf("currentRevision = %d, want %d", obj.Status.CurrentRevision, tc.wantRevision)
			}
			if obj.Status.ObservedGeneration != obj.Generation {
				t.Errorf("observedGeneration = %d, want %d", obj.Status.ObservedGeneration, obj.Generation)
			}
			if !apiequality.Semantic.DeepEqual(obj.Status.Conditions, old.Status.Conditions) {
				t.Errorf("conditions = %v, want the stored ones", obj.Status.Conditions)
			}
		})
	}
}

func TestStatusStrategyKeepsSpecAndServerFields(t *testing.T) {
	s := NewStatusStrategy(NewStrategy(testScheme(t)))
	old := stored()
	obj := old.DeepCopy()
	obj.Spec.Data = map[string]string{"other": "x"}
	obj.Spec.Immutable = true
	obj.Labels = map[string]string{"changed": "yes"}
	obj.Status.CurrentRevision = 99
	obj.Status.ObservedGeneration = 99
	obj.Status.Conditions = []metav1.Condition{{Type: "Applied", Status: metav1.ConditionFalse, Reason: "Failed", LastTransitionTime: metav1.Now()}}

	s.PrepareForUpdate(context.Background(), obj, old)
	if !apiequality.Semantic.DeepEqual(obj.Spec, old.Spec) {
		t.Errorf("spec changed through /status: %+v", obj.Spec)
	}
	if !apiequality.Semantic.DeepEqual(obj.Labels, old.Labels) {
		t.Errorf("labels changed through /status: %v", obj.Labels)
	}
	if obj.Status.CurrentRevision != 7 || obj.Status.ObservedGeneration != 4 {
		t.Errorf("server-owned status changed: %+v", obj.Status)
	}
	if len(obj.Status.Conditions) != 1 || obj.Status.Conditions[0].Status != metav1.ConditionFalse {
		t.Errorf("conditions were not taken from the request: %+v", obj.Status.Conditions)
	}
}

// TestResetFieldsCoverPrepareForUpdate changes every field of a request, lets
// the strategy prepare it, and checks that each field the strategy put back is
// one of its reset fields, in every served version: server-side apply relies on
// the list to know which applied fields it must not record as owned.
func TestResetFieldsCoverPrepareForUpdate(t *testing.T) {
	scheme := testScheme(t)
	main := NewStrategy(scheme)
	strategies := map[string]interface {
		PrepareForUpdate(context.Context, runtime.Object, runtime.Object)
		GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set
	}{
		"main":   main,
		"status": NewStatusStrategy(main),
	}
	for name, s := range strategies {
		for _, gv := range []string{"config.capstan.dev/v1beta1", "config.capstan.dev/v1alpha1"} {
			t.Run(name+"/"+gv, func(t *testing.T) {
				old := stored()
				request := old.DeepCopy()
				request.Labels = map[string]string{"z": "9"}
				request.Spec.Data = map[string]string{"k": "changed"}
				request.Spec.RevisionHistoryLimit = 3
				request.Status.CurrentRevision = 1000
				request.Status.ObservedGeneration = 1000
				request.Status.Conditions = nil

				prepared := request.DeepCopy()
				s.PrepareForUpdate(context.Background(), prepared, old)

				reset := s.GetResetFields()[fieldpath.APIVersion(gv)]
				if reset == nil {
					t.Fatalf("no reset fields for %s", gv)
				}
				for _, p := range registrytest.ChangedPaths(t, gv, request, prepared) {
					if p == ".metadata.generation" {
						continue // server-owned everywhere, never applied
					}
					if !registrytest.CoveredBy(reset, p) {
						t.Errorf("PrepareForUpdate overwrote %s, which is not a reset field (%s)", p, reset.String())
					}
				}
			})
		}
	}
}

func TestSelectableFieldsMatchConstants(t *testing.T) {
	cs := stored()
	cs.Spec.Immutable = true
	got := SelectableFields(cs)
	for _, f := range config.SelectableFields["ConfigSet"] {
		if _, ok := got[f]; !ok {
			t.Errorf("field %q is declared selectable but SelectableFields does not set it", f)
		}
	}
	for f := range got {
		if f == "metadata.name" || f == "metadata.namespace" {
			continue
		}
		if !contains(config.SelectableFields["ConfigSet"], f) {
			t.Errorf("SelectableFields sets %q, which the field-label conversion does not accept", f)
		}
	}
	if got[config.ConfigSetImmutableField] != "true" || got["metadata.name"] != "app" || got["metadata.namespace"] != "ns" {
		t.Errorf("unexpected field values: %v", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
