package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/utils/controlplane"
)

// TestFrontProxyHeaders checks that Capstan believes X-Remote-User and
// X-Remote-Group only from kube-apiserver's front-proxy client certificate.
func TestFrontProxyHeaders(t *testing.T) {
	const ns = "e2e-frontproxy"
	createNamespace(t, ns, nil)
	path := "/apis/config.capstan.dev/v1beta1/namespaces/" + ns + "/configsets"
	spoofed := http.Header{"X-Remote-User": {"mallory"}, "X-Remote-Group": {"system:masters"}}
	janeKubeconfig, err := testCluster.UserKubeconfig("jane")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("no client certificate: anonymous, not mallory", func(t *testing.T) {
		cfg := &rest.Config{Host: testCluster.CapstanURL, TLSClientConfig: rest.TLSClientConfig{CAFile: testCluster.CapstanCAFile}}
		code, status := get(t, cfg, path, spoofed)
		if code != http.StatusForbidden && code != http.StatusUnauthorized {
			t.Fatalf("status %d (%s), want 401 or 403", code, status.Message)
		}
		if code == http.StatusForbidden {
			requireContains(t, status.Message, `User "system:anonymous" cannot list resource "configsets"`)
		}
	})

	t.Run("a client certificate that is not the front proxy's: its own user, not mallory", func(t *testing.T) {
		code, status := get(t, directConfig(restConfig(t, janeKubeconfig)), path, spoofed)
		if code != http.StatusForbidden {
			t.Fatalf("status %d (%s), want 403 for jane", code, status.Message)
		}
		requireContains(t, status.Message, `User "jane" cannot list resource "configsets"`)
	})

	t.Run("through kube-apiserver the client's X-Remote headers are replaced", func(t *testing.T) {
		code, status := get(t, restConfig(t, janeKubeconfig), path, spoofed)
		if code != http.StatusForbidden {
			t.Fatalf("status %d (%s), want 403 for jane", code, status.Message)
		}
		requireContains(t, status.Message, `User "jane" cannot list resource "configsets"`)
	})

	t.Run("control: the front-proxy certificate is believed", func(t *testing.T) {
		cfg := &rest.Config{Host: testCluster.CapstanURL, TLSClientConfig: rest.TLSClientConfig{
			CAFile:   testCluster.CapstanCAFile,
			CertFile: testCluster.FrontProxyClientCertFile,
			KeyFile:  testCluster.FrontProxyClientKeyFile,
		}}
		code, status := get(t, cfg, path, http.Header{"X-Remote-User": {controlplane.AdminUser}, "X-Remote-Group": {"system:masters"}})
		if code != http.StatusOK {
			t.Fatalf("status %d (%s), want 200: without it the checks above prove nothing", code, status.Message)
		}
	})
}

// TestProxiedRequestsAreAuthorizedOnce: kube-apiserver authorizes a request
// before its aggregator proxies it, so Capstan does not ask again with a
// SubjectAccessReview; a request that reaches Capstan directly still is
// authorized by one, and denied when RBAC denies it.
func TestProxiedRequestsAreAuthorizedOnce(t *testing.T) {
	const ns, user, n = "e2e-authz-once", "paula", 5
	createNamespace(t, ns, nil)
	_, core := adminClients(t)
	if _, err := core.RbacV1().RoleBindings(ns).Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "paula-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := testCluster.UserKubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}
	proxied := capstanClient(t, kubeconfig)
	direct, err := versioned.NewForConfig(directConfig(restConfig(t, kubeconfig)))
	if err != nil {
		t.Fatal(err)
	}
	create := func(c versioned.Interface, name string) error {
		_, err := c.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"K": "v"}},
		}, metav1.CreateOptions{})
		return err
	}
	eventually(t, authzPropagation, "paula's binding reaches kube-apiserver's RBAC", func() error { return create(proxied, "warm-up") })

	for i := range n {
		if err := create(proxied, fmt.Sprintf("set-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A get names its object, so gets of different ConfigSets ask different
	// questions, none of which Capstan's authorization cache could answer.
	getAll := func(c versioned.Interface) {
		t.Helper()
		for i := range n {
			if _, err := c.ConfigV1beta1().ConfigSets(ns).Get(t.Context(), fmt.Sprintf("set-%d", i), metav1.GetOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := delegatedAuthzRequests(t)
	getAll(proxied)
	if got := delegatedAuthzRequests(t) - before; got != 0 {
		t.Errorf("%v SubjectAccessReviews for %d proxied gets, want 0", got, n)
	}
	before = delegatedAuthzRequests(t)
	getAll(direct)
	if got := delegatedAuthzRequests(t) - before; got < n {
		t.Errorf("%v SubjectAccessReviews for %d direct gets, want at least %d", got, n, n)
	}
	_, err = direct.ConfigV1beta1().ConfigSets("default").Create(t.Context(), &configv1beta1.ConfigSet{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}, metav1.CreateOptions{})
	requireForbidden(t, err, `User "paula" cannot create resource "configsets"`)
}

// delegatedAuthzRequests is how many SubjectAccessReviews Capstan has sent.
func delegatedAuthzRequests(t *testing.T) float64 {
	t.Helper()
	cfg := directConfig(restConfig(t, testCluster.AdminKubeconfig))
	series := scrapeMetrics(t, cfg, cfg.Host)
	var total float64
	for k, v := range series {
		if strings.HasPrefix(k, "apiserver_delegated_authz_request_total") {
			total += v
		}
	}
	return total
}

// get sends a GET with extra headers and returns the status code and, for
// an error, the Status the server sent.
func get(t *testing.T, cfg *rest.Config, path string, header http.Header) (int, metav1.Status) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, cfg.Host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, body := send(t, cfg, req)
	var status metav1.Status
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(body, &status); err != nil {
			t.Fatalf("status %d with a body that is not a Status: %s", resp.StatusCode, body)
		}
	}
	return resp.StatusCode, status
}
