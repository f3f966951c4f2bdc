package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/test/utils/kubectl"
	"capstan.dev/capstan/test/utils/repo"
)

// kubectlTimeout bounds one kubectl invocation; discovery against a fresh
// server and explain's OpenAPI download are the slow ones.
const kubectlTimeout = 90 * time.Second

// TestKubectl drives the in-process server with the real kubectl and the
// example manifests users start from.
func TestKubectl(t *testing.T) {
	kubectlPath := kubectl.Require(t)
	examples := filepath.Join(repoRoot(t), "artifacts", "examples")
	configSetYAML := filepath.Join(examples, "configset.yaml")
	alphaYAML := filepath.Join(examples, "configset-v1alpha1.yaml")

	// A server of its own: the test backs up and restores every ConfigSet of the cluster (get -A).
	ts := capstantesting.StartTestServer(t)
	client := newClientset(t, ts)
	k := kubectl.Kubectl{Path: kubectlPath, Kubeconfig: ts.Kubeconfig, CacheDir: t.TempDir(), Home: t.TempDir(),
		Env: []string{"KUBECONFIG=" + ts.Kubeconfig}, Timeout: kubectlTimeout}
	ctx := t.Context()

	t.Run("create -f configset.yaml", func(t *testing.T) {
		out := k.Run(t, "create", "-f", configSetYAML)
		requireContains(t, out, "configset.config.capstan.dev/checkout created")
	})

	t.Run("get configsets prints the table", func(t *testing.T) {
		out := k.Run(t, "get", "configsets", "-n", "default")
		header, rows := tableLines(t, out)
		if want := []string{"NAME", "KEYS", "REVISION", "IMMUTABLE", "AGE"}; !slices.Equal(header, want) {
			t.Fatalf("header is %q, want %q; output:\n%s", header, want, out)
		}
		requireTableRow(t, rows, out, "checkout", "4", "1", "false")
	})

	t.Run("get cfgs -o wide adds columns", func(t *testing.T) {
		out := k.Run(t, "get", "cfgs", "-n", "default", "-o", "wide")
		header, rows := tableLines(t, out)
		if want := []string{"NAME", "KEYS", "REVISION", "IMMUTABLE", "AGE"}; len(header) <= len(want) || !slices.Equal(header[:len(want)], want) {
			t.Fatalf("wide header is %q, want %q followed by wide columns; output:\n%s", header, want, out)
		}
		row := requireTableRow(t, rows, out, "checkout", "4", "1", "false")
		if len(row) != len(header) {
			t.Errorf("wide row %q has %d cells for %d columns; output:\n%s", row, len(row), len(header), out)
		}
	})

	t.Run("get capstan -A lists it by category", func(t *testing.T) {
		out := k.Run(t, "get", "capstan", "-A")
		requireContains(t, out, "configset.config.capstan.dev/checkout")
		if !regexp.MustCompile(`(?m)^default\s+configset\.config\.capstan\.dev/checkout\s+4\s+1\s+false\s`).MatchString(out) {
			t.Errorf("no row `default configset.config.capstan.dev/checkout 4 1 false` in:\n%s", out)
		}
	})

	t.Run("apply --server-side of a changed manifest makes revision 2", func(t *testing.T) {
		manifest, err := os.ReadFile(configSetYAML)
		if err != nil {
			t.Fatal(err)
		}
		changed := strings.Replace(string(manifest), "LOG_LEVEL: info", "LOG_LEVEL: warn", 1)
		if changed == string(manifest) {
			t.Fatalf("%s has no `LOG_LEVEL: info` line to change", configSetYAML)
		}
		path := filepath.Join(t.TempDir(), "configset.yaml")
		if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		// The fields were set by `kubectl create` (manager kubectl-create), so
		// taking them over is a conflict unless forced, as with any kind.
		out := k.Run(t, "apply", "--server-side", "--force-conflicts", "-f", path)
		requireContains(t, out, "configset.config.capstan.dev/checkout serverside-applied")

		cs, err := client.ConfigV1beta1().ConfigSets("default").Get(ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting checkout: %v", err)
		}
		if cs.Spec.Data["LOG_LEVEL"] != "warn" || cs.Status.CurrentRevision != 2 {
			t.Errorf("after apply: LOG_LEVEL=%q, currentRevision=%d; want warn, 2", cs.Spec.Data["LOG_LEVEL"], cs.Status.CurrentRevision)
		}
		if !slices.ContainsFunc(cs.ManagedFields, func(m metav1.ManagedFieldsEntry) bool {
			return m.Manager == "kubectl" && m.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Errorf("managedFields %+v have no Apply entry of manager kubectl", cs.ManagedFields)
		}
		table := k.Run(t, "get", "configsets", "-n", "default")
		_, rows := tableLines(t, table)
		requireTableRow(t, rows, table, "checkout", "4", "2", "false")

		// Applying the same manifest again changes nothing.
		k.Run(t, "apply", "--server-side", "-f", path)
		again, err := client.ConfigV1beta1().ConfigSets("default").Get(ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting checkout: %v", err)
		}
		if again.Status.CurrentRevision != 2 || again.ResourceVersion != cs.ResourceVersion {
			t.Errorf("re-applying the same manifest: revision %d, resourceVersion %s; want 2, %s unchanged",
				again.Status.CurrentRevision, again.ResourceVersion, cs.ResourceVersion)
		}
	})

	t.Run("patch --subresource=status sets a condition", func(t *testing.T) {
		before, err := client.ConfigV1beta1().ConfigSets("default").Get(ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting checkout: %v", err)
		}
		patch := `{"status":{"conditions":[{"type":"Applied","status":"True","reason":"RevisionApplied",` +
			`"message":"revision 2 is live","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}`
		out := k.Run(t, "patch", "configset", "checkout", "-n", "default", "--subresource=status", "--type=merge", "-p", patch)
		requireContains(t, out, "configset.config.capstan.dev/checkout patched")

		cs, err := client.ConfigV1beta1().ConfigSets("default").Get(ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting checkout: %v", err)
		}
		if len(cs.Status.Conditions) != 1 {
			t.Fatalf("conditions are %+v, want the one Applied condition", cs.Status.Conditions)
		}
		c := cs.Status.Conditions[0]
		if c.Type != "Applied" || c.Status != metav1.ConditionTrue || c.Reason != "RevisionApplied" || c.Message != "revision 2 is live" {
			t.Errorf("condition is %+v, want Applied=True RevisionApplied \"revision 2 is live\"", c)
		}
		if cs.Status.CurrentRevision != before.Status.CurrentRevision || cs.Generation != before.Generation ||
			cs.Spec.Data["LOG_LEVEL"] != before.Spec.Data["LOG_LEVEL"] {
			t.Errorf("the status patch changed revision %d→%d, generation %d→%d or data; it may only change conditions",
				before.Status.CurrentRevision, cs.Status.CurrentRevision, before.Generation, cs.Generation)
		}
	})

	t.Run("explain configsets.spec", func(t *testing.T) {
		out := k.Run(t, "explain", "configsets.spec")
		requireContains(t, out, "VERSION:    v1beta1")
		for _, field := range []string{"data", "secretData", "immutable", "revisionHistoryLimit"} {
			requireExplainField(t, out, field)
		}
		if regexp.MustCompile(`(?m)^\s*entries\s+<`).MatchString(out) {
			t.Errorf("v1beta1 explain lists the field entries, which only v1alpha1 has:\n%s", out)
		}
	})

	t.Run("explain configsets.spec --api-version=config.capstan.dev/v1alpha1", func(t *testing.T) {
		out := k.Run(t, "explain", "configsets.spec", "--api-version=config.capstan.dev/v1alpha1")
		requireContains(t, out, "VERSION:    v1alpha1")
		for _, field := range []string{"entries", "immutable", "revisionHistoryLimit"} {
			requireExplainField(t, out, field)
		}
		if regexp.MustCompile(`(?m)^\s*secretData\s+<`).MatchString(out) {
			t.Errorf("v1alpha1 explain lists the field secretData, which only v1beta1 has:\n%s", out)
		}
	})

	t.Run("create -f configset-v1alpha1.yaml", func(t *testing.T) {
		out := k.Run(t, "create", "-f", alphaYAML)
		requireContains(t, out, "configset.config.capstan.dev/search created")
		cs, err := client.ConfigV1beta1().ConfigSets("default").Get(ctx, "search", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting search through v1beta1: %v", err)
		}
		if cs.Spec.Data["INDEX_SHARDS"] != "4" || string(cs.Spec.SecretData["SEARCH_API_TOKEN"]) != "token-123" ||
			len(cs.Spec.Data) != 1 || len(cs.Spec.SecretData) != 1 {
			t.Errorf("search through v1beta1: data %v, secretData %q; want INDEX_SHARDS=4 and SEARCH_API_TOKEN=token-123",
				cs.Spec.Data, cs.Spec.SecretData)
		}
		table := k.Run(t, "get", "configsets", "-n", "default")
		_, rows := tableLines(t, table)
		requireTableRow(t, rows, table, "search", "2", "1", "false")
	})

	t.Run("delete -f configset.yaml", func(t *testing.T) {
		out := k.Run(t, "delete", "-f", configSetYAML)
		requireContains(t, out, `configset.config.capstan.dev "checkout" deleted`)

		stdout, stderr, err := k.Try(t, "", "get", "configset", "checkout", "-n", "default")
		if err == nil {
			t.Fatalf("kubectl get of the deleted ConfigSet succeeded:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
		requireContains(t, stderr, `Error from server (NotFound): configsets.config.capstan.dev "checkout" not found`)
		if _, err := client.ConfigV1beta1().ConfigSets("default").Get(ctx, "checkout", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("getting checkout after delete: %v, want NotFound", err)
		}
		// The other ConfigSet is still there.
		_, rows := tableLines(t, k.Run(t, "get", "configsets", "-n", "default"))
		if len(rows) != 1 || rows[0][0] != "search" {
			t.Errorf("after deleting checkout, rows are %q, want only search", rows)
		}
	})

	// The simplest backup and restore: `get -o yaml` of several objects
	// writes a v1 List, which kubectl maps only when the server's discovery
	// has the core group.
	t.Run("apply -f of a List written by get -o yaml restores it", func(t *testing.T) {
		backup := filepath.Join(t.TempDir(), "all.yaml")
		if err := os.WriteFile(backup, []byte(k.Run(t, "get", "configsets", "-A", "-o", "yaml")), 0o600); err != nil {
			t.Fatal(err)
		}
		manifest, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		requireContains(t, string(manifest), "kind: List")
		k.Run(t, "delete", "configset", "search", "-n", "default")
		out := k.Run(t, "apply", "-f", backup)
		requireContains(t, out, "configset.config.capstan.dev/search created")
		if _, err := client.ConfigV1beta1().ConfigSets("default").Get(ctx, "search", metav1.GetOptions{}); err != nil {
			t.Errorf("search after apply of the backup: %v", err)
		}
		// Discovery stays whole: the empty core group is no discovery failure.
		requireContains(t, k.Run(t, "api-resources"), "configsets")
	})
}

// kubectlFails runs kubectl, requires it to fail with exit code 1 and
// nothing on stdout, and returns its stderr.
func kubectlFails(t *testing.T, k kubectl.Kubectl, args ...string) string {
	t.Helper()
	stdout, stderr, code := k.ExitCode(t, args...)
	if code != 1 || stdout != "" {
		t.Fatalf("kubectl %s exited with %d, want 1 and no output\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	t.Logf("kubectl %s (exit %d):\n%s", strings.Join(args, " "), code, stderr)
	return stderr
}

// repoRoot is the checkout's root, failing the test when there is none.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// columnSplit separates kubectl's table columns: two or more spaces.
var columnSplit = regexp.MustCompile(`\s{2,}`)

// tableLines splits kubectl's table output into the header and the rows.
func tableLines(t *testing.T, out string) (header []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		t.Fatalf("kubectl printed no table:\n%s", out)
	}
	header = columnSplit.Split(strings.TrimSpace(lines[0]), -1)
	for _, l := range lines[1:] {
		rows = append(rows, columnSplit.Split(strings.TrimSpace(l), -1))
	}
	return header, rows
}

// requireTableRow finds the row whose first cell is want[0] and checks its
// next cells; it returns the row.
func requireTableRow(t *testing.T, rows [][]string, out string, want ...string) []string {
	t.Helper()
	for _, r := range rows {
		if len(r) > 0 && r[0] == want[0] {
			if len(r) < len(want) || !slices.Equal(r[:len(want)], want) {
				t.Errorf("row is %q, want it to start with %q; output:\n%s", r, want, out)
			}
			return r
		}
	}
	t.Fatalf("no row %q in:\n%s", want[0], out)
	return nil
}

// requireContains fails unless out contains want.
func requireContains(t *testing.T, out, want string) {
	t.Helper()
	if !strings.Contains(out, want) {
		t.Errorf("output does not contain %q:\n%s", want, out)
	}
}

// requireExplainField fails unless kubectl explain lists field, as a line
// "  field	<type>".
func requireExplainField(t *testing.T, out, field string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(field) + `\s+<`).MatchString(out) {
		t.Errorf("kubectl explain does not list the field %s:\n%s", field, out)
	}
}
