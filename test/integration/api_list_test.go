package integration

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestAPIPagination lists 25 ConfigSets ten at a time through continue tokens.
func TestAPIPagination(t *testing.T) {
	e := sharedEnv(t)
	const ns = "pages"
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("cs-%02d", i)
		want = append(want, name)
		e.mustCreate(t, ns, configSet(name, map[string]string{"i": fmt.Sprint(i)}, nil))
	}
	// Another namespace's objects must not leak into the pages.
	e.mustCreate(t, "pages-elsewhere", configSet("cs-00", nil, nil))

	for _, version := range []string{"v1beta1", "v1alpha1"} {
		t.Run(version, func(t *testing.T) {
			list := func(opts metav1.ListOptions) ([]string, metav1.ListMeta, error) {
				if version == "v1alpha1" {
					l, err := e.cs.ConfigV1alpha1().ConfigSets(ns).List(e.ctx, opts)
					if err != nil {
						return nil, metav1.ListMeta{}, err
					}
					return namesOf(itemPtrs(l.Items)), l.ListMeta, nil
				}
				l, err := e.cs.ConfigV1beta1().ConfigSets(ns).List(e.ctx, opts)
				if err != nil {
					return nil, metav1.ListMeta{}, err
				}
				return namesOf(itemPtrs(l.Items)), l.ListMeta, nil
			}

			var got []string
			var sizes []int
			token := ""
			for page := 0; ; page++ {
				if page > 5 {
					t.Fatalf("more than 5 pages; sizes so far %v", sizes)
				}
				names, meta, err := list(metav1.ListOptions{Limit: 10, Continue: token})
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				if page == 0 && meta.RemainingItemCount != nil && *meta.RemainingItemCount != 15 {
					t.Errorf("first page remainingItemCount = %d, want 15", *meta.RemainingItemCount)
				}
				if page == 1 && meta.RemainingItemCount != nil && *meta.RemainingItemCount != 5 {
					t.Errorf("second page remainingItemCount = %d, want 5", *meta.RemainingItemCount)
				}
				sizes = append(sizes, len(names))
				got = append(got, names...)
				if meta.Continue == "" {
					if meta.RemainingItemCount != nil && *meta.RemainingItemCount != 0 {
						t.Errorf("last page remainingItemCount = %d, want 0 or unset", *meta.RemainingItemCount)
					}
					break
				}
				token = meta.Continue
			}
			if !reflect.DeepEqual(sizes, []int{10, 10, 5}) {
				t.Errorf("page sizes = %v, want [10 10 5]", sizes)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("names over all pages = %v, want %v (each once, in order)", got, want)
			}
		})
	}

	t.Run("pages are a snapshot", func(t *testing.T) {
		client := e.cs.ConfigV1beta1().ConfigSets(ns)
		first, err := client.List(e.ctx, metav1.ListOptions{Limit: 10})
		if err != nil {
			t.Fatalf("first page: %v", err)
		}
		// Created after the first page, sorting inside the remaining pages:
		// the continued list is served at the first page's resourceVersion.
		e.mustCreate(t, ns, configSet("cs-15a", nil, nil))
		seen := namesOf(itemPtrs(first.Items))
		token := first.Continue
		for token != "" {
			page, err := client.List(e.ctx, metav1.ListOptions{Limit: 10, Continue: token})
			if err != nil {
				t.Fatalf("continued page: %v", err)
			}
			seen = append(seen, namesOf(itemPtrs(page.Items))...)
			token = page.Continue
		}
		if !reflect.DeepEqual(seen, want) {
			t.Errorf("paged list after a concurrent create = %v, want the 25 original names", seen)
		}
		all, err := client.List(e.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("full list: %v", err)
		}
		if len(all.Items) != 26 {
			t.Errorf("full list has %d items, want 26", len(all.Items))
		}
	})

	t.Run("bad continue token", func(t *testing.T) {
		_, err := e.cs.ConfigV1beta1().ConfigSets(ns).List(e.ctx, metav1.ListOptions{Limit: 10, Continue: "not-a-token"})
		if !apierrors.IsBadRequest(err) {
			t.Errorf("list with a malformed continue token: err = %v, want 400 BadRequest", err)
		}
	})
}

// TestAPISelectors filters lists with label and field selectors on every kind.
func TestAPISelectors(t *testing.T) {
	e := sharedEnv(t)
	const ns = "selectors"
	sets := e.cs.ConfigV1beta1().ConfigSets(ns)
	for _, c := range []struct {
		name      string
		env       string
		immutable bool
	}{
		{"a-prod", "prod", true},
		{"b-prod", "prod", false},
		{"c-dev", "dev", true},
		{"d-none", "", false},
	} {
		obj := configSet(c.name, map[string]string{"k": "v"}, nil)
		if c.env != "" {
			obj.Labels = map[string]string{"env": c.env}
		}
		obj.Spec.Immutable = ptr.To(c.immutable)
		e.mustCreate(t, ns, obj)
	}

	setNames := func(t *testing.T, opts metav1.ListOptions) []string {
		t.Helper()
		l, err := sets.List(e.ctx, opts)
		if err != nil {
			t.Fatalf("list %+v: %v", opts, err)
		}
		return namesOf(itemPtrs(l.Items))
	}
	alphaSetNames := func(t *testing.T, opts metav1.ListOptions) []string {
		t.Helper()
		l, err := e.cs.ConfigV1alpha1().ConfigSets(ns).List(e.ctx, opts)
		if err != nil {
			t.Fatalf("v1alpha1 list %+v: %v", opts, err)
		}
		return namesOf(itemPtrs(l.Items))
	}

	t.Run("configsets by label", func(t *testing.T) {
		for _, c := range []struct {
			selector string
			want     []string
		}{
			{"env=prod", []string{"a-prod", "b-prod"}},
			{"env!=prod", []string{"c-dev", "d-none"}},
			{"env in (dev,prod)", []string{"a-prod", "b-prod", "c-dev"}},
			{"!env", []string{"d-none"}},
			{"env=staging", []string{}},
		} {
			if got := setNames(t, metav1.ListOptions{LabelSelector: c.selector}); !reflect.DeepEqual(got, c.want) {
				t.Errorf("label selector %q = %v, want %v", c.selector, got, c.want)
			}
			if got := alphaSetNames(t, metav1.ListOptions{LabelSelector: c.selector}); !reflect.DeepEqual(got, c.want) {
				t.Errorf("v1alpha1 label selector %q = %v, want %v", c.selector, got, c.want)
			}
		}
	})

	t.Run("configsets by field", func(t *testing.T) {
		for _, c := range []struct {
			selector string
			want     []string
		}{
			{"spec.immutable=true", []string{"a-prod", "c-dev"}},
			{"spec.immutable=false", []string{"b-prod", "d-none"}},
			{"spec.immutable!=true", []string{"b-prod", "d-none"}},
			{"metadata.name=b-prod", []string{"b-prod"}},
			{"metadata.namespace=" + ns, []string{"a-prod", "b-prod", "c-dev", "d-none"}},
			{"metadata.namespace=elsewhere", []string{}},
		} {
			if got := setNames(t, metav1.ListOptions{FieldSelector: c.selector}); !reflect.DeepEqual(got, c.want) {
				t.Errorf("field selector %q = %v, want %v", c.selector, got, c.want)
			}
			if got := alphaSetNames(t, metav1.ListOptions{FieldSelector: c.selector}); !reflect.DeepEqual(got, c.want) {
				t.Errorf("v1alpha1 field selector %q = %v, want %v", c.selector, got, c.want)
			}
		}
		got := setNames(t, metav1.ListOptions{FieldSelector: "spec.immutable=true", LabelSelector: "env=prod"})
		if !reflect.DeepEqual(got, []string{"a-prod"}) {
			t.Errorf("spec.immutable=true with env=prod = %v, want [a-prod]", got)
		}
	})

	// Revisions of two ConfigSets, written as the server writes them. Only the
	// ones this test writes carry manualLabel, so the counts stay exact
	// even if the server writes its own.
	x, err := sets.Get(e.ctx, "a-prod", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get a-prod: %v", err)
	}
	y, err := sets.Get(e.ctx, "b-prod", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get b-prod: %v", err)
	}
	for r := int64(1); r <= 3; r++ {
		e.mustCreateRevision(t, ns, manualRevision(fmt.Sprintf("a-prod-manual-%d", r), "a-prod", r, x, map[string]string{"k": "v"}, nil))
	}
	for r := int64(1); r <= 2; r++ {
		e.mustCreateRevision(t, ns, manualRevision(fmt.Sprintf("b-prod-manual-%d", r), "b-prod", r, y, map[string]string{"k": "v"}, nil))
	}

	t.Run("configrevisions by field", func(t *testing.T) {
		for _, c := range []struct {
			selector string
			want     []string
		}{
			{"configSetName=a-prod", []string{"a-prod-manual-1", "a-prod-manual-2", "a-prod-manual-3"}},
			{"configSetName=b-prod", []string{"b-prod-manual-1", "b-prod-manual-2"}},
			{"revision=2", []string{"a-prod-manual-2", "b-prod-manual-2"}},
			{"configSetName=a-prod,revision=3", []string{"a-prod-manual-3"}},
			{"configSetName=b-prod,revision=3", []string{}},
			{"revision!=1", []string{"a-prod-manual-2", "a-prod-manual-3", "b-prod-manual-2"}},
			{"metadata.name=b-prod-manual-1", []string{"b-prod-manual-1"}},
		} {
			opts := metav1.ListOptions{FieldSelector: c.selector, LabelSelector: manualLabel + "=true"}
			l, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, opts)
			if err != nil {
				t.Fatalf("list revisions %q: %v", c.selector, err)
			}
			if got := namesOf(itemPtrs(l.Items)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("revision field selector %q = %v, want %v", c.selector, got, c.want)
			}
			al, err := e.cs.ConfigV1alpha1().ConfigRevisions(ns).List(e.ctx, opts)
			if err != nil {
				t.Fatalf("v1alpha1 list revisions %q: %v", c.selector, err)
			}
			if got := namesOf(itemPtrs(al.Items)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("v1alpha1 revision field selector %q = %v, want %v", c.selector, got, c.want)
			}
		}
		// Without the test's own label: every result belongs to the selected ConfigSet.
		l, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "configSetName=b-prod"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, rev := range l.Items {
			if rev.ConfigSetName != "b-prod" {
				t.Errorf("configSetName=b-prod returned %s of %s", rev.Name, rev.ConfigSetName)
			}
		}
		if len(l.Items) < 2 {
			t.Errorf("configSetName=b-prod returned %d revisions, want at least 2", len(l.Items))
		}
		// The label the server sets on revisions selects the same history.
		bl, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{LabelSelector: "config.capstan.dev/configset=a-prod," + manualLabel + "=true"})
		if err != nil {
			t.Fatalf("list by configset label: %v", err)
		}
		if got := namesOf(itemPtrs(bl.Items)); !reflect.DeepEqual(got, []string{"a-prod-manual-1", "a-prod-manual-2", "a-prod-manual-3"}) {
			t.Errorf("revisions by configset label = %v", got)
		}
	})

	t.Run("field selector on a watch", func(t *testing.T) {
		l, err := sets.List(e.ctx, metav1.ListOptions{FieldSelector: "spec.immutable=true"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		w, err := sets.Watch(e.ctx, metav1.ListOptions{FieldSelector: "spec.immutable=true", ResourceVersion: l.ResourceVersion})
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		defer w.Stop()
		mutable := configSet("e-mutable", nil, nil)
		e.mustCreate(t, ns, mutable)
		frozen := configSet("f-frozen", nil, nil)
		frozen.Spec.Immutable = ptr.To(true)
		e.mustCreate(t, ns, frozen)
		ev := nextEvent(t, w)
		if obj, ok := ev.Object.(*v1beta1.ConfigSet); !ok || obj.Name != "f-frozen" {
			t.Fatalf("first event = %s %s, want ADDED f-frozen", ev.Type, describe(ev.Object))
		}
	})

}

// TestAPIUnsupportedFieldSelectors: unsupported field selectors are a bad request.
func TestAPIUnsupportedFieldSelectors(t *testing.T) {
	e := sharedEnv(t)
	const ns = "unsupported-selectors"
	sets := e.cs.ConfigV1beta1().ConfigSets(ns)

	checks := map[string]error{}
	_, checks["configsets spec.data.k"] = sets.List(e.ctx, metav1.ListOptions{FieldSelector: "spec.data.k=v"})
	_, checks["configsets status.currentRevision"] = sets.List(e.ctx, metav1.ListOptions{FieldSelector: "status.currentRevision=1"})
	_, checks["v1alpha1 configsets spec.entries"] = e.cs.ConfigV1alpha1().ConfigSets(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "spec.entries=x"})
	_, checks["configsets watch"] = sets.Watch(e.ctx, metav1.ListOptions{FieldSelector: "spec.revisionHistoryLimit=10"})
	_, checks["configrevisions author"] = e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "author=apitest"})
	_, checks["v1alpha1 configrevisions author"] = e.cs.ConfigV1alpha1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "author=apitest"})
	_, checks["configpolicies spec.keyPattern"] = e.cs.ConfigV1beta1().ConfigPolicies().List(e.ctx, metav1.ListOptions{FieldSelector: "spec.keyPattern=x"})
	_, checks["configpolicies spec.immutable"] = e.cs.ConfigV1beta1().ConfigPolicies().List(e.ctx, metav1.ListOptions{FieldSelector: "spec.immutable=true"})
	keys := make([]string, 0, len(checks))
	for k := range checks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := checks[k]; !apierrors.IsBadRequest(err) {
			t.Errorf("%s: err = %v, want 400 BadRequest", k, err)
		}
	}
}

// TestAPISelectorsOnConfigPolicies: configpolicies by field.
func TestAPISelectorsOnConfigPolicies(t *testing.T) {
	// A server of its own: the test selects among every ConfigPolicy by field
	// and expects only its own.
	e := startEnv(t)

	never := &metav1.LabelSelector{MatchLabels: map[string]string{"apitest-never": "selected"}}
	for _, c := range []struct {
		name        string
		enforcement v1beta1.EnforcementAction
	}{{"p-deny", v1beta1.EnforcementDeny}, {"p-warn-1", v1beta1.EnforcementWarn}, {"p-default", ""}, {"p-warn-2", v1beta1.EnforcementWarn}} {
		if _, err := e.cs.ConfigV1beta1().ConfigPolicies().Create(e.ctx, &v1beta1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: c.name, Labels: map[string]string{"team": "a"}},
			Spec:       v1beta1.ConfigPolicySpec{Selector: never, Enforcement: c.enforcement},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create policy %s: %v", c.name, err)
		}
	}
	for _, c := range []struct {
		selector string
		want     []string
	}{
		{"spec.enforcement=Warn", []string{"p-warn-1", "p-warn-2"}},
		{"spec.enforcement=Deny", []string{"p-default", "p-deny"}},
		{"spec.enforcement!=Warn", []string{"p-default", "p-deny"}},
		{"metadata.name=p-warn-2", []string{"p-warn-2"}},
	} {
		l, err := e.cs.ConfigV1beta1().ConfigPolicies().List(e.ctx, metav1.ListOptions{FieldSelector: c.selector})
		if err != nil {
			t.Fatalf("list policies %q: %v", c.selector, err)
		}
		if got := namesOf(itemPtrs(l.Items)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("policy field selector %q = %v, want %v", c.selector, got, c.want)
		}
		al, err := e.cs.ConfigV1alpha1().ConfigPolicies().List(e.ctx, metav1.ListOptions{FieldSelector: c.selector})
		if err != nil {
			t.Fatalf("v1alpha1 list policies %q: %v", c.selector, err)
		}
		if got := namesOf(itemPtrs(al.Items)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("v1alpha1 policy field selector %q = %v, want %v", c.selector, got, c.want)
		}
	}
	l, err := e.cs.ConfigV1beta1().ConfigPolicies().List(e.ctx, metav1.ListOptions{LabelSelector: "team=a", FieldSelector: "spec.enforcement=Warn"})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got := namesOf(itemPtrs(l.Items)); !reflect.DeepEqual(got, []string{"p-warn-1", "p-warn-2"}) {
		t.Errorf("team=a and Warn = %v", got)
	}
}
