// Package e2e tests Capstan behind a real kube-apiserver: TestMain starts the
// control plane of package controlplane once (etcd, kube-apiserver v1.36.3 with the
// aggregation layer, kube-controller-manager, Capstan in aggregated mode with
// its own TLS etcd) and every test talks to it through kube-apiserver with the
// real kubectl and the generated clientset, as users do. It builds nothing:
// `make test-e2e` builds the binaries first.
//
// Each test works in namespaces of its own and leaves them behind; the whole
// cluster goes away at the end.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	clientset "capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/utils/controlplane"
	"capstan.dev/capstan/test/utils/kubectl"
	"capstan.dev/capstan/test/utils/repo"
)

// Shared by every test; set by TestMain.
var (
	// testCluster is the running control plane.
	testCluster *controlplane.Cluster
	// repoRoot is the checkout, for binaries and artifacts.
	repoRoot string
	// kubectlPath is the real kubectl.
	kubectlPath string
)

// keepWorkDirEnv, when set, keeps the cluster's work folder (logs,
// certificates) even after a passing run.
const keepWorkDirEnv = "CAPSTAN_E2E_KEEP"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := repo.Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	kubectlPath, err = kubectl.Find()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	workDir, err := os.MkdirTemp("", "capstan-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	opts := controlplane.RepoOptions(root, workDir)
	if err := opts.Binaries.Check(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the end-to-end tests need built binaries; `make test-e2e` builds them "+
			"(or run hack/build-tools.sh and make build):\n%v\n", err)
		return 1
	}
	opts.Progress = os.Stderr
	// CBOR is offered only with its (alpha) feature gate, as in kube-apiserver;
	// TestCBOR sends it through the aggregator. Clients that do not ask for
	// CBOR get what they got without the gate.
	opts.CapstanArgs = []string{"--feature-gates=CBORServingAndStorage=true"}

	// Ctrl-C or SIGTERM stops the cluster before the tests exit. The
	// processes would die with this one anyway (Pdeathsig); this way they
	// shut down cleanly.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running atomic.Pointer[controlplane.Cluster]
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	go func() {
		select {
		case sig := <-signals:
			fmt.Fprintf(os.Stderr, "e2e: %v; stopping the cluster\n", sig)
			// During Up, ending its context makes it stop what it started
			// and fail; afterwards the tests are stopped here.
			cancel()
			if c := running.Load(); c != nil {
				_ = c.Down()
				os.Exit(1)
			}
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	testCluster, err = controlplane.Up(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: starting the cluster in %s: %v\n", workDir, err)
		return 1
	}
	running.Store(testCluster)
	fmt.Fprintf(os.Stderr, "e2e: cluster up in %.1fs (work folder %s)\n", time.Since(start).Seconds(), workDir)

	code := m.Run()

	if err := testCluster.Down(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the cluster:", err)
		code = max(code, 1)
	}
	if code == 0 && os.Getenv(keepWorkDirEnv) == "" {
		os.RemoveAll(workDir)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: logs, certificates and kubeconfigs kept in %s\n", workDir)
	}
	return code
}

// restConfig loads a kubeconfig.
func restConfig(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("loading %s: %v", kubeconfig, err)
	}
	return cfg
}

// capstanClient is the generated clientset through kube-apiserver, with the
// credentials of kubeconfig.
func capstanClient(t *testing.T, kubeconfig string) *clientset.Clientset {
	t.Helper()
	c, err := clientset.NewForConfig(restConfig(t, kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// adminClients returns Capstan's clientset and the core clientset, both as the admin.
func adminClients(t *testing.T) (*clientset.Clientset, *kubernetes.Clientset) {
	t.Helper()
	core, err := kubernetes.NewForConfig(restConfig(t, testCluster.AdminKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	return capstanClient(t, testCluster.AdminKubeconfig), core
}

// createNamespace creates a namespace with labels for one test.
func createNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	_, core := adminClients(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := core.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// eventually calls f until it returns nil, failing the test with f's last
// error after timeout. Admission plugins, authorization caches and the
// aggregator's availability check all take effect a little after the change
// that drives them.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// newKubectl returns the real kubectl for kubeconfig with a fresh home and
// discovery cache of its own, so that runs do not share state through
// ~/.kube, and the checkout's bin/ (kubectl-capstan) first on its PATH.
func newKubectl(t *testing.T, kubeconfig string) kubectl.Kubectl {
	home := t.TempDir()
	return kubectl.Kubectl{
		Path:       kubectlPath,
		Kubeconfig: kubeconfig,
		Home:       home,
		CacheDir:   filepath.Join(home, "cache"),
		Env:        []string{"KUBECONFIG=", "PATH=" + filepath.Join(repoRoot, "bin") + string(os.PathListSeparator) + os.Getenv("PATH")},
		Timeout:    90 * time.Second,
	}
}

// requireContains fails unless s contains every want.
func requireContains(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("%q not found in:\n%s", w, s)
		}
	}
}

// tableRows splits kubectl table output into the header and rows of fields.
func tableRows(t *testing.T, out string) ([]string, [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("no table in kubectl output %q", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return strings.Fields(lines[0]), rows
}

// rowNamed returns the row whose first field is name.
func rowNamed(t *testing.T, rows [][]string, name, out string) []string {
	t.Helper()
	for _, r := range rows {
		if len(r) > 0 && r[0] == name {
			return r
		}
	}
	t.Fatalf("no row %q in:\n%s", name, out)
	return nil
}

// httpClient returns an HTTP client with cfg's TLS settings and credentials.
func httpClient(t *testing.T, cfg *rest.Config) *http.Client {
	t.Helper()
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

// send sends req with cfg's TLS settings and credentials and returns the
// response with its body read (and closed).
func send(t *testing.T, cfg *rest.Config, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := httpClient(t, cfg).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// directConfig turns a kube-apiserver client configuration into one for
// Capstan's own port, with the same credentials: Capstan trusts the cluster's
// client CA, which it reads from kube-system.
func directConfig(cfg *rest.Config) *rest.Config {
	direct := rest.CopyConfig(cfg)
	direct.Host = testCluster.CapstanURL
	direct.TLSClientConfig.CAData = nil
	direct.TLSClientConfig.CAFile = testCluster.CapstanCAFile
	return direct
}
