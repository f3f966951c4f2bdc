package integration

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	clientset "capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/utils"
)

// scrape reads the server's /metrics as the admin and returns each
// series' value by its name and labels, as `name{a="x",b="y"}`.
func scrape(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	core, err := kubernetes.NewForConfig(e.ts.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	body, err := core.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(e.ctx)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	series, err := utils.MetricSeries(body)
	if err != nil {
		t.Fatal(err)
	}
	return series
}

// requireDelta checks how much each series moved between two scrapes.
func requireDelta(t *testing.T, before, after map[string]float64, want map[string]float64) {
	t.Helper()
	for series, delta := range want {
		if got := after[series] - before[series]; got != delta {
			t.Errorf("%s moved by %v, want %v", series, got, delta)
		}
	}
}

// TestMetrics: Capstan's own metrics on /metrics move when their events
// happen: revisions written by requests and by the reconciler, pruning by
// count and by bytes, repairs, rollbacks, and policy decisions with their
// rules' evaluations and cost.
func TestMetrics(t *testing.T) {
	// A server of its own: --history-max-bytes and --history-repair-grace-period,
	// and counters that only this test moves.
	e := startEnv(t, "--history-max-bytes=4096", "--history-repair-grace-period=1s")
	const ns = "metrics"
	sets := e.cs.ConfigV1beta1().ConfigSets(ns)

	// Four changes of a ConfigSet that keeps two revisions: four revisions
	// written by requests, two pruned by count.
	before := scrape(t, e)
	set := configSet("counted", map[string]string{"k": "v0"}, nil)
	set.Spec.RevisionHistoryLimit = ptr.To[int32](2)
	e.mustCreate(t, ns, set)
	for i := 1; i <= 3; i++ {
		e.mustUpdate(t, ns, "counted", func(cs *v1beta1.ConfigSet) { cs.Spec.Data["k"] = fmt.Sprintf("v%d", i) })
	}
	requireDelta(t, before, scrape(t, e), map[string]float64{
		`capstan_history_revisions_written_total{result="success", writer="request"}`: 4,
		`capstan_history_revisions_pruned_total{reason="count"}`:                      2,
		`capstan_history_revisions_pruned_total{reason="bytes"}`:                      0,
	})

	// Values of 3,000 bytes under a 4,096-byte budget: the second change's
	// write prunes the first revision by bytes.
	before = scrape(t, e)
	big := configSet("big", map[string]string{"blob": strings.Repeat("a", 3000)}, nil)
	big.Spec.RevisionHistoryLimit = ptr.To[int32](100)
	e.mustCreate(t, ns, big)
	e.mustUpdate(t, ns, "big", func(cs *v1beta1.ConfigSet) { cs.Spec.Data["blob"] = strings.Repeat("b", 3000) })
	requireDelta(t, before, scrape(t, e), map[string]float64{
		`capstan_history_revisions_pruned_total{reason="bytes"}`: 1,
	})

	// A rollback to a kept revision succeeds; one to a pruned revision is a 404.
	before = scrape(t, e)
	if _, err := sets.Rollback(e.ctx, "counted", &v1beta1.ConfigSetRollback{Revision: 3}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sets.Rollback(e.ctx, "counted", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("rollback to a pruned revision: %v, want NotFound", err)
	}
	if _, err := sets.Rollback(e.ctx, "counted", &v1beta1.ConfigSetRollback{Revision: 4},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	requireDelta(t, before, scrape(t, e), map[string]float64{
		`capstan_configset_rollbacks_total{result="success"}`:  1,
		`capstan_configset_rollbacks_total{result="NotFound"}`: 1,
	})

	// The current revision deleted by a user: the reconciler restores it.
	before = scrape(t, e)
	cur, err := sets.Get(e.ctx, "counted", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	current := config.RevisionName("counted", cur.Status.CurrentRevision)
	if err := e.cs.ConfigV1beta1().ConfigRevisions(ns).Delete(e.ctx, current, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.poll(t, testTimeout, "the reconciler restores the current revision", func() (bool, error) {
		_, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).Get(e.ctx, current, metav1.GetOptions{})
		return err == nil, err
	})
	requireDelta(t, before, scrape(t, e), map[string]float64{
		`capstan_history_repairs_total{kind="restored_current"}`:                         1,
		`capstan_history_revisions_written_total{result="success", writer="reconciler"}`: 1,
	})

	// A Deny policy with a CEL rule: one write denied, one allowed, each
	// evaluating the rule once; a dry run evaluates but is no decision.
	before = scrape(t, e)
	policy := &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-no-debug"},
		Spec: v1beta1.ConfigPolicySpec{
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"team": "metrics"}},
			Rules:       []v1beta1.ConfigPolicyRule{{Expression: `!('debug' in data)`, Message: "no debug key"}},
			Enforcement: v1beta1.EnforcementDeny,
		},
	}
	if _, err := e.cs.ConfigV1beta1().ConfigPolicies().Create(e.ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := configSet("bad", map[string]string{"debug": "true"}, nil)
	bad.Labels = map[string]string{"team": "metrics"}
	e.poll(t, testTimeout, "the policy in force", func() (bool, error) {
		_, err := sets.Create(e.ctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) {
			return false, fmt.Errorf("dry-run create: %v, want Forbidden", err)
		}
		return true, nil
	})
	afterDryRuns := scrape(t, e)
	if _, err := sets.Create(e.ctx, bad, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("create of a violating ConfigSet: %v, want Forbidden", err)
	}
	good := configSet("good", map[string]string{"level": "info"}, nil)
	good.Labels = map[string]string{"team": "metrics"}
	e.mustCreate(t, ns, good)
	after := scrape(t, e)
	requireDelta(t, before, afterDryRuns, map[string]float64{
		`capstan_configpolicy_decisions_total{enforcement="Deny", policy="metrics-no-debug", result="denied"}`: 0,
	})
	requireDelta(t, afterDryRuns, after, map[string]float64{
		`capstan_configpolicy_decisions_total{enforcement="Deny", policy="metrics-no-debug", result="denied"}`:  1,
		`capstan_configpolicy_decisions_total{enforcement="Deny", policy="metrics-no-debug", result="allowed"}`: 1,
		`capstan_configpolicy_rule_evaluations_total{result="false"}`:                                           1,
		`capstan_configpolicy_rule_evaluations_total{result="true"}`:                                            1,
		`capstan_configpolicy_rule_cost_count`:                                                                  2,
	})
	if after[`capstan_configpolicy_rule_cost_sum`] <= afterDryRuns[`capstan_configpolicy_rule_cost_sum`] {
		t.Error("capstan_configpolicy_rule_cost_sum did not grow")
	}

	// JSON and protobuf lists keep their items encoded, each format its
	// own: the second list of three unchanged ConfigSets finds all three.
	const listed = "metrics-lists"
	for i := range 3 {
		e.mustCreate(t, listed, configSet(fmt.Sprintf("listed-%d", i), map[string]string{"k": "v"}, nil))
	}
	clientIn := func(contentType string) *clientset.Clientset {
		t.Helper()
		cfg := rest.CopyConfig(e.ts.ClientConfig)
		cfg.ContentType, cfg.AcceptContentTypes = contentType, contentType
		client, err := clientset.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return client
	}
	for _, format := range []struct{ label, contentType string }{
		{"json", runtime.ContentTypeJSON},
		{"protobuf", runtime.ContentTypeProtobuf},
	} {
		client := clientIn(format.contentType)
		before := scrape(t, e)
		if _, err := client.ConfigV1beta1().ConfigSets(listed).List(e.ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		middle := scrape(t, e)
		if _, err := client.ConfigV1beta1().ConfigSets(listed).List(e.ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		after := scrape(t, e)
		hit := fmt.Sprintf(`capstan_list_item_cache_lookups_total{format="%s", result="hit"}`, format.label)
		miss := fmt.Sprintf(`capstan_list_item_cache_lookups_total{format="%s", result="miss"}`, format.label)
		requireDelta(t, before, middle, map[string]float64{hit: 0, miss: 3})
		requireDelta(t, middle, after, map[string]float64{hit: 3, miss: 0})
		held := fmt.Sprintf(`capstan_list_item_cache_bytes{format="%s"}`, format.label)
		if after[held] <= 0 {
			t.Errorf("%s is %v with three items kept", held, after[held])
		}
	}

	// Deleted ConfigSets' items are dropped from both formats' caches, and a
	// collection delete, which answers with the ConfigSets it deleted, keeps
	// none of them, neither the three listed nor two never listed.
	for i := 3; i < 5; i++ {
		e.mustCreate(t, listed, configSet(fmt.Sprintf("listed-%d", i), map[string]string{"k": "v"}, nil))
	}
	if err := clientIn(runtime.ContentTypeJSON).ConfigV1beta1().ConfigSets(listed).DeleteCollection(e.ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := scrape(t, e)
	for _, format := range []string{"json", "protobuf"} {
		if held := fmt.Sprintf(`capstan_list_item_cache_bytes{format="%s"}`, format); deleted[held] != 0 {
			t.Errorf("%s is %v after every ConfigSet listed was deleted", held, deleted[held])
		}
	}
}
