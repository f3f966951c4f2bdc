package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

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
	resp, err := httpClient(t, cfg).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var status metav1.Status
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(body, &status); err != nil {
			t.Fatalf("status %d with a body that is not a Status: %s", resp.StatusCode, body)
		}
	}
	return resp.StatusCode, status
}
