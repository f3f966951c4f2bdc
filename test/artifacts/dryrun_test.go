package artifacts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"capstan.dev/capstan/test/utils/controlplane"
	"capstan.dev/capstan/test/utils/kubectl"
)

// kubeconfigEnv names an admin kubeconfig of a running kube-apiserver to
// dry-run against instead of starting one (for example the admin.kubeconfig
// that hack/local-cluster.sh up writes).
const kubeconfigEnv = "CAPSTAN_E2E_KUBECONFIG"

// fieldManager is the field manager of the dry-run applies.
const fieldManager = "capstan-artifacts-test"

// psaNamespace is where the pod templates are dry-run as Pods under the
// restricted Pod Security Standard. It is created once and left behind: a
// deleted namespace stays Terminating where no kube-controller-manager runs.
const psaNamespace = "capstan-artifacts-psa"

// crdGroups are API groups that come from CustomResourceDefinitions, which a
// bare kube-apiserver does not have; their objects are left out of the
// dry-run, and checked structurally only.
var crdGroups = []string{"cert-manager.io", "monitoring.coreos.com"}

// adminKubeconfig returns an admin kubeconfig of a real kube-apiserver:
// kubeconfigEnv's, or that of the package's control plane (controlPlane).
func adminKubeconfig(t *testing.T) string {
	t.Helper()
	if path := os.Getenv(kubeconfigEnv); path != "" {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s=%s: %v", kubeconfigEnv, path, err)
		}
		return path
	}
	return controlPlane(t).AdminKubeconfig
}

// shared is the control plane of this test package: started by the first
// test that needs it, stopped by TestMain after the last one.
var shared struct {
	once    sync.Once
	cluster *controlplane.Cluster
	workDir string
	err     error
}

// controlPlane returns the package's own control plane, started with package
// cluster when its binaries are built (hack/build-tools.sh, make build), or
// fails the test saying how to build them. Tests that change what the
// control plane's harness created (TestHelmInstallUpgradeUninstall deletes
// its APIServices, Service, RBAC and namespace) use it directly, never a
// cluster that kubeconfigEnv names; a test that needs Capstan served through
// the aggregator does not belong in this package.
func controlPlane(t *testing.T) *controlplane.Cluster {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "capstan-artifacts-cluster-")
		if err != nil {
			shared.err = err
			return
		}
		shared.workDir = dir
		opts := controlplane.RepoOptions(repoRoot, dir)
		if err := opts.Binaries.Check(); err != nil {
			shared.err = fmt.Errorf("needs a real kube-apiserver: build the binaries (hack/build-tools.sh and make build, as make test-e2e does) "+
				"or set %s to an admin kubeconfig:\n%w", kubeconfigEnv, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		shared.cluster, shared.err = controlplane.Up(ctx, opts)
		if shared.err != nil {
			shared.err = fmt.Errorf("starting the control plane: %w", shared.err)
			return
		}
		t.Logf("control plane up in %.1fs", time.Since(start).Seconds())
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cluster
}

// stopControlPlane stops the package's control plane, if a test started it,
// by the PIDs it recorded, and removes its work folder.
func stopControlPlane() error {
	var err error
	if shared.cluster != nil {
		err = shared.cluster.Down()
	}
	if shared.workDir != "" && err == nil {
		err = os.RemoveAll(shared.workDir)
	}
	return err
}

// kubectlFor is the real kubectl against kubeconfig. Its runs take
// context.Background(), not the test's context: removeObjects runs in
// t.Cleanup, after that context ends.
func kubectlFor(t testing.TB, kubeconfig string) kubectl.Kubectl {
	t.Helper()
	return kubectl.Kubectl{Path: requireKubectl(t), Kubeconfig: kubeconfig}
}

// encodeYAML writes objects as one YAML stream.
func encodeYAML(t *testing.T, objs []any) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(data)
	}
	return buf.Bytes()
}

// warnings returns the lines of kubectl's stderr that are server warnings
// (PodSecurity, deprecations, unknown fields).
func warnings(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "Warning:") {
			out = append(out, line)
		}
	}
	return out
}

// ensureApplied applies objects for real unless an object of that kind and
// name already exists.
func ensureApplied(t *testing.T, kubeconfig string, objs ...any) {
	t.Helper()
	for _, o := range objs {
		u, err := toUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"get", strings.ToLower(u.GetKind()), u.GetName(), "--ignore-not-found", "-o", "name"}
		if u.GetNamespace() != "" {
			args = append(args, "--namespace="+u.GetNamespace())
		}
		out, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), "", args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		if strings.TrimSpace(out) != "" {
			continue
		}
		if _, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), string(encodeYAML(t, []any{o})),
			"apply", "--server-side", "--field-manager="+fieldManager, "-f", "-"); err != nil {
			t.Fatalf("creating %s %s: %v\n%s", u.GetKind(), u.GetName(), err, stderr)
		}
	}
}

func toUnstructured(o any) (*unstructured.Unstructured, error) {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return u, nil
	}
	data, err := yaml.Marshal(o)
	if err != nil {
		return nil, err
	}
	objs, err := decodeObjects(data)
	if err != nil || len(objs) != 1 {
		return nil, fmt.Errorf("encoding %T: %v", o, err)
	}
	return objs[0], nil
}

// TestArtifactsServerSideDryRun applies what every kustomization renders to
// a real kube-apiserver with server-side apply and --dry-run=server, so that
// its validation, defaulting and admission (field validation, RBAC escalation
// checks, Pod Security) pass on every object. It also dry-runs each pod
// template as a Pod in a namespace that enforces the restricted Pod Security
// Standard.
//
// The namespaces the manifests use are created for real first, when missing:
// namespaced objects cannot be dry-run into a namespace that does not exist.
// Some objects may exist already, made by the control plane's harness (its
// ExternalName stand-in for the Service, its APIServices, the RBAC it applied
// from artifacts/rbac), and merging into those would test the harness's
// stand-ins rather than the artifacts. So every object is first dry-run
// created, as in a fresh cluster: the server validates and admits it before it
// looks for an existing one, so AlreadyExists is a pass. Then every object
// that does not exist yet is dry-run applied server-side, as an operator does.
func TestArtifactsServerSideDryRun(t *testing.T) {
	requireKubectl(t)
	dirs := renderable(t)
	kubeconfig := adminKubeconfig(t)

	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			_, objs := render(t, dir)
			dryRun(t, kubeconfig, objs)
		})
	}

	t.Run("pod templates under restricted Pod Security", func(t *testing.T) {
		_, objs := render(t, deployDir)
		dryRunPodTemplates(t, kubeconfig, objs)
	})
}

// dryRun applies objs to kube-apiserver with --dry-run=server, as described
// at TestArtifactsServerSideDryRun. Objects of crdGroups are left out.
func dryRun(t *testing.T, kubeconfig string, objs []*unstructured.Unstructured) {
	t.Helper()
	var all, namespaces []*unstructured.Unstructured
	for _, o := range objs {
		if slices.Contains(crdGroups, o.GroupVersionKind().Group) {
			t.Logf("not dry-run (no CRD in a bare kube-apiserver): %s %s", o.GetKind(), o.GetName())
			continue
		}
		if o.GetKind() == "Namespace" {
			namespaces = append(namespaces, o)
		}
		all = append(all, o)
	}
	ensureApplied(t, kubeconfig, anys(namespaces)...)

	stdout, stderr, _ := kubectlFor(t, kubeconfig).Exec(context.Background(), string(encodeYAML(t, anys(all))), "create", "--dry-run=server", "-f", "-")
	var existing int
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "Error from server (AlreadyExists)"):
			existing++
		case strings.HasPrefix(strings.TrimSpace(line), "Warning:"):
			t.Errorf("the server warned on create: %s", line)
		default:
			t.Errorf("kubectl create --dry-run=server: %s", line)
		}
	}
	var fresh []*unstructured.Unstructured
	for _, o := range all {
		if strings.Contains(stdout, kubectlName(o)+" created (server dry run)") {
			fresh = append(fresh, o)
		}
	}
	if len(fresh)+existing != len(all) {
		t.Fatalf("of %d objects, %d dry-run created and %d already existed:\n%s%s", len(all), len(fresh), existing, stdout, stderr)
	}
	if len(fresh) == 0 {
		return
	}

	stdout, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), string(encodeYAML(t, anys(fresh))),
		"apply", "--server-side", "--dry-run=server", "--field-manager="+fieldManager, "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply --server-side --dry-run=server: %v\n%s%s", err, stdout, stderr)
	}
	if w := warnings(stderr); len(w) > 0 {
		t.Errorf("the server warned on apply:\n%s", strings.Join(w, "\n"))
	}
	for _, o := range fresh {
		if !strings.Contains(stdout, kubectlName(o)+" serverside-applied (server dry run)") {
			t.Errorf("%s was not dry-run applied:\n%s", kubectlName(o), stdout)
		}
	}
}

// dryRunPodTemplates dry-runs the pod templates of the Deployments and the
// StatefulSet among objs as Pods in a namespace that enforces the restricted
// Pod Security Standard.
func dryRunPodTemplates(t *testing.T, kubeconfig string, objs []*unstructured.Unstructured) {
	t.Helper()
	var pods []any
	serviceAccounts := map[string]bool{"default": true}
	for _, o := range objs {
		var meta metav1.ObjectMeta
		var spec corev1.PodSpec
		switch o.GetKind() {
		case "Deployment":
			d := typed[appsv1.Deployment](t, o)
			meta, spec = d.Spec.Template.ObjectMeta, d.Spec.Template.Spec
		case "StatefulSet":
			s := typed[appsv1.StatefulSet](t, o)
			meta, spec = s.Spec.Template.ObjectMeta, s.Spec.Template.Spec
			// The claims become volumes of the same name.
			for _, c := range s.Spec.VolumeClaimTemplates {
				spec.Volumes = append(spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name + "-" + s.Name + "-0"},
				}})
			}
		default:
			continue
		}
		if spec.ServiceAccountName != "" {
			serviceAccounts[spec.ServiceAccountName] = true
		}
		meta.Name, meta.Namespace = strings.ToLower(o.GetKind())+"-"+o.GetName(), psaNamespace
		pods = append(pods, &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: meta, Spec: spec})
	}
	if len(pods) != 3 {
		t.Fatalf("want the pod templates of the two Deployments and the StatefulSet, got %d", len(pods))
	}
	setup := []any{&corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: psaNamespace, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		}},
	}}
	// Admission refuses Pods whose service account does not exist.
	for name := range serviceAccounts {
		setup = append(setup, &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: psaNamespace},
		})
	}
	ensureApplied(t, kubeconfig, setup...)
	stdout, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), string(encodeYAML(t, pods)), "create", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("the pod templates are refused under the restricted Pod Security Standard: %v\n%s%s", err, stdout, stderr)
	}
	if w := warnings(stderr); len(w) > 0 {
		t.Errorf("the server warned:\n%s", strings.Join(w, "\n"))
	}
}

// kubectlName is how kubectl names an object in its output: kind.group/name.
func kubectlName(o *unstructured.Unstructured) string {
	kind := strings.ToLower(o.GetKind())
	if g := o.GroupVersionKind().Group; g != "" {
		kind += "." + g
	}
	return kind + "/" + o.GetName()
}

func anys[T any](in []T) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}
