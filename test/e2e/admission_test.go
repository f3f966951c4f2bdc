package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	configclient "capstan.dev/capstan/pkg/generated/clientset/versioned/typed/config/v1beta1"
)

// admissionPropagation bounds how long Capstan's informers take to see a new
// policy, binding or namespace label and its admission chain to apply it.
const admissionPropagation = 30 * time.Second

// createUntilRefused creates ConfigSets named prefix-1, prefix-2, … with
// data until one is refused, deleting the ones admitted meanwhile: a policy
// takes effect only once Capstan's informers have it. It returns the error.
func createUntilRefused(t *testing.T, sets configclient.ConfigSetInterface, prefix string, data map[string]string) error {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(admissionPropagation)
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		_, err := sets.Create(ctx, &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       configv1beta1.ConfigSetSpec{Data: data},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if err := sets.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still admitted after %s", prefix, admissionPropagation)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestNamespaceLifecycle checks Capstan's NamespaceLifecycle admission, fed by
// kube-apiserver's namespaces: no ConfigSet in a namespace that does not exist
// or is being deleted.
func TestNamespaceLifecycle(t *testing.T) {
	client, core := adminClients(t)
	ctx := t.Context()

	t.Run("a namespace that does not exist", func(t *testing.T) {
		_, err := client.ConfigV1beta1().ConfigSets("e2e-no-such-namespace").Create(ctx, &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "orphan"},
			Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
		}, metav1.CreateOptions{})
		if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `namespaces "e2e-no-such-namespace" not found`) {
			t.Fatalf("create in a missing namespace: %v, want 404 namespaces \"e2e-no-such-namespace\" not found", err)
		}
	})

	t.Run("a terminating namespace", func(t *testing.T) {
		const ns = "e2e-terminating"
		createNamespace(t, ns, nil)
		sets := client.ConfigV1beta1().ConfigSets(ns)
		// A finalizer holds the namespace Terminating while the namespace
		// controller deletes its content; the test lets go at the end, and
		// the namespace then goes away with its ConfigSet.
		_, err := sets.Create(ctx, &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "before", Finalizers: []string{"e2e.capstan.dev/hold"}},
			Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := core.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := core.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil || got.Status.Phase != corev1.NamespaceTerminating {
			t.Fatalf("namespace after delete: %+v, %v; want phase Terminating", got, err)
		}
		err = createUntilRefused(t, sets, "after", map[string]string{"A": "1"})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "unable to create new content in namespace e2e-terminating because it is being terminated") {
			t.Fatalf("create in a terminating namespace: %v, want 403 … because it is being terminated", err)
		}
		// Changing what is already there stays possible, as for built-in kinds.
		if _, err := sets.Patch(ctx, "before", types.MergePatchType, []byte(`{"spec":{"data":{"A":"2"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatalf("update in a terminating namespace: %v", err)
		}

		if _, err := sets.Patch(ctx, "before", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "the namespace deleted", func() error {
			_, err := core.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("namespace still there: %v", err)
		})
	})
}

// configSetRules match ConfigSet creates and updates in every version.
var configSetRules = admissionv1.MatchResources{
	ResourceRules: []admissionv1.NamedRuleWithOperations{{
		RuleWithOperations: admissionv1.RuleWithOperations{
			Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
			Rule: admissionv1.Rule{
				APIGroups:   []string{"config.capstan.dev"},
				APIVersions: []string{"*"},
				Resources:   []string{"configsets"},
			},
		},
	}},
}

// TestValidatingAdmissionPolicy checks that a ValidatingAdmissionPolicy of
// the cluster, bound by namespace label, is enforced on ConfigSets.
func TestValidatingAdmissionPolicy(t *testing.T) {
	const ns, otherNS = "e2e-vap", "e2e-vap-unbound"
	createNamespace(t, ns, map[string]string{"capstan-e2e/vap": "enforced"})
	createNamespace(t, otherNS, nil)
	client, core := adminClients(t)
	ctx := t.Context()
	policies := core.AdmissionregistrationV1()
	_, err := policies.ValidatingAdmissionPolicies().Create(ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-no-forbidden-key"},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy:    ptr.To(admissionv1.Fail),
			MatchConstraints: configSetRules.DeepCopy(),
			Validations: []admissionv1.Validation{{
				Expression: "!has(object.spec.data) || !('forbidden' in object.spec.data)",
				Message:    "spec.data must not have the key 'forbidden'",
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = policies.ValidatingAdmissionPolicyBindings().Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-no-forbidden-key"},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        "e2e-no-forbidden-key",
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"capstan-e2e/vap": "enforced"}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sets := client.ConfigV1beta1().ConfigSets(ns)

	err = createUntilRefused(t, sets, "bad", map[string]string{"forbidden": "x"})
	want := "ValidatingAdmissionPolicy 'e2e-no-forbidden-key' with binding 'e2e-no-forbidden-key' denied request: spec.data must not have the key 'forbidden'"
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("create with the forbidden key: %v, want 422 %s", err, want)
	}
	good, err := sets.Create(ctx, &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "good"},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"allowed": "x"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create without the forbidden key: %v", err)
	}
	good.Spec.Data["forbidden"] = "x"
	if _, err := sets.Update(ctx, good, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("update adding the forbidden key: %v, want 422 %s", err, want)
	}
	if _, err := client.ConfigV1beta1().ConfigSets(otherNS).Create(ctx, &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "unbound"},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"forbidden": "x"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create in a namespace the binding does not select: %v", err)
	}
}

// TestMutatingAdmissionPolicy checks that a MutatingAdmissionPolicy of the
// cluster (GA in 1.36) mutates ConfigSets Capstan stores.
func TestMutatingAdmissionPolicy(t *testing.T) {
	const ns = "e2e-map"
	createNamespace(t, ns, map[string]string{"capstan-e2e/map": "enforced"})
	client, core := adminClients(t)
	ctx := t.Context()
	policies := core.AdmissionregistrationV1()
	constraints := configSetRules.DeepCopy()
	constraints.ResourceRules[0].Operations = []admissionv1.OperationType{admissionv1.Create}
	_, err := policies.MutatingAdmissionPolicies().Create(ctx, &admissionv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-label-configsets"},
		Spec: admissionv1.MutatingAdmissionPolicySpec{
			FailurePolicy:      ptr.To(admissionv1.Fail),
			ReinvocationPolicy: admissionv1.NeverReinvocationPolicy,
			MatchConstraints:   constraints,
			Mutations: []admissionv1.Mutation{{
				PatchType: admissionv1.PatchTypeApplyConfiguration,
				ApplyConfiguration: &admissionv1.ApplyConfiguration{
					Expression: `Object{metadata: Object.metadata{labels: {"capstan-e2e/mutated": "true"}}}`,
				},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = policies.MutatingAdmissionPolicyBindings().Create(ctx, &admissionv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-label-configsets"},
		Spec: admissionv1.MutatingAdmissionPolicyBindingSpec{
			PolicyName: "e2e-label-configsets",
			MatchResources: &admissionv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"capstan-e2e/map": "enforced"}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sets := client.ConfigV1beta1().ConfigSets(ns)
	deadline := time.Now().Add(admissionPropagation)
	for i := 1; ; i++ {
		cs, err := sets.Create(ctx, &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("mutated-%d", i)},
			Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
		}, metav1.CreateOptions{})
		switch {
		case apierrors.IsServiceUnavailable(err) && strings.Contains(err.Error(), "Resource kind config.capstan.dev/v1beta1, Kind=ConfigSet not found"):
			// The policy plugin reads ConfigSet's schema from the cluster's
			// OpenAPI, which it polls every 5 seconds; until then it fails
			// closed (failurePolicy Fail).
		case err != nil:
			t.Fatal(err)
		case cs.Labels["capstan-e2e/mutated"] == "true":
			stored, err := sets.Get(ctx, cs.Name, metav1.GetOptions{})
			if err != nil || stored.Labels["capstan-e2e/mutated"] != "true" {
				t.Fatalf("stored object: %+v, %v; want the label the policy added", stored, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ConfigSets are still not created with the label after %s: %v", admissionPropagation, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestConfigPolicyNamespaceSelector checks that a ConfigPolicy's
// namespaceSelector matches the labels kube-apiserver has on namespaces:
// Deny where they match, nothing elsewhere, Deny once a namespace is
// relabelled, and Warn as a Warning header through the aggregator.
func TestConfigPolicyNamespaceSelector(t *testing.T) {
	const prod, dev, staging = "e2e-policy-prod", "e2e-policy-dev", "e2e-policy-staging"
	createNamespace(t, prod, map[string]string{"capstan-e2e/env": "prod"})
	createNamespace(t, dev, map[string]string{"capstan-e2e/env": "dev"})
	createNamespace(t, staging, map[string]string{"capstan-e2e/env": "staging"})
	client, core := adminClients(t)
	ctx := t.Context()
	if _, err := client.ConfigV1beta1().ConfigPolicies().Create(ctx, &configv1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-prod-no-debug"},
		Spec: configv1beta1.ConfigPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"capstan-e2e/env": "prod"}},
			ForbiddenKeys:     []string{"DEBUG"},
			Enforcement:       configv1beta1.EnforcementDeny,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	debug := map[string]string{"DEBUG": "true"}

	t.Run("denied in the namespace it selects", func(t *testing.T) {
		err := createUntilRefused(t, client.ConfigV1beta1().ConfigSets(prod), "debug", debug)
		requireForbidden(t, err, `configpolicy "e2e-prod-no-debug"`)
		requireContains(t, err.Error(), "DEBUG")
	})

	t.Run("admitted in another namespace", func(t *testing.T) {
		if _, err := client.ConfigV1beta1().ConfigSets(dev).Create(ctx, &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "debug"},
			Spec:       configv1beta1.ConfigSetSpec{Data: debug},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create in %s: %v", dev, err)
		}
	})

	t.Run("denied once the namespace is relabelled", func(t *testing.T) {
		if _, err := core.CoreV1().Namespaces().Patch(ctx, dev, types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"capstan-e2e/env":"prod"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		err := createUntilRefused(t, client.ConfigV1beta1().ConfigSets(dev), "relabelled", debug)
		requireForbidden(t, err, `configpolicy "e2e-prod-no-debug"`)
	})

	t.Run("Warn reaches kubectl as a warning", func(t *testing.T) {
		if _, err := client.ConfigV1beta1().ConfigPolicies().Create(ctx, &configv1beta1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-staging-owner"},
			Spec: configv1beta1.ConfigPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"capstan-e2e/env": "staging"}},
				RequiredKeys:      []string{"OWNER"},
				Enforcement:       configv1beta1.EnforcementWarn,
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		k := newKubectl(t, testCluster.AdminKubeconfig)
		ctx, cancel := context.WithTimeout(ctx, admissionPropagation)
		defer cancel()
		for i := 1; ; i++ {
			name := fmt.Sprintf("ownerless-%d", i)
			stdout, stderr, err := k.Try(t, configSetYAML(staging, name, map[string]string{"A": "1"}), "create", "-f", "-")
			if err != nil {
				t.Fatalf("a Warn policy refused the create: %v\n%s", err, stderr)
			}
			requireContains(t, stdout, "configset.config.capstan.dev/"+name+" created")
			if strings.Contains(stderr, `Warning: configpolicy "e2e-staging-owner"`) {
				requireContains(t, stderr, "OWNER")
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no warning from the Warn policy within %s; last stderr: %q", admissionPropagation, stderr)
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
}
