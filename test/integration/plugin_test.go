package integration

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/utils/kubectl"
)

const (
	// pluginBuildTimeout bounds building the plugin, which on a cold build cache
	// compiles cli-runtime and kustomize.
	pluginBuildTimeout = 15 * time.Minute
	// pluginRunTimeout bounds one `kubectl capstan` invocation.
	pluginRunTimeout = 60 * time.Second
	// pluginNamespace is where the test's ConfigSets live: not the kubeconfig's
	// default namespace, so that -n must be honoured.
	pluginNamespace = "shop"
	// pluginPolicyTimeout bounds how long a new policy takes to reach admission.
	pluginPolicyTimeout = 30 * time.Second
)

// maskedSecretLine matches a masked secret line of a diff and captures its size.
var maskedSecretLine = regexp.MustCompile(`^([-+ ])DB_PASSWORD=<secret: (\d+) bytes, fingerprint [0-9a-f]{8}>$`)

// TestPlugin builds kubectl-capstan, puts it on PATH and runs it as
// `kubectl capstan …` with the real kubectl against an in-process server.
func TestPlugin(t *testing.T) {
	_, k, client := pluginEnv(t)
	binDir := pluginBuild.dir
	ctx := t.Context()

	rev1 := revisionEntries{
		data: map[string]string{
			"LOG_LEVEL":   "info",
			"LEGACY_MODE": "true",
			"app.yaml":    "server:\n  port: 8080\n  workers: 4\n",
		},
		secretData: map[string][]byte{"DB_PASSWORD": []byte("hunter2")},
	}
	cs := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "storefront", Namespace: pluginNamespace,
			Annotations: map[string]string{causeAnnotation: "initial import"}},
		Spec: v1beta1.ConfigSetSpec{Data: rev1.data, SecretData: rev1.secretData},
	}
	if _, err := client.ConfigV1beta1().ConfigSets(pluginNamespace).Create(ctx, cs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating configset storefront: %v", err)
	}
	changeWithCause(t, client, "storefront", "debug logging", func(s *v1beta1.ConfigSetSpec) {
		s.Data["LOG_LEVEL"] = "debug"
	})
	changeWithCause(t, client, "storefront", "rotate password, tune workers", func(s *v1beta1.ConfigSetSpec) {
		s.SecretData["DB_PASSWORD"] = []byte("correct-horse-battery")
		s.Data["app.yaml"] = "server:\n  port: 8080\n  workers: 8\n"
		s.Data["TIMEOUT"] = "30s"
		delete(s.Data, "LEGACY_MODE")
	})

	t.Run("kubectl plugin list finds it", func(t *testing.T) {
		stdout, _, _ := k.ExitCode(t, "plugin", "list")
		requireContains(t, stdout, filepath.Join(binDir, "kubectl-capstan"))
	})

	t.Run("history lists the revisions oldest first", func(t *testing.T) {
		out := k.Run(t, "capstan", "history", "storefront", "-n", pluginNamespace)
		requireHistory(t, out, []historyRow{
			{revision: "1", author: adminUser, cause: "initial import", rollbackOf: "<none>", keys: "4"},
			{revision: "2", author: adminUser, cause: "debug logging", rollbackOf: "<none>", keys: "4"},
			{current: true, revision: "3", author: adminUser, cause: "rotate password, tune workers", rollbackOf: "<none>", keys: "4"},
		})
	})

	t.Run("diff masks secrets", func(t *testing.T) {
		out := k.Run(t, "capstan", "diff", "storefront", "1", "3", "--namespace="+pluginNamespace)
		lines := splitLines(out)
		want := []string{
			"--- storefront revision 1",
			"+++ storefront revision 3",
			"@@ -1,6 +1,6 @@",
			"-DB_PASSWORD=<masked 7>",
			"-LEGACY_MODE=true",
			"-LOG_LEVEL=info",
			"+DB_PASSWORD=<masked 21>",
			"+LOG_LEVEL=debug",
			"+TIMEOUT=30s",
			" app.yaml=server:",
			// The further lines of app.yaml are indented under its first.
			"            port: 8080",
			"-           workers: 4",
			"+           workers: 8",
		}
		for i, l := range lines {
			if m := maskedSecretLine.FindStringSubmatch(l); m != nil {
				lines[i] = m[1] + "DB_PASSWORD=<masked " + m[2] + ">"
			}
		}
		if !slices.Equal(lines, want) {
			t.Errorf("diff 1 3 printed\n%s\nwant (with masked secrets as size and fingerprint)\n%s", out, strings.Join(want, "\n"))
		}
		for _, secret := range []string{"hunter2", "correct-horse-battery"} {
			if strings.Contains(out, secret) {
				t.Errorf("diff without --show-secrets reveals %q:\n%s", secret, out)
			}
		}
		if fp := regexp.MustCompile(`fingerprint ([0-9a-f]{8})`).FindAllStringSubmatch(out, -1); len(fp) != 2 || fp[0][1] == fp[1][1] {
			t.Errorf("the changed secret does not show two different fingerprints:\n%s", out)
		}
	})

	t.Run("diff --show-secrets reveals them", func(t *testing.T) {
		out := k.Run(t, "capstan", "diff", "storefront", "1", "3", "-n", pluginNamespace, "--show-secrets")
		lines := splitLines(out)
		for _, want := range []string{"-DB_PASSWORD=hunter2", "+DB_PASSWORD=correct-horse-battery", "-LOG_LEVEL=info", "+LOG_LEVEL=debug"} {
			if !slices.Contains(lines, want) {
				t.Errorf("diff --show-secrets has no line %q:\n%s", want, out)
			}
		}
	})

	t.Run("diff against the current entries", func(t *testing.T) {
		out := k.Run(t, "capstan", "diff", "storefront", "2", "-n", pluginNamespace)
		lines := splitLines(out)
		if len(lines) < 2 || lines[0] != "--- storefront revision 2" || lines[1] != "+++ storefront revision 3 (current)" {
			t.Errorf("diff 2 has the wrong headers:\n%s", out)
		}
		for _, want := range []string{" LOG_LEVEL=debug", "-LEGACY_MODE=true", "+TIMEOUT=30s"} {
			if !slices.Contains(lines, want) {
				t.Errorf("diff 2 has no line %q:\n%s", want, out)
			}
		}

		out = k.Run(t, "capstan", "diff", "storefront", "3", "-n", pluginNamespace)
		if want := "no differences between storefront revision 3 and storefront revision 3 (current)\n"; out != want {
			t.Errorf("diff of the current revision printed %q, want %q", out, want)
		}
	})

	t.Run("rollback --dry-run=server changes nothing", func(t *testing.T) {
		out := k.Run(t, "capstan", "rollback", "storefront", "--to", "1", "--dry-run=server", "-n", pluginNamespace)
		if want := "configset/storefront rolled back to revision 1 (now revision 4) (server dry run)\n"; out != want {
			t.Errorf("rollback --dry-run=server printed %q, want %q", out, want)
		}
		got := getPluginConfigSet(t, client, "storefront")
		if got.Status.CurrentRevision != 3 || got.Spec.Data["LEGACY_MODE"] != "" || got.Spec.Data["TIMEOUT"] != "30s" {
			t.Errorf("after a dry run the configset is at revision %d with %v", got.Status.CurrentRevision, got.Spec.Data)
		}
	})

	t.Run("rollback restores the entries of the revision", func(t *testing.T) {
		out := k.Run(t, "capstan", "rollback", "storefront", "--to", "1", "-n", pluginNamespace)
		if want := "configset/storefront rolled back to revision 1 (now revision 4)\n"; out != want {
			t.Errorf("rollback printed %q, want %q", out, want)
		}
		got := getPluginConfigSet(t, client, "storefront")
		if got.Status.CurrentRevision != 4 {
			t.Errorf("after the rollback the configset is at revision %d, want 4", got.Status.CurrentRevision)
		}
		if !maps.Equal(got.Spec.Data, rev1.data) || !maps.EqualFunc(got.Spec.SecretData, rev1.secretData, bytes.Equal) {
			t.Errorf("after the rollback the entries are %v / %q, want those of revision 1: %v / %q",
				got.Spec.Data, got.Spec.SecretData, rev1.data, rev1.secretData)
		}

		out = k.Run(t, "capstan", "history", "storefront", "-n", pluginNamespace)
		rows := parseHistory(t, out)
		if len(rows) != 4 {
			t.Fatalf("history after the rollback has %d rows, want 4:\n%s", len(rows), out)
		}
		if r := rows[3]; !r.current || r.revision != "4" || r.author != adminUser || r.rollbackOf != "1" || r.keys != "4" || rows[2].current {
			t.Errorf("history after the rollback ends with %+v, want revision 4, current, rollback of 1:\n%s", r, out)
		}

		out = k.Run(t, "capstan", "diff", "storefront", "1", "-n", pluginNamespace)
		if !strings.HasPrefix(out, "no differences") {
			t.Errorf("revision 1 and the rolled-back entries differ:\n%s", out)
		}
		out = k.Run(t, "capstan", "rollback", "storefront", "--to", "4", "-n", pluginNamespace)
		if want := "configset/storefront already has the entries of revision 4 (still revision 4)\n"; out != want {
			t.Errorf("rollback to the current revision printed %q, want %q", out, want)
		}
	})

	t.Run("a missing revision is a clear error", func(t *testing.T) {
		stderr := kubectlFails(t, k, "capstan", "rollback", "storefront", "--to", "99", "-n", pluginNamespace)
		requireContains(t, stderr, "error: revision 99 of configset/storefront is not kept (kept revisions: 1-4)")
		stderr = kubectlFails(t, k, "capstan", "diff", "storefront", "99", "2", "-n", pluginNamespace)
		requireContains(t, stderr, "error: revision 99 of configset/storefront is not kept (kept revisions: 1-4)")
		stderr = kubectlFails(t, k, "capstan", "diff", "storefront", "zero", "-n", pluginNamespace)
		requireContains(t, stderr, `error: invalid revision "zero"`)
	})

	t.Run("a missing configset is a clear error", func(t *testing.T) {
		for _, args := range [][]string{
			{"history", "missing"},
			{"diff", "missing", "1"},
			{"rollback", "missing", "--to", "1"},
		} {
			stderr := kubectlFails(t, k, append(append([]string{"capstan"}, args...), "-n", pluginNamespace)...)
			requireContains(t, stderr, `error: configset "missing" not found in namespace "shop"`)
		}
		// Without -n the kubeconfig's namespace applies, where storefront is not.
		stderr := kubectlFails(t, k, "capstan", "history", "storefront")
		requireContains(t, stderr, `error: configset "storefront" not found in namespace "default"`)
	})

}

// TestPluginPrunedRevisionCannotBeRestored: a pruned revision cannot be restored.
func TestPluginPrunedRevisionCannotBeRestored(t *testing.T) {
	_, k, client := pluginEnv(t)
	ctx := t.Context()

	pruned := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "pruned", Namespace: pluginNamespace},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"N": "1"}, RevisionHistoryLimit: ptr.To[int32](2)},
	}
	if _, err := client.ConfigV1beta1().ConfigSets(pluginNamespace).Create(ctx, pruned, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	changeWithCause(t, client, "pruned", "two", func(s *v1beta1.ConfigSetSpec) { s.Data["N"] = "2" })
	changeWithCause(t, client, "pruned", "three", func(s *v1beta1.ConfigSetSpec) { s.Data["N"] = "3" })

	out := k.Run(t, "capstan", "history", "pruned", "-n", pluginNamespace)
	rows := parseHistory(t, out)
	if len(rows) != 2 || rows[0].revision != "2" || rows[1].revision != "3" || !rows[1].current {
		t.Errorf("history of a configset keeping 2 revisions:\n%s", out)
	}
	stderr := kubectlFails(t, k, "capstan", "rollback", "pruned", "--to", "1", "-n", pluginNamespace)
	requireContains(t, stderr, "error: revision 1 of configset/pruned is not kept (kept revisions: 2-3)")
	if got := getPluginConfigSet(t, client, "pruned"); got.Status.CurrentRevision != 3 || got.Spec.Data["N"] != "3" {
		t.Errorf("a failed rollback changed the configset: revision %d, %v", got.Status.CurrentRevision, got.Spec.Data)
	}
}

// TestPluginImmutableConfigSetCannotBeRolledBack: an immutable configset cannot be rolled back.
func TestPluginImmutableConfigSetCannotBeRolledBack(t *testing.T) {
	_, k, client := pluginEnv(t)
	ctx := t.Context()

	frozen := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "frozen", Namespace: pluginNamespace},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"N": "1"}, Immutable: ptr.To(true)},
	}
	if _, err := client.ConfigV1beta1().ConfigSets(pluginNamespace).Create(ctx, frozen, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stderr := kubectlFails(t, k, "capstan", "rollback", "frozen", "--to", "1", "-n", pluginNamespace)
	requireContains(t, stderr, "error: cannot roll back configset/frozen: it is immutable (spec.immutable is true), so its entries can no longer change")
}

// TestPluginLongName: a long name whose revisions get shortened names.
func TestPluginLongName(t *testing.T) {
	_, k, client := pluginEnv(t)
	ctx := t.Context()

	name := "long-" + strings.Repeat("x", 248)
	long := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pluginNamespace},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"N": "1"}},
	}
	if _, err := client.ConfigV1beta1().ConfigSets(pluginNamespace).Create(ctx, long, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	changeWithCause(t, client, name, "two", func(s *v1beta1.ConfigSetSpec) { s.Data["N"] = "2" })
	revisions, err := client.ConfigV1beta1().ConfigRevisions(pluginNamespace).List(ctx, metav1.ListOptions{FieldSelector: "configSetName=" + name})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range revisions.Items {
		if r.Name == fmt.Sprintf("%s-%d", name, r.Revision) {
			t.Fatalf("revision %d is named %s-%d; this test needs the server to shorten it", r.Revision, name, r.Revision)
		}
	}

	rows := parseHistory(t, k.Run(t, "capstan", "history", name, "-n", pluginNamespace))
	if len(rows) != 2 || rows[1].cause != "two" || !rows[1].current {
		t.Errorf("history of a long-named configset: %+v", rows)
	}
	out := k.Run(t, "capstan", "diff", name, "1", "-n", pluginNamespace)
	if lines := splitLines(out); !slices.Contains(lines, "-N=1") || !slices.Contains(lines, "+N=2") {
		t.Errorf("diff of a long-named configset:\n%s", out)
	}
	out = k.Run(t, "capstan", "rollback", name, "--to", "1", "-n", pluginNamespace)
	requireContains(t, out, "rolled back to revision 1 (now revision 3)")
	if got := getPluginConfigSet(t, client, name); got.Spec.Data["N"] != "1" {
		t.Errorf("after the rollback N is %q, want 1", got.Spec.Data["N"])
	}
}

// TestPluginPoliciesApplyToRollbacks: policies apply to rollbacks, with warnings shown.
func TestPluginPoliciesApplyToRollbacks(t *testing.T) {
	ts, k, client := pluginEnv(t)
	ctx := t.Context()

	labels := map[string]string{"team": "payments"}
	policed := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "policed", Namespace: pluginNamespace, Labels: labels},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"DEBUG": "true", "N": "1"}},
	}
	if _, err := client.ConfigV1beta1().ConfigSets(pluginNamespace).Create(ctx, policed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	changeWithCause(t, client, "policed", "no debug", func(s *v1beta1.ConfigSetSpec) { delete(s.Data, "DEBUG") })
	policy := &v1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-debug"},
		Spec: v1beta1.ConfigPolicySpec{
			Selector:      &metav1.LabelSelector{MatchLabels: labels},
			ForbiddenKeys: []string{"DEBUG"},
			Enforcement:   v1beta1.EnforcementWarn,
		},
	}
	if _, err := client.ConfigV1beta1().ConfigPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForPolicy(t, ts, labels, "to warn", func(warned bool, err error) bool { return warned && err == nil })

	stdout, stderr, code := k.ExitCode(t, "capstan", "rollback", "policed", "--to", "1", "-n", pluginNamespace)
	if code != 0 || stdout != "configset/policed rolled back to revision 1 (now revision 3)\n" {
		t.Errorf("rollback under a Warn policy exited with %d and printed %q; stderr:\n%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stderr, "Warning: ") || !strings.Contains(stderr, "no-debug") {
		t.Errorf("rollback under a Warn policy does not print the server's warning; stderr:\n%s", stderr)
	}

	changeWithCause(t, client, "policed", "no debug again", func(s *v1beta1.ConfigSetSpec) { delete(s.Data, "DEBUG") })
	deny, err := client.ConfigV1beta1().ConfigPolicies().Get(ctx, "no-debug", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deny.Spec.Enforcement = v1beta1.EnforcementDeny
	if _, err := client.ConfigV1beta1().ConfigPolicies().Update(ctx, deny, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForPolicy(t, ts, labels, "to deny", func(_ bool, err error) bool { return err != nil })

	stderr = kubectlFails(t, k, "capstan", "rollback", "policed", "--to", "1", "-n", pluginNamespace)
	requireContains(t, stderr, "error: cannot roll back configset/policed to revision 1: ")
	requireContains(t, stderr, "no-debug")
	if got := getPluginConfigSet(t, client, "policed"); got.Status.CurrentRevision != 4 || got.Spec.Data["DEBUG"] != "" {
		t.Errorf("a denied rollback changed the configset: revision %d, %v", got.Status.CurrentRevision, got.Spec.Data)
	}
	if err := client.ConfigV1beta1().ConfigPolicies().Delete(ctx, "no-debug", metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting the policy: %v", err)
	}
}

// pluginBuild is the kubectl-capstan binary, built once for the package in a
// folder that TestMain removes.
var pluginBuild struct {
	once sync.Once
	dir  string
	ok   bool
}

// pluginKubectl returns the real kubectl with kubectl-capstan on its PATH,
// against ts, building the plugin on first use.
func pluginKubectl(t *testing.T, ts *capstantesting.TestServer) kubectl.Kubectl {
	t.Helper()
	kubectlPath := kubectl.Require(t)
	pluginBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "capstan-plugin-")
		if err != nil {
			t.Fatalf("creating the plugin's folder: %v", err)
		}
		pluginBuild.dir = dir
		packageCleanups = append(packageCleanups, func() { _ = os.RemoveAll(dir) })
		buildPlugin(t, filepath.Join(dir, "kubectl-capstan"))
		pluginBuild.ok = true
	})
	if !pluginBuild.ok {
		t.Fatalf("kubectl-capstan could not be built (see the first test that tried)")
	}
	return kubectl.Kubectl{
		Path:       kubectlPath,
		Kubeconfig: ts.Kubeconfig,
		Home:       t.TempDir(),
		Env: []string{"KUBECONFIG=" + ts.Kubeconfig,
			"PATH=" + pluginBuild.dir + string(os.PathListSeparator) + os.Getenv("PATH")},
		Timeout: pluginRunTimeout,
	}
}

// pluginEnv returns the shared server, a kubectl with the plugin against it,
// and an admin clientset.
func pluginEnv(t *testing.T) (*capstantesting.TestServer, kubectl.Kubectl, *versioned.Clientset) {
	t.Helper()
	ts := sharedServer(t)
	return ts, pluginKubectl(t, ts), newClientset(t, ts)
}

// waitForPolicy waits until the admission plugin, which learns about
// policies through an informer, acts on a policy: a server dry-run create of
// a ConfigSet with the given labels and a DEBUG entry must satisfy done.
func waitForPolicy(t *testing.T, ts *capstantesting.TestServer, labels map[string]string, what string, done func(warned bool, err error) bool) {
	t.Helper()
	warnings := &warningRecorder{}
	cfg := rest.CopyConfig(ts.ClientConfig)
	cfg.WarningHandler = warnings
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	probe := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-probe", Namespace: pluginNamespace, Labels: labels},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"DEBUG": "true"}},
	}
	var last error
	err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, pluginPolicyTimeout, true, func(ctx context.Context) (bool, error) {
		_, last = client.ConfigV1beta1().ConfigSets(pluginNamespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return done(len(warnings.take()) > 0, last), nil
	})
	if err != nil {
		t.Fatalf("the policy did not start %s within %v (last probe: %v)", what, pluginPolicyTimeout, last)
	}
}

// revisionEntries are the entries of one revision.
type revisionEntries struct {
	data       map[string]string
	secretData map[string][]byte
}

// buildPlugin builds the plugin binary at out from the module's cmd/kubectl-capstan.
func buildPlugin(t *testing.T, out string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH, so the plugin cannot be built: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), pluginBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "./cmd/kubectl-capstan")
	cmd.Dir = repoRoot(t)
	start := time.Now()
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kubectl-capstan: %v\n%s", err, output)
	}
	t.Logf("built kubectl-capstan in %v", time.Since(start).Round(time.Millisecond))
}

// changeWithCause changes a ConfigSet's entries with a change cause, which the
// server records in the revision it makes.
func changeWithCause(t *testing.T, client versioned.Interface, name, cause string, change func(*v1beta1.ConfigSetSpec)) {
	t.Helper()
	cs := getPluginConfigSet(t, client, name)
	if cs.Annotations == nil {
		cs.Annotations = map[string]string{}
	}
	cs.Annotations[causeAnnotation] = cause
	if cs.Spec.Data == nil {
		cs.Spec.Data = map[string]string{}
	}
	if cs.Spec.SecretData == nil {
		cs.Spec.SecretData = map[string][]byte{}
	}
	change(&cs.Spec)
	if _, err := client.ConfigV1beta1().ConfigSets(pluginNamespace).Update(t.Context(), cs, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("changing configset %s (%s): %v", name, cause, err)
	}
}

// getPluginConfigSet gets a ConfigSet of pluginNamespace.
func getPluginConfigSet(t *testing.T, client versioned.Interface, name string) *v1beta1.ConfigSet {
	t.Helper()
	cs, err := client.ConfigV1beta1().ConfigSets(pluginNamespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting configset %s: %v", name, err)
	}
	return cs
}

// historyRow is one row of `kubectl capstan history`, without the AGE.
type historyRow struct {
	current                                   bool
	revision, author, cause, rollbackOf, keys string
}

// parseHistory parses the output of `kubectl capstan history`: a header
// and rows whose first cell is * or blank.
func parseHistory(t *testing.T, out string) []historyRow {
	t.Helper()
	lines := splitLines(out)
	if want := []string{"CURRENT", "REVISION", "AUTHOR", "CAUSE", "ROLLBACK-OF", "KEYS", "AGE"}; len(lines) == 0 || !slices.Equal(columnSplit.Split(lines[0], -1), want) {
		t.Fatalf("history header is not %q:\n%s", want, out)
	}
	var rows []historyRow
	for _, l := range lines[1:] {
		current := strings.HasPrefix(l, "*")
		cells := columnSplit.Split(strings.TrimSpace(strings.TrimPrefix(l, "*")), -1)
		if len(cells) != 6 {
			t.Fatalf("history row %q does not have 6 cells after CURRENT:\n%s", l, out)
		}
		rows = append(rows, historyRow{current: current, revision: cells[0], author: cells[1], cause: cells[2], rollbackOf: cells[3], keys: cells[4]})
	}
	return rows
}

// requireHistory checks the rows of `kubectl capstan history`.
func requireHistory(t *testing.T, out string, want []historyRow) {
	t.Helper()
	if got := parseHistory(t, out); !slices.Equal(got, want) {
		t.Errorf("history rows are\n%+v\nwant\n%+v\noutput:\n%s", got, want, out)
	}
}

// splitLines splits output into lines, without the final line break.
func splitLines(out string) []string {
	if out == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}
