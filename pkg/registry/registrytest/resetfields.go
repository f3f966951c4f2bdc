package registrytest

import (
	"sort"
	"strings"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// ChangedPaths returns, sorted, the dotted leaf paths (".spec.data") whose
// values differ between a and b once both are converted to the served version
// gv ("config.capstan.dev/v1beta1"). Strategy tests use it to check that
// whatever PrepareForUpdate overwrites is named by GetResetFields.
func ChangedPaths(t *testing.T, gv string, a, b runtime.Object) []string {
	t.Helper()
	ua := toUnstructured(t, gv, a)
	ub := toUnstructured(t, gv, b)
	var out []string
	diffMaps("", ua, ub, &out)
	sort.Strings(out)
	return out
}

func toUnstructured(t *testing.T, gv string, obj runtime.Object) map[string]interface{} {
	t.Helper()
	target, err := schema.ParseGroupVersion(gv)
	if err != nil {
		t.Fatal(err)
	}
	versioned, err := Scheme.ConvertToVersion(obj.DeepCopyObject(), target)
	if err != nil {
		t.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(versioned)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func diffMaps(prefix string, a, b map[string]interface{}, out *[]string) {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		p := prefix + "." + k
		am, aok := a[k].(map[string]interface{})
		bm, bok := b[k].(map[string]interface{})
		if aok && bok {
			diffMaps(p, am, bm, out)
			continue
		}
		if !apiequality.Semantic.DeepEqual(a[k], b[k]) {
			*out = append(*out, p)
		}
	}
}

// CoveredBy reports whether the dotted path p lies at or below a path in set.
func CoveredBy(set *fieldpath.Set, p string) bool {
	covered := false
	set.Iterate(func(rp fieldpath.Path) {
		prefix := ""
		for _, pe := range rp {
			if pe.FieldName == nil {
				return
			}
			prefix += "." + *pe.FieldName
		}
		if p == prefix || strings.HasPrefix(p, prefix+".") {
			covered = true
		}
	})
	return covered
}
