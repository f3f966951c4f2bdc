package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	applyv1beta1 "capstan.dev/capstan/pkg/generated/applyconfiguration/config/v1beta1"
)

// configSetYAML is a v1beta1 ConfigSet manifest.
func configSetYAML(namespace, name string, data map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: config.capstan.dev/v1beta1\nkind: ConfigSet\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  data:\n", name, namespace)
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(&b, "    %s: %q\n", k, data[k])
	}
	return b.String()
}

// TestKubectlCRUD drives ConfigSets through kube-apiserver with kubectl:
// create, table output, selectors, patch, server-side apply with conflicts,
// the status subresource, dry run and delete.
func TestKubectlCRUD(t *testing.T) {
	const ns = "e2e-kubectl"
	createNamespace(t, ns, nil)
	k := newKubectl(t, testCluster.AdminKubeconfig)
	secret := base64.StdEncoding.EncodeToString([]byte("s3cret"))
	manifest := `apiVersion: config.capstan.dev/v1beta1
kind: ConfigSet
metadata:
  name: app
  namespace: e2e-kubectl
  annotations:
    config.capstan.dev/change-cause: first settings
spec:
  data:
    LOG_LEVEL: info
    MODE: blue
  secretData:
    TOKEN: ` + secret + "\n"
	jsonpath := func(name, path string) string {
		return k.Run(t, "get", "configsets", name, "-n", ns, "-o", "jsonpath="+path)
	}

	t.Run("create", func(t *testing.T) {
		out := k.RunStdin(t, manifest, "create", "-f", "-")
		requireContains(t, out, "configset.config.capstan.dev/app created")
	})

	t.Run("get prints the table", func(t *testing.T) {
		out := k.Run(t, "get", "cfgs", "-n", ns)
		header, rows := tableRows(t, out)
		if want := []string{"NAME", "KEYS", "REVISION", "IMMUTABLE", "AGE"}; !slices.Equal(header, want) {
			t.Fatalf("header %q, want %q", header, want)
		}
		if row := rowNamed(t, rows, "app", out); !slices.Equal(row[1:4], []string{"3", "1", "false"}) {
			t.Fatalf("row %q, want app 3 1 false", row)
		}
	})

	t.Run("get -o jsonpath returns the stored values", func(t *testing.T) {
		if got := jsonpath("app", "{.spec.data.LOG_LEVEL} {.spec.data.MODE} {.spec.secretData.TOKEN} {.status.currentRevision} {.spec.revisionHistoryLimit}"); got != "info blue "+secret+" 1 10" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("label selector", func(t *testing.T) {
		other := strings.Replace(configSetYAML(ns, "other", map[string]string{"A": "1"}), "metadata:\n", "metadata:\n  labels:\n    tier: backend\n", 1)
		k.RunStdin(t, other, "create", "-f", "-")
		if out := strings.TrimSpace(k.Run(t, "get", "cfgs", "-n", ns, "-l", "tier=backend", "-o", "name")); out != "configset.config.capstan.dev/other" {
			t.Fatalf("-l tier=backend: %q, want only configset.config.capstan.dev/other", out)
		}
	})

	t.Run("merge patch makes revision 2", func(t *testing.T) {
		out := k.Run(t, "patch", "cfgs", "app", "-n", ns, "--type=merge", "-p", `{"spec":{"data":{"LOG_LEVEL":"debug"}}}`)
		requireContains(t, out, "configset.config.capstan.dev/app patched")
		if got := jsonpath("app", "{.spec.data.LOG_LEVEL} {.status.currentRevision} {.metadata.generation}"); got != "debug 2 2" {
			t.Fatalf("after patch: %q, want \"debug 2 2\"", got)
		}
	})

	t.Run("status subresource changes conditions, never spec", func(t *testing.T) {
		patch := `{"spec":{"data":{"LOG_LEVEL":"error"}},"status":{"conditions":[{"type":"Applied","status":"True","reason":"Rollout","message":"revision 2 applied","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}`
		k.Run(t, "patch", "cfgs", "app", "-n", ns, "--subresource=status", "--type=merge", "-p", patch)
		if got := jsonpath("app", "{.status.conditions[0].type} {.status.conditions[0].message} {.spec.data.LOG_LEVEL} {.status.currentRevision}"); got != "Applied revision 2 applied debug 2" {
			t.Fatalf("after the status patch: %q, want \"Applied revision 2 applied debug 2\"", got)
		}
	})

	t.Run("server-side apply owns fields and reports conflicts", func(t *testing.T) {
		applied := configSetYAML(ns, "applied", map[string]string{"LOG_LEVEL": "info", "PORT": "8080"})
		requireContains(t, k.RunStdin(t, applied, "apply", "--server-side", "-f", "-"), "configset.config.capstan.dev/applied serverside-applied")
		changed := configSetYAML(ns, "applied", map[string]string{"LOG_LEVEL": "warn", "PORT": "8080"})
		k.RunStdin(t, changed, "apply", "--server-side", "-f", "-")
		if got := jsonpath("applied", "{.spec.data.LOG_LEVEL} {.status.currentRevision}"); got != "warn 2" {
			t.Fatalf("after the second apply: %q, want \"warn 2\"", got)
		}
		if got := jsonpath("applied", `{.metadata.managedFields[?(@.manager=="kubectl")].operation}`); got != "Apply" {
			t.Fatalf("managedFields of manager kubectl: operation %q, want Apply", got)
		}
		rival := configSetYAML(ns, "applied", map[string]string{"LOG_LEVEL": "error"})
		stderr := k.Fail(t, rival, "apply", "--server-side", "--field-manager=rival", "-f", "-")
		requireContains(t, stderr, "conflict", `.spec.data.LOG_LEVEL`, `"kubectl"`)
		k.RunStdin(t, rival, "apply", "--server-side", "--field-manager=rival", "--force-conflicts", "-f", "-")
		if got := jsonpath("applied", "{.spec.data.LOG_LEVEL} {.spec.data.PORT} {.status.currentRevision}"); got != "error 8080 3" {
			t.Fatalf("after the forced apply: %q, want \"error 8080 3\" (PORT still owned by kubectl)", got)
		}
	})

	t.Run("server dry run stores nothing", func(t *testing.T) {
		out := k.RunStdin(t, configSetYAML(ns, "dry", map[string]string{"A": "1"}), "create", "--dry-run=server", "-f", "-")
		requireContains(t, out, "configset.config.capstan.dev/dry created (server dry run)")
		_, stderr, err := k.Try(t, "", "get", "cfgs", "dry", "-n", ns)
		if err == nil {
			t.Fatal("the dry-run ConfigSet exists")
		}
		requireContains(t, stderr, `configsets.config.capstan.dev "dry" not found`)
	})

	t.Run("delete", func(t *testing.T) {
		requireContains(t, k.Run(t, "delete", "cfgs", "app", "-n", ns), `configset.config.capstan.dev "app" deleted`)
		_, stderr, err := k.Try(t, "", "get", "cfgs", "app", "-n", ns)
		if err == nil {
			t.Fatal("app still exists after delete")
		}
		requireContains(t, stderr, `configsets.config.capstan.dev "app" not found`)
	})
}

// TestKubectlWatch follows ConfigSets with `kubectl get -w` through the
// aggregator and sees an add, an update and a delete as they happen.
func TestKubectlWatch(t *testing.T) {
	const ns = "e2e-kubectl-watch"
	createNamespace(t, ns, nil)
	k := newKubectl(t, testCluster.AdminKubeconfig)
	k.RunStdin(t, configSetYAML(ns, "before", map[string]string{"A": "1"}), "create", "-f", "-")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := k.Command(ctx, "", "get", "configsets", "-n", ns, "--watch", "--output-watch-events")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	lines := make(chan []string, 100)
	go func() {
		defer close(lines)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- strings.Fields(scanner.Text())
		}
	}()
	// expect reads lines until one starts with event and name, and checks its revision.
	expect := func(event, name, revision string) {
		t.Helper()
		for {
			select {
			case f, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl get -w ended before %s %s; stderr:\n%s", event, name, stderr.String())
				}
				// EVENT NAME KEYS REVISION IMMUTABLE AGE
				if len(f) >= 4 && f[0] == event && f[1] == name {
					if f[3] != revision {
						t.Fatalf("%s %s at revision %s, want %s", event, name, f[3], revision)
					}
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s %s from kubectl get -w; stderr:\n%s", event, name, stderr.String())
			}
		}
	}
	// The initial list arrives as ADDED too, which also shows the watch is open.
	expect("ADDED", "before", "1")
	k.RunStdin(t, configSetYAML(ns, "watched", map[string]string{"A": "1"}), "create", "-f", "-")
	expect("ADDED", "watched", "1")
	k.Run(t, "patch", "cfgs", "watched", "-n", ns, "--type=merge", "-p", `{"spec":{"data":{"A":"2"}}}`)
	expect("MODIFIED", "watched", "2")
	k.Run(t, "delete", "cfgs", "watched", "-n", ns)
	expect("DELETED", "watched", "2")
}

// TestClientsetWatch watches ConfigSets with the generated clientset through
// kube-apiserver from a list's resourceVersion.
func TestClientsetWatch(t *testing.T) {
	const ns = "e2e-clientset-watch"
	createNamespace(t, ns, nil)
	client, _ := adminClients(t)
	ctx := t.Context()
	sets := client.ConfigV1beta1().ConfigSets(ns)

	list, err := sets.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := sets.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	cs := &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "watched"},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"COLOR": "red"}},
	}
	created, err := sets.Create(ctx, cs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Spec.Data["COLOR"] = "green"
	if _, err := sets.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sets.Delete(ctx, "watched", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	want := []struct {
		typ      watch.EventType
		color    string
		revision int64
	}{{watch.Added, "red", 1}, {watch.Modified, "green", 2}, {watch.Deleted, "green", 2}}
	timeout := time.After(30 * time.Second)
	for _, w1 := range want {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed before %s", w1.typ)
			}
			got, isSet := ev.Object.(*configv1beta1.ConfigSet)
			if !isSet {
				t.Fatalf("event %s carries %T: %v", ev.Type, ev.Object, ev.Object)
			}
			if ev.Type != w1.typ || got.Name != "watched" || got.Spec.Data["COLOR"] != w1.color || got.Status.CurrentRevision != w1.revision {
				t.Fatalf("event %s %s COLOR=%s revision %d, want %s watched COLOR=%s revision %d",
					ev.Type, got.Name, got.Spec.Data["COLOR"], got.Status.CurrentRevision, w1.typ, w1.color, w1.revision)
			}
		case <-timeout:
			t.Fatalf("no %s event within 30s", w1.typ)
		}
	}
}

// TestClientsetApply uses the generated apply configurations through
// kube-apiserver: create by apply, change by apply, and a conflict between
// two field managers.
func TestClientsetApply(t *testing.T) {
	const ns = "e2e-clientset-apply"
	createNamespace(t, ns, nil)
	client, _ := adminClients(t)
	ctx := t.Context()
	sets := client.ConfigV1beta1().ConfigSets(ns)

	cfg := applyv1beta1.ConfigSet("svc", ns).
		WithLabels(map[string]string{"app": "svc"}).
		WithSpec(applyv1beta1.ConfigSetSpec().WithData(map[string]string{"REPLICAS": "2", "REGION": "eu"}))
	got, err := sets.Apply(ctx, cfg, metav1.ApplyOptions{FieldManager: "deployer"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.CurrentRevision != 1 || got.Spec.Data["REPLICAS"] != "2" || got.Labels["app"] != "svc" {
		t.Fatalf("after the first apply: %+v", got)
	}
	cfg.Spec.WithData(map[string]string{"REPLICAS": "3"})
	if got, err = sets.Apply(ctx, cfg, metav1.ApplyOptions{FieldManager: "deployer"}); err != nil {
		t.Fatal(err)
	}
	if got.Status.CurrentRevision != 2 || got.Spec.Data["REPLICAS"] != "3" {
		t.Fatalf("after the second apply: revision %d REPLICAS %q, want 2 and 3", got.Status.CurrentRevision, got.Spec.Data["REPLICAS"])
	}
	rival := applyv1beta1.ConfigSet("svc", ns).WithSpec(applyv1beta1.ConfigSetSpec().WithData(map[string]string{"REPLICAS": "9"}))
	_, err = sets.Apply(ctx, rival, metav1.ApplyOptions{FieldManager: "rival"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "deployer"`) {
		t.Fatalf("apply by a second manager: %v, want a 409 conflict with \"deployer\"", err)
	}
	// Reading through the aggregator returns the same object as the apply did.
	read, err := sets.Get(ctx, "svc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if read.ResourceVersion != got.ResourceVersion || read.Spec.Data["REPLICAS"] != "3" {
		t.Fatalf("get after the refused apply: resourceVersion %s REPLICAS %q, want %s and 3", read.ResourceVersion, read.Spec.Data["REPLICAS"], got.ResourceVersion)
	}
}
