package e2e

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDiscovery checks what kubectl learns about the group through
// kube-apiserver: resources with short names and category, both versions
// with v1beta1 preferred, subresources, and the OpenAPI schema behind explain.
func TestDiscovery(t *testing.T) {
	k := newKubectl(t, testCluster.AdminKubeconfig)

	t.Run("api-resources lists the three resources", func(t *testing.T) {
		out := k.Run(t, "api-resources", "--api-group=config.capstan.dev", "-o", "wide")
		header, rows := tableRows(t, out)
		if want := []string{"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS", "CATEGORIES"}; !slices.Equal(header, want) {
			t.Fatalf("header %q, want %q; output:\n%s", header, want, out)
		}
		want := [][]string{
			{"configpolicies", "cfgpol", "config.capstan.dev/v1beta1", "false", "ConfigPolicy", "create,delete,deletecollection,get,list,patch,update,watch", "capstan"},
			{"configrevisions", "cfgrev", "config.capstan.dev/v1beta1", "true", "ConfigRevision", "delete,deletecollection,get,list,patch,update,watch", "capstan"},
			{"configsets", "cfgs", "config.capstan.dev/v1beta1", "true", "ConfigSet", "create,delete,deletecollection,get,list,patch,update,watch", "capstan"},
		}
		if !slices.EqualFunc(rows, want, slices.Equal[[]string]) {
			t.Fatalf("rows %q, want %q; output:\n%s", rows, want, out)
		}
	})

	t.Run("the group has both versions, v1beta1 preferred", func(t *testing.T) {
		var group metav1.APIGroup
		if err := json.Unmarshal([]byte(k.Run(t, "get", "--raw", "/apis/config.capstan.dev")), &group); err != nil {
			t.Fatal(err)
		}
		want := metav1.APIGroup{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
			Name:     "config.capstan.dev",
			Versions: []metav1.GroupVersionForDiscovery{
				{GroupVersion: "config.capstan.dev/v1beta1", Version: "v1beta1"},
				{GroupVersion: "config.capstan.dev/v1alpha1", Version: "v1alpha1"},
			},
			PreferredVersion: metav1.GroupVersionForDiscovery{GroupVersion: "config.capstan.dev/v1beta1", Version: "v1beta1"},
		}
		if group.Name != want.Name || !slices.Equal(group.Versions, want.Versions) || group.PreferredVersion != want.PreferredVersion {
			t.Fatalf("APIGroup %+v, want %+v", group, want)
		}
	})

	for _, version := range []string{"v1beta1", "v1alpha1"} {
		t.Run(version+" serves the resources and subresources", func(t *testing.T) {
			var list metav1.APIResourceList
			if err := json.Unmarshal([]byte(k.Run(t, "get", "--raw", "/apis/config.capstan.dev/"+version)), &list); err != nil {
				t.Fatal(err)
			}
			if list.GroupVersion != "config.capstan.dev/"+version {
				t.Fatalf("groupVersion %q", list.GroupVersion)
			}
			got := map[string]metav1.APIResource{}
			for _, r := range list.APIResources {
				got[r.Name] = r
			}
			for _, name := range []string{"configsets", "configsets/status", "configsets/rollback", "configrevisions", "configpolicies", "configpolicies/status"} {
				if _, ok := got[name]; !ok {
					t.Errorf("%s missing from %s discovery; have %v", name, version, keys(got))
				}
			}
			if cs := got["configsets"]; !slices.Equal(cs.ShortNames, []string{"cfgs"}) || !slices.Equal(cs.Categories, []string{"capstan"}) || cs.Kind != "ConfigSet" || !cs.Namespaced {
				t.Errorf("configsets in %s: %+v", version, cs)
			}
			if rb := got["configsets/rollback"]; !slices.Equal(rb.Verbs, []string{"create"}) || rb.Kind != "ConfigSetRollback" {
				t.Errorf("configsets/rollback in %s: %+v, want verbs [create] and kind ConfigSetRollback", version, rb)
			}
		})
	}

	t.Run("explain configsets.spec through the aggregated OpenAPI", func(t *testing.T) {
		out := k.Run(t, "explain", "configsets.spec")
		for _, pattern := range []string{
			`(?m)^GROUP:\s+config\.capstan\.dev$`,
			`(?m)^KIND:\s+ConfigSet$`,
			`(?m)^VERSION:\s+v1beta1$`,
			`(?m)^FIELD: spec <ConfigSetSpec>$`,
			`(?m)^\s+data\s+<map\[string\]string>$`,
			`(?m)^\s+secretData\s+<map\[string\]string>$`,
			`(?m)^\s+immutable\s+<boolean>$`,
			`(?m)^\s+revisionHistoryLimit\s+<integer>$`,
		} {
			if !regexp.MustCompile(pattern).MatchString(out) {
				t.Errorf("explain output does not match %s:\n%s", pattern, out)
			}
		}
	})

	t.Run("explain the v1alpha1 shape", func(t *testing.T) {
		out := k.Run(t, "explain", "configsets.spec.entries", "--api-version=config.capstan.dev/v1alpha1")
		for _, pattern := range []string{
			`(?m)^VERSION:\s+v1alpha1$`,
			`(?m)^FIELD: entries <\[\]ConfigEntry>$`,
			`(?m)^\s+key\s+<string> -required-$`,
		} {
			if !regexp.MustCompile(pattern).MatchString(out) {
				t.Errorf("explain output does not match %s:\n%s", pattern, out)
			}
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
