package integration

import (
	"reflect"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestAPIDiscovery checks the group, its versions and its resources as
// clients discover them.
func TestAPIDiscovery(t *testing.T) {
	e := sharedEnv(t)
	dc, err := discovery.NewDiscoveryClientForConfig(e.ts.ClientConfig)
	if err != nil {
		t.Fatalf("discovery client: %v", err)
	}

	t.Run("group", func(t *testing.T) {
		groups, err := dc.ServerGroups()
		if err != nil {
			t.Fatalf("server groups: %v", err)
		}
		var group *metav1.APIGroup
		for i := range groups.Groups {
			if groups.Groups[i].Name == "config.capstan.dev" {
				group = &groups.Groups[i]
			}
		}
		if group == nil {
			t.Fatalf("config.capstan.dev not discovered among %+v", groups.Groups)
		}
		if group.PreferredVersion.Version != "v1beta1" || group.PreferredVersion.GroupVersion != "config.capstan.dev/v1beta1" {
			t.Errorf("preferred version = %+v, want config.capstan.dev/v1beta1", group.PreferredVersion)
		}
		var versions []string
		for _, v := range group.Versions {
			versions = append(versions, v.GroupVersion)
		}
		if want := []string{"config.capstan.dev/v1beta1", "config.capstan.dev/v1alpha1"}; !reflect.DeepEqual(versions, want) {
			t.Errorf("versions = %v, want %v (preferred first)", versions, want)
		}
	})

	type wantResource struct {
		namespaced bool
		kind       string
		singular   string
		shortNames []string
		categories []string
		verbs      []string
	}
	want := map[string]wantResource{
		"configsets": {true, "ConfigSet", "configset", []string{"cfgs"}, []string{"capstan"},
			[]string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}},
		"configsets/status":   {true, "ConfigSet", "", nil, nil, []string{"get", "patch", "update"}},
		"configsets/rollback": {true, "ConfigSetRollback", "", nil, nil, []string{"create"}},
		// update and patch only send a revision back unchanged (re-encryption).
		"configrevisions": {true, "ConfigRevision", "configrevision", []string{"cfgrev"}, []string{"capstan"},
			[]string{"delete", "deletecollection", "get", "list", "patch", "update", "watch"}},
		"configpolicies": {false, "ConfigPolicy", "configpolicy", []string{"cfgpol"}, []string{"capstan"},
			[]string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}},
		"configpolicies/status": {false, "ConfigPolicy", "", nil, nil, []string{"get", "patch", "update"}},
	}
	for _, gv := range []string{v1beta1.SchemeGroupVersion.String(), v1alpha1.SchemeGroupVersion.String()} {
		t.Run(gv, func(t *testing.T) {
			list, err := dc.ServerResourcesForGroupVersion(gv)
			if err != nil {
				t.Fatalf("resources of %s: %v", gv, err)
			}
			got := map[string]metav1.APIResource{}
			for _, r := range list.APIResources {
				got[r.Name] = r
			}
			var names []string
			for name := range got {
				names = append(names, name)
			}
			slices.Sort(names)
			wantNames := []string{"configpolicies", "configpolicies/status", "configrevisions", "configsets", "configsets/rollback", "configsets/status"}
			if !reflect.DeepEqual(names, wantNames) {
				t.Errorf("resources = %v, want %v", names, wantNames)
			}
			for name, w := range want {
				r, ok := got[name]
				if !ok {
					continue
				}
				verbs := slices.Clone([]string(r.Verbs))
				slices.Sort(verbs)
				if !reflect.DeepEqual(verbs, w.verbs) {
					t.Errorf("%s verbs = %v, want exactly %v", name, verbs, w.verbs)
				}
				if r.Namespaced != w.namespaced {
					t.Errorf("%s namespaced = %v, want %v", name, r.Namespaced, w.namespaced)
				}
				if r.Kind != w.kind {
					t.Errorf("%s kind = %q, want %q", name, r.Kind, w.kind)
				}
				if w.singular != "" && r.SingularName != w.singular {
					t.Errorf("%s singularName = %q, want %q", name, r.SingularName, w.singular)
				}
				if !reflect.DeepEqual(r.ShortNames, w.shortNames) {
					t.Errorf("%s shortNames = %v, want %v", name, r.ShortNames, w.shortNames)
				}
				if !reflect.DeepEqual(r.Categories, w.categories) {
					t.Errorf("%s categories = %v, want %v", name, r.Categories, w.categories)
				}
			}
		})
	}

	t.Run("preferred resources", func(t *testing.T) {
		lists, err := dc.ServerPreferredResources()
		if err != nil {
			t.Fatalf("preferred resources: %v", err)
		}
		found := false
		for _, l := range lists {
			if l.GroupVersion == "config.capstan.dev/v1alpha1" && len(l.APIResources) > 0 {
				t.Errorf("preferred resources include v1alpha1: %+v", l.APIResources)
			}
			if l.GroupVersion == "config.capstan.dev/v1beta1" {
				found = true
			}
		}
		if !found {
			t.Errorf("preferred resources lack config.capstan.dev/v1beta1")
		}
	})
}

// TestAPIDefaults checks the defaults a client reads back for fields it did not set.
func TestAPIDefaults(t *testing.T) {
	e := sharedEnv(t)
	const ns = "defaults"

	t.Run("configset v1beta1", func(t *testing.T) {
		created := e.mustCreate(t, ns, configSet("bare", map[string]string{"k": "v"}, nil))
		for name, obj := range map[string]*v1beta1.ConfigSet{"response": created, "stored": e.mustGet(t, ns, "bare")} {
			if obj.Spec.RevisionHistoryLimit == nil || *obj.Spec.RevisionHistoryLimit != 10 {
				t.Errorf("%s: revisionHistoryLimit = %s, want 10", name, describeInt32(obj.Spec.RevisionHistoryLimit))
			}
			if obj.Spec.Immutable == nil || *obj.Spec.Immutable {
				t.Errorf("%s: immutable = %s, want false", name, describeBool(obj.Spec.Immutable))
			}
		}
	})

	t.Run("configset v1alpha1", func(t *testing.T) {
		got, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Create(e.ctx, &v1alpha1.ConfigSet{ObjectMeta: metav1.ObjectMeta{Name: "bare-alpha"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if ptr.Deref(got.Spec.RevisionHistoryLimit, -1) != 10 || got.Spec.Immutable == nil || *got.Spec.Immutable {
			t.Errorf("v1alpha1 defaults: revisionHistoryLimit %s immutable %s, want 10, false", describeInt32(got.Spec.RevisionHistoryLimit), describeBool(got.Spec.Immutable))
		}
		beta := e.mustGet(t, ns, "bare-alpha")
		if ptr.Deref(beta.Spec.RevisionHistoryLimit, -1) != 10 || beta.Spec.Immutable == nil || *beta.Spec.Immutable {
			t.Errorf("v1beta1 view: revisionHistoryLimit %s immutable %s, want 10, false", describeInt32(beta.Spec.RevisionHistoryLimit), describeBool(beta.Spec.Immutable))
		}
	})

	t.Run("explicit values are kept", func(t *testing.T) {
		obj := configSet("explicit", nil, nil)
		obj.Spec.RevisionHistoryLimit = ptr.To[int32](1)
		obj.Spec.Immutable = ptr.To(true)
		got := e.mustCreate(t, ns, obj)
		if ptr.Deref(got.Spec.RevisionHistoryLimit, -1) != 1 || !ptr.Deref(got.Spec.Immutable, false) {
			t.Errorf("explicit values: revisionHistoryLimit %s immutable %s, want 1, true", describeInt32(got.Spec.RevisionHistoryLimit), describeBool(got.Spec.Immutable))
		}
	})

	t.Run("configpolicy enforcement", func(t *testing.T) {
		never := &metav1.LabelSelector{MatchLabels: map[string]string{"apitest-never": "selected"}}
		got, err := e.cs.ConfigV1beta1().ConfigPolicies().Create(e.ctx, &v1beta1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "bare-policy"},
			Spec:       v1beta1.ConfigPolicySpec{Selector: never},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if got.Spec.Enforcement != v1beta1.EnforcementDeny {
			t.Errorf("enforcement = %q, want Deny", got.Spec.Enforcement)
		}
		alpha, err := e.cs.ConfigV1alpha1().ConfigPolicies().Create(e.ctx, &v1alpha1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "bare-policy-alpha"},
			Spec:       v1alpha1.ConfigPolicySpec{Selector: never},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create v1alpha1: %v", err)
		}
		if alpha.Spec.Enforcement != v1alpha1.EnforcementDeny {
			t.Errorf("v1alpha1 enforcement = %q, want Deny", alpha.Spec.Enforcement)
		}
		stored, err := e.cs.ConfigV1beta1().ConfigPolicies().Get(e.ctx, "bare-policy-alpha", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if stored.Spec.Enforcement != v1beta1.EnforcementDeny {
			t.Errorf("stored enforcement = %q, want Deny", stored.Spec.Enforcement)
		}
	})

	t.Run("defaults apply on update too", func(t *testing.T) {
		cur := e.mustGet(t, ns, "bare")
		cur.Spec.RevisionHistoryLimit = nil
		cur.Spec.Immutable = nil
		cur.Spec.Data["k"] = "v2"
		got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Update(e.ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		if ptr.Deref(got.Spec.RevisionHistoryLimit, -1) != 10 || got.Spec.Immutable == nil || *got.Spec.Immutable {
			t.Errorf("after update without the fields: revisionHistoryLimit %s immutable %s, want 10, false", describeInt32(got.Spec.RevisionHistoryLimit), describeBool(got.Spec.Immutable))
		}
	})
}
