package configrevision

import (
	"context"
	"strings"
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

// stored is a revision as the server writes it: every content field set.
func stored() *config.ConfigRevision {
	return &config.ConfigRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            "app-3",
			Namespace:       "ns",
			Generation:      1,
			ResourceVersion: "10",
			Labels:          map[string]string{config.ConfigSetLabel: "app"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "config.capstan.dev/v1beta1", Kind: "ConfigSet", Name: "app", UID: "uid-1", Controller: ptr.To(true),
			}},
		},
		ConfigSetName: "app",
		Revision:      3,
		Data:          map[string]string{"k": "v"},
		SecretData:    map[string][]byte{"s": []byte("x")},
		Author:        "alice",
		ChangeCause:   "rollback to 1",
		RollbackOf:    1,
	}
}

func TestStrategyBasics(t *testing.T) {
	s := NewStrategy(testScheme(t))
	ctx := context.Background()
	if !s.NamespaceScoped() {
		t.Error("ConfigRevisions must be namespaced")
	}
	if s.AllowCreateOnUpdate(ctx) {
		t.Error("AllowCreateOnUpdate must be false")
	}
	if s.AllowUnconditionalUpdate(ctx) {
		t.Error("AllowUnconditionalUpdate must be false: the server's updates carry a resourceVersion")
	}
}

func TestPrepareForCreateSetsGeneration(t *testing.T) {
	s := NewStrategy(testScheme(t))
	rev := stored()
	rev.Generation = 9
	want := rev.DeepCopy()
	want.Generation = 1

	s.PrepareForCreate(context.Background(), rev)
	if !apiequality.Semantic.DeepEqual(rev, want) {
		t.Errorf("PrepareForCreate changed more than the generation:\n got %+v\nwant %+v", rev, want)
	}
}

func TestPrepareForUpdateKeepsContent(t *testing.T) {
	s := NewStrategy(testScheme(t))
	tests := []struct {
		name   string
		mutate func(*config.ConfigRevision)
	}{
		{"no change", func(*config.ConfigRevision) {}},
		{"configSetName", func(r *config.ConfigRevision) { r.ConfigSetName = "other" }},
		{"revision", func(r *config.ConfigRevision) { r.Revision = 99 }},
		{"data value", func(r *config.ConfigRevision) { r.Data["k"] = "changed" }},
		{"data key added", func(r *config.ConfigRevision) { r.Data["k2"] = "v" }},
		{"data removed", func(r *config.ConfigRevision) { r.Data = nil }},
		{"secretData value", func(r *config.ConfigRevision) { r.SecretData["s"] = []byte("y") }},
		{"secretData removed", func(r *config.ConfigRevision) { r.SecretData = nil }},
		{"author", func(r *config.ConfigRevision) { r.Author = "mallory" }},
		{"changeCause", func(r *config.ConfigRevision) { r.ChangeCause = "" }},
		{"rollbackOf", func(r *config.ConfigRevision) { r.RollbackOf = 0 }},
		{"everything", func(r *config.ConfigRevision) {
			*r = config.ConfigRevision{ObjectMeta: r.ObjectMeta}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := stored()
			obj := old.DeepCopy()
			tc.mutate(obj)
			s.PrepareForUpdate(context.Background(), obj, old)

			want := stored()
			if !apiequality.Semantic.DeepEqual(obj, want) {
				t.Errorf("PrepareForUpdate let a content change through:\n got %+v\nwant %+v", obj, want)
			}
			// The prepared object must not share maps with the stored one:
			// the store's cache holds the old object.
			obj.Data["k"] = "mutated-after-prepare"
			obj.SecretData["s"][0] = 'z'
			if old.Data["k"] != "v" || string(old.SecretData["s"]) != "x" {
				t.Errorf("the prepared object aliases the stored one: %+v", old)
			}
		})
	}
}

func TestPrepareForUpdateLetsMetadataThrough(t *testing.T) {
	s := NewStrategy(testScheme(t))
	tests := []struct {
		name   string
		mutate func(*metav1.ObjectMeta)
	}{
		{"labels", func(m *metav1.ObjectMeta) { m.Labels = map[string]string{"other": "x"} }},
		{"labels removed", func(m *metav1.ObjectMeta) { m.Labels = nil }},
		{"annotations", func(m *metav1.ObjectMeta) { m.Annotations = map[string]string{"note": "kept"} }},
		{"finalizers", func(m *metav1.ObjectMeta) { m.Finalizers = []string{"capstan.dev/keep"} }},
		{"ownerReferences removed", func(m *metav1.ObjectMeta) { m.OwnerReferences = nil }},
		{"ownerReferences replaced", func(m *metav1.ObjectMeta) {
			m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "uid-2"}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := stored()
			obj := old.DeepCopy()
			tc.mutate(&obj.ObjectMeta)
			obj.Author = "mallory" // a content change in the same request is still dropped
			wantMeta := *obj.ObjectMeta.DeepCopy()

			s.PrepareForUpdate(context.Background(), obj, old)
			if !apiequality.Semantic.DeepEqual(obj.ObjectMeta, wantMeta) {
				t.Errorf("metadata = %+v, want %+v", obj.ObjectMeta, wantMeta)
			}
			if obj.Author != "alice" {
				t.Errorf("author = %q, want the stored one", obj.Author)
			}
		})
	}
}

func TestValidateUpdateChecksMetadata(t *testing.T) {
	s := NewStrategy(testScheme(t))
	old := stored()
	obj := old.DeepCopy()
	obj.Labels = map[string]string{"app": "not a valid label value!"}
	s.PrepareForUpdate(context.Background(), obj, old)
	errs := s.ValidateUpdate(context.Background(), obj, old)
	if len(errs) == 0 {
		t.Fatal("an invalid label value was accepted")
	}
	for _, err := range errs {
		if !strings.HasPrefix(err.Field, "metadata.labels") {
			t.Errorf("unexpected error: %v", err)
		}
	}

	fine := old.DeepCopy()
	fine.Labels["extra"] = "ok"
	if errs := s.ValidateUpdate(context.Background(), fine, old); len(errs) != 0 {
		t.Errorf("a valid label change was refused: %v", errs)
	}
}

func TestValidate(t *testing.T) {
	s := NewStrategy(testScheme(t))
	tests := []struct {
		name   string
		mutate func(*config.ConfigRevision)
		field  string
	}{
		{"valid", func(*config.ConfigRevision) {}, ""},
		{"revision zero", func(r *config.ConfigRevision) { r.Revision = 0 }, "revision"},
		{"empty configSetName", func(r *config.ConfigRevision) { r.ConfigSetName = "" }, "configSetName"},
		{"bad configSetName", func(r *config.ConfigRevision) { r.ConfigSetName = "Not_A_Name" }, "configSetName"},
		{"bad key", func(r *config.ConfigRevision) { r.Data = map[string]string{"not a key": "x"} }, "data[not a key]"},
		{"duplicate key", func(r *config.ConfigRevision) { r.SecretData = map[string][]byte{"k": []byte("x")} }, "secretData[k]"},
		{"negative rollbackOf", func(r *config.ConfigRevision) { r.RollbackOf = -1 }, "rollbackOf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev := stored()
			tc.mutate(rev)
			errs := s.Validate(context.Background(), rev)
			if tc.field == "" {
				if len(errs) != 0 {
					t.Errorf("unexpected errors: %v", errs)
				}
				return
			}
			found := false
			for _, err := range errs {
				if err.Field == tc.field {
					found = true
				}
			}
			if !found {
				t.Errorf("errors %v do not name %s", errs, tc.field)
			}
		})
	}
}

// TestResetFieldsCoverPrepareForUpdate changes every field of a request, lets
// the strategy prepare it, and checks that each field the strategy put back is
// one of its reset fields, and that no field it let through is, in every served
// version: v1alpha1 spells data and secretData as a single entries list.
func TestResetFieldsCoverPrepareForUpdate(t *testing.T) {
	scheme := testScheme(t)
	s := NewStrategy(scheme)
	if got := len(s.GetResetFields()); got != 2 {
		t.Errorf("reset fields name %d versions, want 2", got)
	}
	for _, gv := range []string{"config.capstan.dev/v1beta1", "config.capstan.dev/v1alpha1"} {
		t.Run(gv, func(t *testing.T) {
			old := stored()
			request := old.DeepCopy()
			request.Labels = map[string]string{"z": "9"}
			request.Finalizers = []string{"capstan.dev/keep"}
			request.ConfigSetName = "other"
			request.Revision = 42
			request.Data = map[string]string{"k": "changed", "k2": "new"}
			request.SecretData = map[string][]byte{"s2": []byte("y")}
			request.Author = "mallory"
			request.ChangeCause = "forged"
			request.RollbackOf = 2

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
				if !registrytest.CoveredBy(reset, p) {
					t.Errorf("PrepareForUpdate overwrote %s, which is not a reset field (%s)", p, reset.String())
				}
			}
			for _, p := range registrytest.ChangedPaths(t, gv, old, prepared) {
				if registrytest.CoveredBy(reset, p) {
					t.Errorf("PrepareForUpdate let %s through, yet it is a reset field", p)
				}
			}
		})
	}
}

func TestSelectableFieldsMatchConstants(t *testing.T) {
	rev := stored()
	got := SelectableFields(rev)
	declared := map[string]bool{"metadata.name": true, "metadata.namespace": true}
	for _, f := range config.SelectableFields["ConfigRevision"] {
		declared[f] = true
	}
	for f := range declared {
		if _, ok := got[f]; !ok {
			t.Errorf("field %q is declared selectable but SelectableFields does not set it", f)
		}
	}
	for f := range got {
		if !declared[f] {
			t.Errorf("SelectableFields sets %q, which the field-label conversion does not accept", f)
		}
	}
	want := fields.Set{
		"metadata.name":                         "app-3",
		"metadata.namespace":                    "ns",
		config.ConfigRevisionConfigSetNameField: "app",
		config.ConfigRevisionRevisionField:      "3",
	}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("SelectableFields = %v, want %v", got, want)
	}

	// Every field SelectableFields sets is one the field-label conversion of
	// every served version accepts, unchanged.
	scheme := testScheme(t)
	for _, gv := range []schema.GroupVersion{v1beta1.SchemeGroupVersion, v1alpha1.SchemeGroupVersion} {
		for f, v := range got {
			label, value, err := scheme.ConvertFieldLabel(gv.WithKind("ConfigRevision"), f, v)
			if err != nil || label != f || value != v {
				t.Errorf("%s: ConvertFieldLabel(%q, %q) = %q, %q, %v", gv, f, v, label, value, err)
			}
		}
	}
}

func TestGetAttrsAndMatch(t *testing.T) {
	rev := stored()
	ls, fs, err := GetAttrs(rev)
	if err != nil {
		t.Fatal(err)
	}
	if ls[config.ConfigSetLabel] != "app" || fs[config.ConfigRevisionRevisionField] != "3" {
		t.Errorf("GetAttrs = %v, %v", ls, fs)
	}
	if _, _, err := GetAttrs(&config.ConfigSet{}); err == nil {
		t.Error("GetAttrs accepted a ConfigSet")
	}

	tests := []struct {
		label, field string
		want         bool
	}{
		{"", "configSetName=app", true},
		{"", "configSetName=other", false},
		{"", "revision=3", true},
		{"", "revision=4", false},
		{"config.capstan.dev/configset=app", "revision=3,configSetName=app", true},
		{"config.capstan.dev/configset=other", "", false},
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
		predicate := MatchConfigRevision(ls, fs)
		got, err := predicate.Matches(rev)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("labels %q fields %q: match = %v, want %v", tc.label, tc.field, got, tc.want)
		}
	}
}
