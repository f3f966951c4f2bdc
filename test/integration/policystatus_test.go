package integration

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// waitPolicyReady polls until the policy's Ready condition describes its current
// generation, and returns that condition.
func waitPolicyReady(t *testing.T, c versioned.Interface, name string) (*v1beta1.ConfigPolicy, *metav1.Condition) {
	t.Helper()
	var p *v1beta1.ConfigPolicy
	var cond *metav1.Condition
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if p, err = c.ConfigV1beta1().ConfigPolicies().Get(ctx, name, metav1.GetOptions{}); err != nil {
			return false, err
		}
		cond = meta.FindStatusCondition(p.Status.Conditions, "Ready")
		return p.Status.ObservedGeneration == p.Generation && cond != nil && cond.ObservedGeneration == p.Generation, nil
	})
	if err != nil {
		t.Fatalf("policy %s never reported Ready for its generation: %v (status %+v)", name, err, p.Status)
	}
	return p, cond
}

func TestPolicyStatusReportsReady(t *testing.T) {
	// A server of its own: the test its policies select every ConfigSet of the cluster.
	ts := capstantesting.StartTestServer(t)
	c := versioned.NewForConfigOrDie(ts.ClientConfig)
	ctx := context.Background()

	_, err := c.ConfigV1beta1().ConfigPolicies().Create(ctx, &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "ps-keys"},
		Spec:       v1beta1.ConfigPolicySpec{RequiredKeys: []string{"LOG_LEVEL"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, cond := waitPolicyReady(t, c, "ps-keys")
	if cond.Status != metav1.ConditionTrue || cond.Reason != "Enforced" || p.Status.ObservedGeneration != 1 {
		t.Errorf("Ready = %+v, observedGeneration %d; want True/Enforced at generation 1", cond, p.Status.ObservedGeneration)
	}

	// A spec change is observed at the new generation.
	p.Spec.Enforcement = v1beta1.EnforcementWarn
	if _, err := c.ConfigV1beta1().ConfigPolicies().Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, cond = waitPolicyReady(t, c, "ps-keys")
	if p.Generation != 2 || cond.Status != metav1.ConditionTrue {
		t.Errorf("after the update: generation %d, Ready %+v; want generation 2 and True", p.Generation, cond)
	}

	// Local mode has no namespaces: a namespaceSelector matches nothing, and the status says why.
	_, err = c.ConfigV1beta1().ConfigPolicies().Create(ctx, &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "ps-namespaces"},
		Spec: v1beta1.ConfigPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
			ForbiddenKeys:     []string{"DEBUG"},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, cond = waitPolicyReady(t, c, "ps-namespaces")
	if cond.Status != metav1.ConditionFalse || cond.Reason != "NamespaceSelectorUnsupported" {
		t.Errorf("Ready = %+v, want False/NamespaceSelectorUnsupported", cond)
	}
	// And it indeed denies nothing.
	if _, err := c.ConfigV1beta1().ConfigSets("prod").Create(ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "debug"},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"DEBUG": "1", "LOG_LEVEL": "info"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Errorf("a ConfigSet the namespaceSelector policy would deny in a cluster was refused in local mode: %v", err)
	}
}
