package storage

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	genericregistrytest "k8s.io/apiserver/pkg/registry/generic/testing"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

func newStorage(t *testing.T, cached bool) ConfigPolicyStorage {
	t.Helper()
	s, err := NewStorage(registrytest.Scheme, registrytest.NewRESTOptionsGetter(t, cached))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ConfigPolicy.Store.DestroyFunc)
	registrytest.WaitReady(t, s.ConfigPolicy.Store)
	return s
}

func validConfigPolicy() *config.ConfigPolicy {
	return &config.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "foo", Labels: map[string]string{"app": "foo"}},
		Spec: config.ConfigPolicySpec{
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
			RequiredKeys: []string{"LOG_LEVEL"},
			KeyPattern:   "^[A-Z_]+$",
			Rules:        []config.ConfigPolicyRule{{Expression: "size(data) <= 50", Message: "at most 50 plain entries"}},
			Enforcement:  config.EnforcementDeny,
		},
	}
}

func forEachStorage(t *testing.T, f func(t *testing.T, s ConfigPolicyStorage)) {
	for _, cached := range []bool{false, true} {
		name := "etcd"
		if cached {
			name = "cacher"
		}
		t.Run(name, func(t *testing.T) { f(t, newStorage(t, cached)) })
	}
}

func TestCreate(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		test := genericregistrytest.New(t, s.ConfigPolicy.Store).ClusterScope()
		badPattern := validConfigPolicy()
		badPattern.Spec.KeyPattern = "("
		badRule := validConfigPolicy()
		badRule.Spec.Rules = []config.ConfigPolicyRule{{Expression: "data.exists(k,"}}
		notBool := validConfigPolicy()
		notBool.Spec.Rules = []config.ConfigPolicyRule{{Expression: "size(data)"}}
		emptyRule := validConfigPolicy()
		emptyRule.Spec.Rules = []config.ConfigPolicyRule{{Expression: "  "}}
		badEnforcement := validConfigPolicy()
		badEnforcement.Spec.Enforcement = "Maybe"
		badSelector := validConfigPolicy()
		badSelector.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}
		contradiction := validConfigPolicy()
		contradiction.Spec.ForbiddenKeys = []string{"LOG_LEVEL"}
		test.TestCreate(validConfigPolicy(), badPattern, badRule, notBool, emptyRule, badEnforcement, badSelector, contradiction)
	})
}

func TestUpdate(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		test := genericregistrytest.New(t, s.ConfigPolicy.Store).ClusterScope()
		test.TestUpdate(validConfigPolicy(),
			func(obj runtime.Object) runtime.Object {
				p := obj.(*config.ConfigPolicy)
				p.Spec.Enforcement = config.EnforcementWarn
				p.Spec.Rules = append(p.Spec.Rules, config.ConfigPolicyRule{Expression: `!("DEBUG" in data)`})
				return p
			},
			func(obj runtime.Object) runtime.Object {
				p := obj.(*config.ConfigPolicy)
				p.Spec.KeyPattern = "("
				return p
			},
			func(obj runtime.Object) runtime.Object {
				p := obj.(*config.ConfigPolicy)
				p.Spec.Rules = append(p.Spec.Rules, config.ConfigPolicyRule{Expression: "data.exists(k,"})
				return p
			},
			func(obj runtime.Object) runtime.Object {
				p := obj.(*config.ConfigPolicy)
				p.Spec.Enforcement = "Maybe"
				return p
			},
		)
	})
}

func TestDelete(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		genericregistrytest.New(t, s.ConfigPolicy.Store).ClusterScope().ReturnDeletedObject().TestDelete(validConfigPolicy())
	})
}

func TestGet(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		genericregistrytest.New(t, s.ConfigPolicy.Store).ClusterScope().TestGet(validConfigPolicy())
	})
}

func TestList(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		genericregistrytest.New(t, s.ConfigPolicy.Store).ClusterScope().TestList(validConfigPolicy())
	})
}

func TestWatch(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		genericregistrytest.New(t, s.ConfigPolicy.Store).ClusterScope().TestWatch(
			validConfigPolicy(),
			[]labels.Set{{"app": "foo"}},
			[]labels.Set{{"app": "bar"}},
			[]fields.Set{
				{"metadata.name": "foo"},
				{config.ConfigPolicyEnforcementField: "Deny"},
			},
			[]fields.Set{
				{"metadata.name": "bar"},
				{config.ConfigPolicyEnforcementField: "Warn"},
			},
		)
	})
}

func TestCreateClearsStatus(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		ctx := genericregistrytest.NewClusterScopeContext(s.ConfigPolicy.Store)
		p := validConfigPolicy()
		p.Status.ObservedGeneration = 7
		p.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Forged", LastTransitionTime: metav1.Now()}}
		created, err := s.ConfigPolicy.Create(ctx, p, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := created.(*config.ConfigPolicy)
		if got.Generation != 1 || got.Status.ObservedGeneration != 0 || len(got.Status.Conditions) != 0 {
			t.Errorf("generation = %d, status = %+v; want 1 and an empty status", got.Generation, got.Status)
		}
	})
}

func TestMainUpdateKeepsStatus(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		ctx := genericregistrytest.NewClusterScopeContext(s.ConfigPolicy.Store)
		created, err := s.ConfigPolicy.Create(ctx, validConfigPolicy(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		withStatus := created.(*config.ConfigPolicy).DeepCopy()
		withStatus.Status.ObservedGeneration = 1
		withStatus.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Compiled", LastTransitionTime: metav1.Now()}}
		stored, _, err := s.Status.Update(ctx, withStatus.Name, rest.DefaultUpdatedObjectInfo(withStatus), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		labelOnly := stored.(*config.ConfigPolicy).DeepCopy()
		labelOnly.Labels["tier"] = "x"
		labelOnly.Status = config.ConfigPolicyStatus{}
		got, _, err := s.ConfigPolicy.Update(ctx, labelOnly.Name, rest.DefaultUpdatedObjectInfo(labelOnly), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := got.(*config.ConfigPolicy)
		if p.Generation != 1 || p.Labels["tier"] != "x" {
			t.Errorf("label update: generation = %d, labels = %v; want 1 and the new label", p.Generation, p.Labels)
		}
		if p.Status.ObservedGeneration != 1 || len(p.Status.Conditions) != 1 {
			t.Errorf("the main endpoint wrote the status: %+v", p.Status)
		}

		specChange := p.DeepCopy()
		specChange.Spec.Enforcement = config.EnforcementWarn
		got, _, err = s.ConfigPolicy.Update(ctx, specChange.Name, rest.DefaultUpdatedObjectInfo(specChange), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p := got.(*config.ConfigPolicy); p.Generation != 2 || p.Spec.Enforcement != config.EnforcementWarn {
			t.Errorf("spec update: generation = %d, enforcement = %s; want 2 and Warn", p.Generation, p.Spec.Enforcement)
		}
	})
}

func TestStatusUpdateKeepsSpec(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigPolicyStorage) {
		ctx := genericregistrytest.NewClusterScopeContext(s.ConfigPolicy.Store)
		created, err := s.ConfigPolicy.Create(ctx, validConfigPolicy(), nil, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		update := created.(*config.ConfigPolicy).DeepCopy()
		update.Spec.Enforcement = config.EnforcementWarn
		update.Spec.Rules = nil
		update.Labels = map[string]string{"app": "changed-through-status"}
		update.Status.ObservedGeneration = 1
		update.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Compiled", Message: "1 rule", LastTransitionTime: metav1.Now()}}
		got, _, err := s.Status.Update(ctx, update.Name, rest.DefaultUpdatedObjectInfo(update), nil, nil, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := got.(*config.ConfigPolicy)
		if p.Spec.Enforcement != config.EnforcementDeny || len(p.Spec.Rules) != 1 {
			t.Errorf("status update changed spec: %+v", p.Spec)
		}
		if p.Labels["app"] != "foo" {
			t.Errorf("status update changed labels: %v", p.Labels)
		}
		if p.Generation != 1 {
			t.Errorf("generation = %d, want 1", p.Generation)
		}
		if p.Status.ObservedGeneration != 1 || len(p.Status.Conditions) != 1 || p.Status.Conditions[0].Reason != "Compiled" {
			t.Errorf("status update lost the status: %+v", p.Status)
		}

		// An invalid status is refused.
		bad := p.DeepCopy()
		bad.Status.ObservedGeneration = -1
		if _, _, err := s.Status.Update(ctx, bad.Name, rest.DefaultUpdatedObjectInfo(bad), nil, nil, false, &metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("negative observedGeneration through /status: got %v, want Invalid", err)
		}

		// /status never creates.
		missing := validConfigPolicy()
		missing.Name = "missing"
		if _, _, err := s.Status.Update(ctx, missing.Name, rest.DefaultUpdatedObjectInfo(missing), rest.ValidateAllObjectFunc, nil, true, &metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("status update of a missing object: got %v, want NotFound", err)
		}
		if _, err := s.ConfigPolicy.Get(ctx, missing.Name, &metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the status update created the object: %v", err)
		}
	})
}

func TestShortNamesAndCategories(t *testing.T) {
	s := newStorage(t, false)
	if s.ConfigPolicy.NamespaceScoped() {
		t.Error("ConfigPolicies must be cluster-scoped")
	}
	if got := s.ConfigPolicy.ShortNames(); len(got) != 1 || got[0] != "cfgpol" {
		t.Errorf("short names = %v", got)
	}
	if got := s.ConfigPolicy.Categories(); len(got) != 1 || got[0] != "capstan" {
		t.Errorf("categories = %v", got)
	}

	// Each endpoint reports the reset fields of its own strategy.
	for _, v := range []fieldpath.APIVersion{"config.capstan.dev/v1beta1", "config.capstan.dev/v1alpha1"} {
		main := s.ConfigPolicy.GetResetFields()[v]
		if main == nil || !main.Has(fieldpath.MakePathOrDie("status")) || main.Has(fieldpath.MakePathOrDie("spec")) {
			t.Errorf("%s: main reset fields = %v, want status only", v, main)
		}
		status := s.Status.GetResetFields()[v]
		if status == nil || !status.Has(fieldpath.MakePathOrDie("spec")) || status.Has(fieldpath.MakePathOrDie("status")) {
			t.Errorf("%s: status reset fields = %v, want spec and labels", v, status)
		}
	}
}
