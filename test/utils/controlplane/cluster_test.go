package controlplane

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAggregatedRules pins the rules of kube-controller-manager's
// clusterrole-aggregation controller: matching roles in name order, the
// aggregating role itself left out, duplicates dropped.
func TestAggregatedRules(t *testing.T) {
	rule := func(resource string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{Group}, Resources: []string{resource}, Verbs: []string{"get"}}
	}
	label := map[string]string{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}
	edit := rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "edit", Labels: label},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
			{MatchLabels: label},
		}},
		Rules: []rbacv1.PolicyRule{rule("stale")},
	}
	all := []rbacv1.ClusterRole{
		edit,
		{ObjectMeta: metav1.ObjectMeta{Name: "z-role", Labels: label}, Rules: []rbacv1.PolicyRule{rule("configsets"), rule("configpolicies")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "a-role", Labels: label}, Rules: []rbacv1.PolicyRule{rule("configpolicies")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}, Rules: []rbacv1.PolicyRule{rule("secrets")}},
	}
	got, err := aggregatedRules(&edit, all)
	if err != nil {
		t.Fatal(err)
	}
	var resources []string
	for _, r := range got {
		resources = append(resources, r.Resources...)
	}
	if want := "configpolicies,configsets"; strings.Join(resources, ",") != want {
		t.Fatalf("aggregated resources %v, want %s", resources, want)
	}
}

// TestStopSignalsOnlyTheRecordedProcess starts a process, stops it, and
// checks that a record whose start time does not match (a reused PID) is
// never signalled.
func TestStopSignalsOnlyTheRecordedProcess(t *testing.T) {
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	p, err := startProcess("sleeper", dir, filepath.Join(dir, "sleeper.log"), []string{sleep, "60"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() || p.StartTicks == 0 {
		t.Fatalf("started process: running %v, start ticks %d", p.Running(), p.StartTicks)
	}

	// As loaded from a state file by another process: no cmd to wait on.
	loaded := &Process{Name: p.Name, PID: p.PID, StartTicks: p.StartTicks}
	if !loaded.Running() {
		t.Fatal("a loaded record of a live process reports it stopped")
	}
	impostor := &Process{Name: "impostor", PID: p.PID, StartTicks: p.StartTicks + 1}
	if impostor.Running() {
		t.Fatal("a record with another start time claims the process")
	}
	if err := impostor.stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("stopping a record with another start time signalled the process")
	}

	start := time.Now()
	if err := loaded.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() || loaded.Running() {
		t.Fatal("the process runs after stop")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("stop took %s: SIGTERM should end sleep at once", d)
	}
}

// TestWaitReadyQuotesTheLog checks that a process that dies before it is
// ready fails with the end of its log.
func TestWaitReadyQuotesTheLog(t *testing.T) {
	dir := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	p, err := startProcess("failing", dir, filepath.Join(dir, "failing.log"),
		[]string{sh, "-c", "echo 'the reason it failed' >&2; exit 3"}, false)
	if err != nil {
		t.Fatal(err)
	}
	err = p.waitReady(t.Context(), func(context.Context) error { return errors.New("not ready") })
	if err == nil || !strings.Contains(err.Error(), "the reason it failed") || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("waitReady: %v", err)
	}
}
