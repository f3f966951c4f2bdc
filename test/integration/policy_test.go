package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	configac "capstan.dev/capstan/pkg/generated/applyconfiguration/config/v1beta1"
)

// policyLabel is the ConfigSet label every policy of these tests selects,
// each with a value of its own, so that a policy never gets in the way of
// another subtest's writes.
const policyLabel = "hi-policy"

// newPolicy returns a ConfigPolicy selecting the ConfigSets labelled
// policyLabel=selects (unless spec has a selector of its own).
func newPolicy(name, selects string, spec v1beta1.ConfigPolicySpec) *v1beta1.ConfigPolicy {
	if spec.Selector == nil {
		spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{policyLabel: selects}}
	}
	return &v1beta1.ConfigPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// labelled returns a ConfigSet labelled for the policies selecting selects.
func labelled(name, selects string, data map[string]string, secretData map[string][]byte) *v1beta1.ConfigSet {
	cs := configSet(name, data, secretData)
	cs.Labels = map[string]string{policyLabel: selects}
	return cs
}

// forbiddenMessage is the message of the 403 a ConfigPolicy gives a write of the
// ConfigSet name.
func forbiddenMessage(name, policy, rule string) string {
	return fmt.Sprintf("configsets.config.capstan.dev %q is forbidden: denied by configpolicy %q: %s", name, policy, rule)
}

// warningMessage is the warning a Warn ConfigPolicy adds to a write.
func warningMessage(policy, rule string) string {
	return fmt.Sprintf("configpolicy %q: %s", policy, rule)
}

// mustCreatePolicy creates a ConfigPolicy or fails the test.
func (e *env) mustCreatePolicy(t *testing.T, p *v1beta1.ConfigPolicy) {
	t.Helper()
	if _, err := e.cs.ConfigV1beta1().ConfigPolicies().Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ConfigPolicy %s: %v", p.Name, err)
	}
}

// mustChangePolicy applies change to the stored policy and updates it,
// again on conflict (the server writes policy status too).
func (e *env) mustChangePolicy(t *testing.T, name string, change func(*v1beta1.ConfigPolicySpec)) {
	t.Helper()
	client := e.cs.ConfigV1beta1().ConfigPolicies()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := client.Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(&p.Spec)
		_, err = client.Update(e.ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("updating ConfigPolicy %s: %v", name, err)
	}
}

// dryCreate creates probe with dry run and returns the error and warnings.
func (e *env) dryCreate(ns string, probe *v1beta1.ConfigSet) ([]string, error) {
	e.warnings.take()
	_, err := e.cs.ConfigV1beta1().ConfigSets(ns).Create(e.ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return e.warnings.take(), err
}

// waitDenied waits until a dry-run create of probe is denied by the
// admission plugin, that is until its informer has the policy, and returns
// how long that took.
func (e *env) waitDenied(t *testing.T, ns string, probe *v1beta1.ConfigSet) time.Duration {
	t.Helper()
	start := time.Now()
	e.poll(t, policyTimeout, "a dry-run create of "+probe.Name+" to be denied", func() (bool, error) {
		_, err := e.dryCreate(ns, probe)
		if err != nil && !apierrors.IsForbidden(err) {
			return false, err
		}
		return apierrors.IsForbidden(err), nil
	})
	return time.Since(start)
}

// waitAllowed waits until a dry-run create of probe succeeds without any
// warning, and returns how long that took.
func (e *env) waitAllowed(t *testing.T, ns string, probe *v1beta1.ConfigSet) time.Duration {
	t.Helper()
	start := time.Now()
	e.poll(t, policyTimeout, "a dry-run create of "+probe.Name+" to be allowed", func() (bool, error) {
		warnings, err := e.dryCreate(ns, probe)
		if err != nil && !apierrors.IsForbidden(err) {
			return false, err
		}
		return err == nil && len(warnings) == 0, nil
	})
	return time.Since(start)
}

// waitWarned waits until a dry-run create of probe succeeds with a warning
// from policy.
func (e *env) waitWarned(t *testing.T, ns string, probe *v1beta1.ConfigSet, policy string) {
	t.Helper()
	e.poll(t, policyTimeout, "a dry-run create of "+probe.Name+" to be warned by "+policy, func() (bool, error) {
		warnings, err := e.dryCreate(ns, probe)
		if err != nil && !apierrors.IsForbidden(err) {
			return false, err
		}
		return err == nil && slices.ContainsFunc(warnings, func(w string) bool {
			return strings.HasPrefix(w, fmt.Sprintf("configpolicy %q: ", policy))
		}), nil
	})
}

// requireDenied fails the test unless err is the 403 of policy's rule for
// the ConfigSet name.
func requireDenied(t *testing.T, err error, name, policy, rule string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("err = %v, want 403 Forbidden by %s", err, policy)
		return
	}
	if want := forbiddenMessage(name, policy, rule); err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}

// requireAbsent fails the test unless the ConfigSet does not exist and has
// no revisions.
func (e *env) requireAbsent(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := e.cs.ConfigV1beta1().ConfigSets(ns).Get(e.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get %s after a denied create: err = %v, want NotFound", name, err)
	}
	if revs := e.listRevisions(t, ns, name); len(revs) != 0 {
		t.Errorf("denied create of %s left revisions %v", name, revisionNumbers(revs))
	}
}

// TestPolicyRuleKinds checks every kind of rule, first with Deny (a violating
// create fails with a 403 that names the policy and the rule, a compliant one
// succeeds) and then, for the same policy, with Warn (the violating create
// succeeds with a warning that names them).
func TestPolicyRuleKinds(t *testing.T) {
	e := sharedEnv(t)
	const ns = "hi-policy-kinds"

	immutable := func(cs *v1beta1.ConfigSet) *v1beta1.ConfigSet {
		cs.Spec.Immutable = ptr.To(true)
		return cs
	}
	cases := []struct {
		kind       string
		spec       v1beta1.ConfigPolicySpec
		violating  func(name string) *v1beta1.ConfigSet
		compliant  func(name string) *v1beta1.ConfigSet
		brokenRule string
	}{
		{
			kind: "required-keys",
			spec: v1beta1.ConfigPolicySpec{RequiredKeys: []string{"owner"}},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "required-keys", map[string]string{"a": "1"}, nil)
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "required-keys", map[string]string{"a": "1"}, map[string][]byte{"owner": []byte("team-a")})
			},
			brokenRule: `requiredKeys: missing "owner"`,
		},
		{
			kind: "forbidden-keys",
			spec: v1beta1.ConfigPolicySpec{ForbiddenKeys: []string{"password"}},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "forbidden-keys", map[string]string{"a": "1"}, map[string][]byte{"password": []byte("hunter2")})
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "forbidden-keys", map[string]string{"a": "1"}, map[string][]byte{"token": []byte("t")})
			},
			brokenRule: `forbiddenKeys: not allowed: "password"`,
		},
		{
			kind: "key-pattern",
			spec: v1beta1.ConfigPolicySpec{KeyPattern: "^[a-z][a-z_]*$"},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "key-pattern", map[string]string{"log_level": "1", "Log-Level": "2"}, nil)
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "key-pattern", map[string]string{"log_level": "1"}, nil)
			},
			brokenRule: `keyPattern: keys must match "^[a-z][a-z_]*$": "Log-Level"`,
		},
		{
			kind: "max-keys",
			spec: v1beta1.ConfigPolicySpec{MaxKeys: ptr.To[int32](2)},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "max-keys", map[string]string{"a": "1", "b": "2"}, map[string][]byte{"c": []byte("3")})
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "max-keys", map[string]string{"a": "1"}, map[string][]byte{"c": []byte("3")})
			},
			brokenRule: "maxKeys: 3 entries, at most 2 allowed",
		},
		{
			kind: "max-bytes",
			spec: v1beta1.ConfigPolicySpec{MaxBytes: ptr.To[int64](10)},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "max-bytes", map[string]string{"abc": "1234"}, map[string][]byte{"d": []byte("xyz")})
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "max-bytes", map[string]string{"abc": "123"}, map[string][]byte{"d": []byte("xyz")})
			},
			brokenRule: "maxBytes: entries take 11 bytes, at most 10 allowed",
		},
		{
			kind: "require-immutable",
			spec: v1beta1.ConfigPolicySpec{RequireImmutable: true},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "require-immutable", map[string]string{"a": "1"}, nil)
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return immutable(labelled(n, "require-immutable", map[string]string{"a": "1"}, nil))
			},
			brokenRule: "requireImmutable: spec.immutable must be true",
		},
		{
			kind: "cel-data",
			spec: v1beta1.ConfigPolicySpec{Rules: []v1beta1.ConfigPolicyRule{
				{Expression: "size(data) < 10", Message: "not reported"},
				{Expression: "'env' in data && data.env in ['prod', 'staging']", Message: "env must be prod or staging"},
			}},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "cel-data", map[string]string{"env": "dev"}, nil)
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "cel-data", map[string]string{"env": "prod"}, nil)
			},
			brokenRule: "rules[1]: env must be prod or staging",
		},
		{
			kind: "cel-secret-data",
			spec: v1beta1.ConfigPolicySpec{Rules: []v1beta1.ConfigPolicyRule{
				{Expression: "secretData.all(k, size(secretData[k]) >= 8)"},
			}},
			violating: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "cel-secret-data", map[string]string{"plain": "x"}, map[string][]byte{"token": []byte("short")})
			},
			compliant: func(n string) *v1beta1.ConfigSet {
				return labelled(n, "cel-secret-data", map[string]string{"plain": "x"}, map[string][]byte{"token": []byte("long enough")})
			},
			brokenRule: `rules[0]: "secretData.all(k, size(secretData[k]) >= 8)" is false`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			client := e.cs.ConfigV1beta1().ConfigSets(ns)
			policy := "hi-" + tc.kind
			spec := tc.spec
			spec.Enforcement = v1beta1.EnforcementDeny
			e.mustCreatePolicy(t, newPolicy(policy, tc.kind, spec))
			waited := e.waitDenied(t, ns, tc.violating(tc.kind+"-probe"))
			t.Logf("the policy was enforced %v after it was created", waited.Round(time.Millisecond))

			// Deny.
			e.warnings.take()
			_, err := client.Create(e.ctx, tc.violating(tc.kind+"-denied"), metav1.CreateOptions{})
			requireDenied(t, err, tc.kind+"-denied", policy, tc.brokenRule)
			e.requireAbsent(t, ns, tc.kind+"-denied")
			if _, err := client.Create(e.ctx, tc.compliant(tc.kind+"-compliant"), metav1.CreateOptions{}); err != nil {
				t.Errorf("compliant create under Deny: %v", err)
			}
			if w := e.warnings.take(); len(w) != 0 {
				t.Errorf("warnings under Deny: %q, want none", w)
			}

			// Warn: the same policy lets the violating create through.
			e.mustChangePolicy(t, policy, func(s *v1beta1.ConfigPolicySpec) { s.Enforcement = v1beta1.EnforcementWarn })
			e.waitWarned(t, ns, tc.violating(tc.kind+"-probe"), policy)
			e.warnings.take()
			got, err := client.Create(e.ctx, tc.violating(tc.kind+"-warned"), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("violating create under Warn: %v", err)
			}
			if w, want := e.warnings.take(), []string{warningMessage(policy, tc.brokenRule)}; !slices.Equal(w, want) {
				t.Errorf("warnings = %q, want %q", w, want)
			}
			if got.Status.CurrentRevision != 1 {
				t.Errorf("warned create: currentRevision %d, want 1", got.Status.CurrentRevision)
			}
			e.requireNumbers(t, ns, tc.kind+"-warned", []int64{1})
			if _, err := client.Create(e.ctx, tc.compliant(tc.kind+"-compliant-warn"), metav1.CreateOptions{}); err != nil {
				t.Errorf("compliant create under Warn: %v", err)
			}
			if w := e.warnings.take(); len(w) != 0 {
				t.Errorf("warnings for a compliant create under Warn: %q, want none", w)
			}

			if err := e.cs.ConfigV1beta1().ConfigPolicies().Delete(e.ctx, policy, metav1.DeleteOptions{}); err != nil {
				t.Fatalf("deleting the policy: %v", err)
			}
		})
	}
}

// TestPolicySelection checks that a policy applies only to the ConfigSets its
// selector picks, and that a namespaceSelector matches nothing in local mode.
func TestPolicySelection(t *testing.T) {
	e := sharedEnv(t)
	const ns = "hi-policy-selection"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	t.Run("selector", func(t *testing.T) {
		e.mustCreatePolicy(t, newPolicy("hi-production", "", v1beta1.ConfigPolicySpec{
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "production"}},
			RequiredKeys: []string{"owner"},
		}))
		production := func(name string) *v1beta1.ConfigSet {
			cs := configSet(name, map[string]string{"a": "1"}, nil)
			cs.Labels = map[string]string{"tier": "production"}
			return cs
		}
		e.waitDenied(t, ns, production("prod-probe"))
		_, err := client.Create(e.ctx, production("prod"), metav1.CreateOptions{})
		requireDenied(t, err, "prod", "hi-production", `requiredKeys: missing "owner"`)

		e.warnings.take()
		for name, labels := range map[string]map[string]string{
			"unlabelled": nil,
			"staging":    {"tier": "staging"},
			"other-key":  {"env": "production"},
		} {
			cs := configSet(name, map[string]string{"a": "1"}, nil)
			cs.Labels = labels
			if _, err := client.Create(e.ctx, cs, metav1.CreateOptions{}); err != nil {
				t.Errorf("create of %s (labels %v), which the policy does not select: %v", name, labels, err)
			}
		}
		if w := e.warnings.take(); len(w) != 0 {
			t.Errorf("warnings for unselected ConfigSets: %q", w)
		}

		// Labelling an existing ConfigSet into the selector is checked too.
		cur := e.mustGet(t, ns, "staging")
		cur.Labels = map[string]string{"tier": "production"}
		_, err = client.Update(e.ctx, cur, metav1.UpdateOptions{})
		requireDenied(t, err, "staging", "hi-production", `requiredKeys: missing "owner"`)
		if got := e.mustGet(t, ns, "staging"); got.Labels["tier"] != "staging" {
			t.Errorf("denied relabel was stored: labels %v", got.Labels)
		}
	})

	t.Run("namespaceSelector matches nothing in local mode", func(t *testing.T) {
		e.mustCreatePolicy(t, newPolicy("hi-ns-every", "ns-selector", v1beta1.ConfigPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{},
			RequiredKeys:      []string{"owner"},
		}))
		e.mustCreatePolicy(t, newPolicy("hi-ns-labelled", "ns-selector", v1beta1.ConfigPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			ForbiddenKeys:     []string{"password"},
		}))
		// A sentinel written after them: once the plugin enforces it, its
		// informer holds the two policies above as well.
		e.mustCreatePolicy(t, newPolicy("hi-ns-sentinel", "ns-selector", v1beta1.ConfigPolicySpec{
			ForbiddenKeys: []string{"sentinel"},
			Enforcement:   v1beta1.EnforcementWarn,
		}))
		e.waitWarned(t, ns, labelled("ns-probe", "ns-selector", map[string]string{"sentinel": "x"}, nil), "hi-ns-sentinel")

		e.warnings.take()
		if _, err := client.Create(e.ctx, labelled("ns-selected", "ns-selector", map[string]string{"password": "x"}, nil), metav1.CreateOptions{}); err != nil {
			t.Errorf("create breaking two namespaceSelector policies: %v, want it admitted (no namespace labels in local mode)", err)
		}
		if w := e.warnings.take(); len(w) != 0 {
			t.Errorf("warnings: %q, want none", w)
		}
	})
}

// TestPolicyWritePaths checks that a policy applies to every write that
// changes a ConfigSet: update, every kind of patch, server-side apply and
// rollback, including a rollback to a revision that breaks it; and that it
// leaves status updates and deletes alone.
func TestPolicyWritePaths(t *testing.T) {
	e := sharedEnv(t)
	const ns, policy, selects = "hi-policy-writes", "hi-no-forbidden", "writes"
	const rule = `forbiddenKeys: not allowed: "forbidden"`
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	// Revision 1 of "w" breaks the policy, which does not exist yet; revision 2 complies.
	e.mustCreate(t, ns, labelled("w", selects, map[string]string{"forbidden": "1"}, nil))
	e.mustUpdate(t, ns, "w", func(cs *v1beta1.ConfigSet) { cs.Spec.Data = map[string]string{"ok": "1"} })
	e.mustCreate(t, ns, labelled("old-violator", selects, map[string]string{"forbidden": "1"}, nil))

	e.mustCreatePolicy(t, newPolicy(policy, selects, v1beta1.ConfigPolicySpec{ForbiddenKeys: []string{"forbidden"}}))
	e.waitDenied(t, ns, labelled("probe", selects, map[string]string{"forbidden": "x"}, nil))
	before := e.mustGet(t, ns, "w")

	dryRun := []string{metav1.DryRunAll}
	writes := []struct {
		name  string
		write func() error
	}{
		{"update", func() error {
			cur := e.mustGet(t, ns, "w")
			cur.Spec.Data["forbidden"] = "x"
			_, err := client.Update(e.ctx, cur, metav1.UpdateOptions{})
			return err
		}},
		{"JSON patch", func() error {
			_, err := client.Patch(e.ctx, "w", types.JSONPatchType, []byte(`[{"op":"add","path":"/spec/data/forbidden","value":"x"}]`), metav1.PatchOptions{})
			return err
		}},
		{"merge patch", func() error {
			_, err := client.Patch(e.ctx, "w", types.MergePatchType, []byte(`{"spec":{"secretData":{"forbidden":"eA=="}}}`), metav1.PatchOptions{})
			return err
		}},
		{"strategic merge patch", func() error {
			_, err := client.Patch(e.ctx, "w", types.StrategicMergePatchType, []byte(`{"spec":{"data":{"forbidden":"x"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"server-side apply", func() error {
			_, err := client.Apply(e.ctx, configac.ConfigSet("w", ns).WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"forbidden": "x"})),
				metav1.ApplyOptions{FieldManager: "hi-applier", Force: true})
			return err
		}},
		{"rollback to a violating revision", func() error {
			_, err := client.Rollback(e.ctx, "w", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
			return err
		}},
		{"dry-run rollback to a violating revision", func() error {
			_, err := client.Rollback(e.ctx, "w", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{DryRun: dryRun})
			return err
		}},
		{"dry-run update", func() error {
			cur := e.mustGet(t, ns, "w")
			cur.Spec.Data["forbidden"] = "x"
			_, err := client.Update(e.ctx, cur, metav1.UpdateOptions{DryRun: dryRun})
			return err
		}},
		{"v1alpha1 merge patch", func() error {
			_, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Patch(e.ctx, "w", types.MergePatchType,
				[]byte(`{"spec":{"entries":[{"key":"forbidden","value":"x"}]}}`), metav1.PatchOptions{})
			return err
		}},
	}
	for _, tc := range writes {
		t.Run(tc.name, func(t *testing.T) {
			requireDenied(t, tc.write(), "w", policy, rule)
			e.requireUnchanged(t, before, []int64{1, 2})
		})
	}

	t.Run("server-side apply that creates", func(t *testing.T) {
		_, err := client.Apply(e.ctx, configac.ConfigSet("applied", ns).WithLabels(map[string]string{policyLabel: selects}).
			WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"forbidden": "x"})),
			metav1.ApplyOptions{FieldManager: "hi-applier"})
		requireDenied(t, err, "applied", policy, rule)
		e.requireAbsent(t, ns, "applied")
	})

	t.Run("compliant changes go through", func(t *testing.T) {
		got, err := client.Patch(e.ctx, "w", types.MergePatchType, []byte(`{"spec":{"data":{"more":"2"}}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("compliant merge patch: %v", err)
		}
		if got.Status.CurrentRevision != 3 {
			t.Errorf("compliant merge patch: revision %d, want 3", got.Status.CurrentRevision)
		}
		// A rollback to a compliant revision is allowed.
		got, err = client.Rollback(e.ctx, "w", &v1beta1.ConfigSetRollback{Revision: 2}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("rollback to compliant revision 2: %v", err)
		}
		if got.Status.CurrentRevision != 4 || !sameEntries(got.Spec.Data, nil, map[string]string{"ok": "1"}, nil) {
			t.Errorf("rollback to 2: revision %d data %v, want 4 and ok=1", got.Status.CurrentRevision, got.Spec.Data)
		}
	})

	t.Run("status updates and deletes are not checked", func(t *testing.T) {
		cur := e.mustGet(t, ns, "old-violator")
		cur.Status.Conditions = []metav1.Condition{{Type: "Applied", Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: metav1.Now()}}
		if _, err := client.UpdateStatus(e.ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Errorf("status update of a ConfigSet that breaks the policy: %v", err)
		}
		if err := client.Delete(e.ctx, "old-violator", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete of a ConfigSet that breaks the policy: %v", err)
		}
	})

	t.Run("Warn on rollback", func(t *testing.T) {
		before := e.mustGet(t, ns, "w")
		e.mustChangePolicy(t, policy, func(s *v1beta1.ConfigPolicySpec) { s.Enforcement = v1beta1.EnforcementWarn })
		e.waitWarned(t, ns, labelled("probe", selects, map[string]string{"forbidden": "x"}, nil), policy)
		e.warnings.take()
		got, err := client.Rollback(e.ctx, "w", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("rollback to a violating revision under Warn: %v", err)
		}
		if w, want := e.warnings.take(), []string{warningMessage(policy, rule)}; !slices.Equal(w, want) {
			t.Errorf("warnings = %q, want %q", w, want)
		}
		if got.Status.CurrentRevision != before.Status.CurrentRevision+1 || got.Spec.Data["forbidden"] != "1" {
			t.Errorf("rollback under Warn: revision %d data %v, want %d and forbidden=1", got.Status.CurrentRevision, got.Spec.Data, before.Status.CurrentRevision+1)
		}
	})
}

// TestPolicyInvalid checks that a policy that could never be evaluated is
// refused with 422 when it is written, naming the field.
func TestPolicyInvalid(t *testing.T) {
	e := sharedEnv(t)
	client := e.cs.ConfigV1beta1().ConfigPolicies()
	cases := []struct {
		name  string
		spec  v1beta1.ConfigPolicySpec
		field string
		says  string
	}{
		{"hi-syntax", v1beta1.ConfigPolicySpec{Rules: []v1beta1.ConfigPolicyRule{{Expression: "data.(", Message: "x"}}},
			"spec.rules[0].expression", "compilation failed"},
		{"hi-not-bool", v1beta1.ConfigPolicySpec{Rules: []v1beta1.ConfigPolicyRule{{Expression: "true"}, {Expression: "size(data)"}}},
			"spec.rules[1].expression", "must evaluate to bool"},
		{"hi-unknown-variable", v1beta1.ConfigPolicySpec{Rules: []v1beta1.ConfigPolicyRule{{Expression: "object.metadata.name == 'x'"}}},
			"spec.rules[0].expression", "undeclared reference"},
		{"hi-too-expensive", v1beta1.ConfigPolicySpec{Rules: []v1beta1.ConfigPolicyRule{{Expression: "data.all(k, data.all(j, k == j || data[k] != data[j]))"}}},
			"spec.rules[0].expression", "estimated rule cost exceeds budget"},
		{"hi-key-pattern", v1beta1.ConfigPolicySpec{KeyPattern: "("}, "spec.keyPattern", "missing closing )"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{policyLabel: "never"}}
			_, err := client.Create(e.ctx, &v1beta1.ConfigPolicy{ObjectMeta: metav1.ObjectMeta{Name: tc.name}, Spec: tc.spec}, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: err = %v, want 422 Invalid", err)
			}
			status := err.(apierrors.APIStatus).Status()
			if status.Details == nil || len(status.Details.Causes) != 1 || status.Details.Causes[0].Field != tc.field ||
				!strings.Contains(status.Details.Causes[0].Message, tc.says) {
				t.Errorf("causes = %+v, want one on %s saying %q", status.Details, tc.field, tc.says)
			}
			if _, err := client.Get(e.ctx, tc.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("refused policy was stored: err = %v", err)
			}
		})
	}

	t.Run("an update to a bad rule is refused too", func(t *testing.T) {
		e.mustCreatePolicy(t, newPolicy("hi-good", "never", v1beta1.ConfigPolicySpec{Rules: []v1beta1.ConfigPolicyRule{{Expression: "true"}}}))
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p, err := client.Get(e.ctx, "hi-good", metav1.GetOptions{})
			if err != nil {
				return err
			}
			p.Spec.Rules = append(p.Spec.Rules, v1beta1.ConfigPolicyRule{Expression: "data.("})
			_, err = client.Update(e.ctx, p, metav1.UpdateOptions{})
			return err
		})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("update with a bad rule: err = %v, want 422 Invalid", err)
		}
		p, err := client.Get(e.ctx, "hi-good", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if len(p.Spec.Rules) != 1 {
			t.Errorf("refused update was stored: rules %+v", p.Spec.Rules)
		}
	})
}

// TestPolicyCostLimit evaluates a rule that compiles (its estimated cost is
// within the budget) on a ConfigSet large enough that it runs over its
// runtime limit: the write is denied, with a message about the cost limit,
// while a small ConfigSet passes the same rule.
func TestPolicyCostLimit(t *testing.T) {
	e := sharedEnv(t)
	const ns, policy, selects = "hi-policy-cost", "hi-cost", "cost"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	e.mustCreatePolicy(t, newPolicy(policy, selects, v1beta1.ConfigPolicySpec{
		Rules: []v1beta1.ConfigPolicyRule{{Expression: "!('hi-deny' in data) && data.all(k, size(k) > 0)", Message: "keys must not be empty"}},
	}))
	e.waitDenied(t, ns, labelled("probe", selects, map[string]string{"hi-deny": "x"}, nil))

	if _, err := client.Create(e.ctx, labelled("small", selects, map[string]string{"a": "1", "b": "2"}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatalf("small create: %v", err)
	}

	const entries = 50000
	data := make(map[string]string, entries)
	for i := range entries {
		data[fmt.Sprintf("k%05d", i)] = "v"
	}
	start := time.Now()
	_, err := client.Create(e.ctx, labelled("big", selects, data, nil), metav1.CreateOptions{})
	t.Logf("create of %d entries answered in %v", entries, time.Since(start).Round(time.Millisecond))
	requireDenied(t, err, "big", policy, "rules[0]: evaluation exceeded its limits (CEL rule exceeded its runtime cost limit: it ran for more than 1s), so the rule is treated as broken")
	e.requireAbsent(t, ns, "big")

	// Without the policy the same ConfigSet is accepted: the denial was the rule's cost.
	if err := e.cs.ConfigV1beta1().ConfigPolicies().Delete(e.ctx, policy, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the policy: %v", err)
	}
	e.waitAllowed(t, ns, labelled("probe", selects, map[string]string{"hi-deny": "x"}, nil))
	if _, err := client.Create(e.ctx, labelled("big", selects, data, nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("create of %d entries without the policy: %v", entries, err)
	}
}

// TestPolicyLiveChanges checks that policy changes take effect without a
// restart: a new policy denies the next write once the plugin's informer has
// it, relaxing or deleting it allows the next write.
func TestPolicyLiveChanges(t *testing.T) {
	e := sharedEnv(t)
	const ns, policy, selects = "hi-policy-live", "hi-live", "live"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	violating := func(name string) *v1beta1.ConfigSet {
		return labelled(name, selects, map[string]string{"a": "1"}, nil)
	}
	if _, err := client.Create(e.ctx, violating("before"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create before any policy: %v", err)
	}

	e.mustCreatePolicy(t, newPolicy(policy, selects, v1beta1.ConfigPolicySpec{RequiredKeys: []string{"owner"}}))
	t.Logf("created: enforced after %v", e.waitDenied(t, ns, violating("probe")).Round(time.Millisecond))
	_, err := client.Create(e.ctx, violating("created"), metav1.CreateOptions{})
	requireDenied(t, err, "created", policy, `requiredKeys: missing "owner"`)

	e.mustChangePolicy(t, policy, func(s *v1beta1.ConfigPolicySpec) { s.RequiredKeys = nil; s.MaxKeys = ptr.To[int32](5) })
	t.Logf("relaxed: allowed after %v", e.waitAllowed(t, ns, violating("probe")).Round(time.Millisecond))
	if _, err := client.Create(e.ctx, violating("relaxed"), metav1.CreateOptions{}); err != nil {
		t.Errorf("create after relaxing the policy: %v", err)
	}

	e.mustChangePolicy(t, policy, func(s *v1beta1.ConfigPolicySpec) { s.RequiredKeys = []string{"owner"} })
	e.waitDenied(t, ns, violating("probe"))
	_, err = client.Create(e.ctx, violating("tightened"), metav1.CreateOptions{})
	requireDenied(t, err, "tightened", policy, `requiredKeys: missing "owner"`)

	if err := e.cs.ConfigV1beta1().ConfigPolicies().Delete(e.ctx, policy, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the policy: %v", err)
	}
	t.Logf("deleted: allowed after %v", e.waitAllowed(t, ns, violating("probe")).Round(time.Millisecond))
	if _, err := client.Create(e.ctx, violating("deleted"), metav1.CreateOptions{}); err != nil {
		t.Errorf("create after deleting the policy: %v", err)
	}
}
