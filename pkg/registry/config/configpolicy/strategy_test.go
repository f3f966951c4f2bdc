package configpolicy

import (
	"context"
	"testing"

	"capstan.dev/capstan/pkg/registry/registrytest"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/install"
	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	install.Install(s)
	return s
}

func stored() *config.ConfigPolicy {
	return &config.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "guard", Generation: 4, ResourceVersion: "10", Labels: map[string]string{"a": "1"}},
		Spec: config.ConfigPolicySpec{
			Selector:      &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
			RequiredKeys:  []string{"LOG_LEVEL"},
			ForbiddenKeys: []string{"DEBUG"},
			KeyPattern:    "^[A-Z_]+$",
			MaxKeys:       ptr.To[int32](10),
			MaxBytes:      ptr.To[int64](1024),
			Rules:         []config.ConfigPolicyRule{{Expression: "size(data) <= 50", Message: "too many"}},
			Enforcement:   config.EnforcementDeny,
		},
		Status: config.ConfigPolicyStatus{
			ObservedGeneration: 4,
			Conditions:         []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Compiled", LastTransitionTime: metav1.Now()}},
		},
	}
}

func TestStrategyBasics(t *testing.T) {
	s := NewStrategy(testScheme(t))
	ctx := context.Background()
	if s.NamespaceScoped() {
		t.Error("ConfigPolicies must be cluster-scoped")
	}
	if s.AllowCreateOnUpdate(ctx) {
		t.Error("AllowCreateOnUpdate must be false")
	}
	if !s.AllowUnconditionalUpdate(ctx) {
		t.Error("AllowUnconditionalUpdate must be true")
	}
	if errs := s.Validate(ctx, stored()); len(errs) != 0 {
		t.Errorf("the test policy is invalid: %v", errs)
	}
}

func TestPrepareForCreateClearsStatus(t *testing.T) {
	s := NewStrategy(testScheme(t))
	p := stored()
	p.Generation = 9
	wantSpec := *p.Spec.DeepCopy()
	s.PrepareForCreate(context.Background(), p)
	if p.Generation != 1 {
		t.Errorf("generation = %d, want 1", p.Generation)
	}
	if !apiequality.Semantic.DeepEqual(p.Status, config.ConfigPolicyStatus{}) {
		t.Errorf("status = %+v, want it cleared", p.Status)
	}
	if !apiequality.Semantic.DeepEqual(p.Spec, wantSpec) {
		t.Errorf("PrepareForCreate changed the spec: %+v", p.Spec)
	}
}

func TestPrepareForUpdate(t *testing.T) {
	s := NewStrategy(testScheme(t))
	tests := []struct {
		name           string
		mutate         func(*config.ConfigPolicy)
		wantGeneration int64
	}{
		{"no change", func(*config.ConfigPolicy) {}, 4},
		{"label only", func(p *config.ConfigPolicy) { p.Labels = map[string]string{"b": "2"} }, 4},
		{"annotation only", func(p *config.ConfigPolicy) { p.Annotations = map[string]string{"n": "x"} }, 4},
		{"status written on main endpoint is ignored", func(p *config.ConfigPolicy) {
			p.Status.ObservedGeneration = 100
			p.Status.Conditions = nil
		}, 4},
		{"equal values in new slices and pointers", func(p *config.ConfigPolicy) {
			p.Spec.RequiredKeys = []string{"LOG_LEVEL"}
			p.Spec.MaxKeys = ptr.To[int32](10)
			p.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
		}, 4},
		{"enforcement", func(p *config.ConfigPolicy) { p.Spec.Enforcement = config.EnforcementWarn }, 5},
		{"rule added", func(p *config.ConfigPolicy) {
			p.Spec.Rules = append(p.Spec.Rules, config.ConfigPolicyRule{Expression: "true"})
		}, 5},
		{"rule message", func(p *config.ConfigPolicy) { p.Spec.Rules[0].Message = "other" }, 5},
		{"selector", func(p *config.ConfigPolicy) { p.Spec.Selector = nil }, 5},
		{"namespace selector", func(p *config.ConfigPolicy) { p.Spec.NamespaceSelector = &metav1.LabelSelector{} }, 5},
		{"key pattern", func(p *config.ConfigPolicy) { p.Spec.KeyPattern = "" }, 5},
		{"max keys", func(p *config.ConfigPolicy) { *p.Spec.MaxKeys = 11 }, 5},
		{"require immutable", func(p *config.ConfigPolicy) { p.Spec.RequireImmutable = true }, 5},
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
			if !apiequality.Semantic.DeepEqual(obj.Status, old.Status) {
				t.Errorf("status = %+v, want the stored one", obj.Status)
			}
		})
	}
}

func TestStatusStrategyKeepsSpecAndLabels(t *testing.T) {
	s := NewStatusStrategy(NewStrategy(testScheme(t)))
	old := stored()
	obj := old.DeepCopy()
	obj.Spec.Enforcement = config.EnforcementWarn
	obj.Spec.Rules = nil
	obj.Spec.Selector = nil
	obj.Labels = map[string]string{"changed": "yes"}
	obj.Status.ObservedGeneration = 5
	obj.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Broken", LastTransitionTime: metav1.Now()}}

	s.PrepareForUpdate(context.Background(), obj, old)
	if !apiequality.Semantic.DeepEqual(obj.Spec, old.Spec) {
		t.Errorf("spec changed through /status: %+v", obj.Spec)
	}
	if !apiequality.Semantic.DeepEqual(obj.Labels, old.Labels) {
		t.Errorf("labels changed through /status: %v", obj.Labels)
	}
	if obj.Generation != old.Generation {
		t.Errorf("generation = %d, want %d", obj.Generation, old.Generation)
	}
	if obj.Status.ObservedGeneration != 5 || len(obj.Status.Conditions) != 1 || obj.Status.Conditions[0].Reason != "Broken" {
		t.Errorf("status was not taken from the request: %+v", obj.Status)
	}
	if errs := s.ValidateUpdate(context.Background(), obj, old); len(errs) != 0 {
		t.Errorf("a valid status update was refused: %v", errs)
	}

	bad := obj.DeepCopy()
	bad.Status.ObservedGeneration = -1
	if errs := s.ValidateUpdate(context.Background(), bad, old); len(errs) == 0 || errs[0].Field != "status.observedGeneration" {
		t.Errorf("errors = %v, want one on status.observedGeneration", errs)
	}
}

// TestResetFieldsCoverPrepareForUpdate changes every field of a request, lets
// the strategy prepare it, and checks that each field the strategy put back is
// one of its reset fields and that no field it let through is, in every served
// version: server-side apply relies on the list to know which applied fields
// it must not record as owned.
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
		if got := len(s.GetResetFields()); got != 2 {
			t.Errorf("%s: reset fields name %d versions, want 2", name, got)
		}
		for _, gv := range []string{"config.capstan.dev/v1beta1", "config.capstan.dev/v1alpha1"} {
			t.Run(name+"/"+gv, func(t *testing.T) {
				old := stored()
				request := old.DeepCopy()
				request.Labels = map[string]string{"z": "9"}
				request.Annotations = map[string]string{"n": "x"}
				request.Spec.Enforcement = config.EnforcementWarn
				request.Spec.RequiredKeys = []string{"OTHER"}
				request.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}
				request.Spec.Rules = []config.ConfigPolicyRule{{Expression: "true"}}
				request.Status.ObservedGeneration = 1000
				request.Status.Conditions = nil

				prepared := request.DeepCopy()
				s.PrepareForUpdate(context.Background(), prepared, old)

				reset := s.GetResetFields()[fieldpath.APIVersion(gv)]
				if reset == nil {
					t.Fatalf("no reset fields for %s", gv)
				}
				overwritten := registrytest.ChangedPaths(t, gv, request, prepared)
				if len(overwritten) == 0 {
					t.Fatal("PrepareForUpdate overwrote nothing; the test does not exercise it")
				}
				for _, p := range overwritten {
					if p == ".metadata.generation" {
						continue // server-owned everywhere, never applied
					}
					if !registrytest.CoveredBy(reset, p) {
						t.Errorf("PrepareForUpdate overwrote %s, which is not a reset field (%s)", p, reset.String())
					}
				}
				for _, p := range registrytest.ChangedPaths(t, gv, old, prepared) {
					if p == ".metadata.generation" {
						continue
					}
					if registrytest.CoveredBy(reset, p) {
						t.Errorf("PrepareForUpdate let %s through, yet it is a reset field", p)
					}
				}
			})
		}
	}
}

func TestSelectableFieldsMatchConstants(t *testing.T) {
	p := stored()
	p.Spec.Enforcement = config.EnforcementWarn
	got := SelectableFields(p)
	want := fields.Set{
		"metadata.name":                     "guard",
		config.ConfigPolicyEnforcementField: "Warn",
	}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("SelectableFields = %v, want %v", got, want)
	}
	declared := map[string]bool{"metadata.name": true}
	for _, f := range config.SelectableFields["ConfigPolicy"] {
		declared[f] = true
	}
	if len(declared) != len(got) {
		t.Errorf("config.SelectableFields[ConfigPolicy] = %v, SelectableFields sets %v", config.SelectableFields["ConfigPolicy"], got)
	}
	scheme := testScheme(t)
	for _, gv := range []schema.GroupVersion{v1beta1.SchemeGroupVersion, v1alpha1.SchemeGroupVersion} {
		for f, v := range got {
			if !declared[f] {
				t.Errorf("SelectableFields sets %q, which config.SelectableFields does not declare", f)
			}
			label, value, err := scheme.ConvertFieldLabel(gv.WithKind("ConfigPolicy"), f, v)
			if err != nil || label != f || value != v {
				t.Errorf("%s: ConvertFieldLabel(%q, %q) = %q, %q, %v", gv, f, v, label, value, err)
			}
		}
	}
}

func TestGetAttrsAndMatch(t *testing.T) {
	p := stored()
	if _, _, err := GetAttrs(&config.ConfigSet{}); err == nil {
		t.Error("GetAttrs accepted a ConfigSet")
	}
	tests := []struct {
		label, field string
		want         bool
	}{
		{"", "spec.enforcement=Deny", true},
		{"", "spec.enforcement=Warn", false},
		{"a=1", "metadata.name=guard", true},
		{"a=2", "", false},
	}
	for _, tc := range tests {
		ls, err := labels.Parse(tc.label)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := fields.ParseSelector(tc.field)
		if err != nil {
			t.Fatal(err)
		}
		predicate := MatchConfigPolicy(ls, fs)
		got, err := predicate.Matches(p)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("labels %q fields %q: match = %v, want %v", tc.label, tc.field, got, tc.want)
		}
	}
}
