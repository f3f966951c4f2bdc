package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/reliability/harness"
	"capstan.dev/capstan/test/utils/controlplane"

	"capstan.dev/capstan/test/utils/repo"
)

const fpConfigSets = "/apis/config.capstan.dev/v1beta1/namespaces/default/configsets"

// fpAsAdmin are the headers a front proxy sends for the cluster admin.
var fpAsAdmin = map[string]string{"X-Remote-User": controlplane.AdminUser, "X-Remote-Group": "system:masters"}

// fpStartCluster starts etcd, kube-apiserver and Capstan in aggregated mode
// and stops them when the test ends; the work folder is kept on failure.
func fpStartCluster(t *testing.T) *controlplane.Cluster {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	workDir, err := os.MkdirTemp("", "capstan-frontproxy-")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := controlplane.Up(context.Background(), controlplane.RepoOptions(root, workDir))
	if err != nil {
		t.Fatalf("starting the cluster in %s: %v", workDir, err)
	}
	t.Logf("cluster up in %.1fs: kube-apiserver %s, Capstan %s", time.Since(start).Seconds(), c.KubeAPIServerURL, c.CapstanURL)
	t.Cleanup(func() {
		if err := c.Down(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
		if t.Failed() {
			t.Logf("logs and certificates kept in %s", workDir)
		} else {
			os.RemoveAll(workDir)
		}
	})
	return c
}

// fpProbe sends requests straight to Capstan's secure port with one client
// certificate, sent whatever CAs the server asks for, and never follows redirects.
type fpProbe struct {
	base string
	http *http.Client
}

func fpNewProbe(t *testing.T, c *controlplane.Cluster, cert tls.Certificate) *fpProbe {
	t.Helper()
	caPEM, err := os.ReadFile(c.CapstanCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", c.CapstanCAFile)
	}
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}
	return &fpProbe{base: c.CapstanURL, http: &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends the request with headers and returns the status code and body;
// it fails the test on a redirect.
func (p *fpProbe) do(t *testing.T, method, path string, body []byte, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("%s %s: redirect %d to %q", method, path, resp.StatusCode, resp.Header.Get("Location"))
	}
	return resp.StatusCode, string(data)
}

// fpStatus decodes a metav1.Status body and checks its code matches the response's.
func fpStatus(t *testing.T, what string, code int, body string) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Kind != "Status" || int(st.Code) != code {
		t.Fatalf("%s: HTTP %d with a body that is not a matching Status (%v): %.500s", what, code, err, body)
	}
	return st
}

func fpConfigSetJSON(name string) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":%q},"spec":{"data":{"k":"v"}}}`, name)
}

// TestFrontProxyCertificateNames checks that Capstan in aggregated mode
// believes X-Remote-* headers only from a certificate that both chains to the
// front-proxy CA and carries an allowed name (--requestheader-allowed-names),
// and refuses with 401, writing nothing, any other front-proxy-signed name
// or an allowed name from another CA.
func TestFrontProxyCertificateNames(t *testing.T) {
	c := fpStartCluster(t)
	frontProxyCA, err := harness.LoadCA(c.FrontProxyCAFile, c.FrontProxyCAKeyFile)
	if err != nil {
		t.Fatalf("loading the front-proxy CA: %v", err)
	}
	clientCA, err := harness.LoadCA(c.ClusterCAFile, c.ClusterCAKeyFile)
	if err != nil {
		t.Fatalf("loading the client CA: %v", err)
	}
	// Same subject as the real front-proxy CA, different key.
	rogueCA, err := harness.NewCA(frontProxyCA.Cert.Subject.CommonName)
	if err != nil {
		t.Fatal(err)
	}
	mustCert := func(cert tls.Certificate, err error) tls.Certificate {
		if err != nil {
			t.Fatalf("issuing a client certificate: %v", err)
		}
		return cert
	}
	adminCfg, err := c.AdminRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := versioned.NewForConfig(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	// exists asks kube-apiserver, as the admin, whether Capstan stored name.
	exists := func(t *testing.T, name string) bool {
		t.Helper()
		_, err := admin.ConfigV1beta1().ConfigSets("default").Get(context.Background(), name, metav1.GetOptions{})
		switch {
		case err == nil:
			return true
		case apierrors.IsNotFound(err):
			return false
		}
		t.Fatalf("admin GET configset %s through kube-apiserver: %v", name, err)
		return false
	}

	t.Run("control: allowed name from the front-proxy CA is authenticated as the header user", func(t *testing.T) {
		p := fpNewProbe(t, c, mustCert(frontProxyCA.ValidClientCert(controlplane.FrontProxyClientName)))
		if code, body := p.do(t, http.MethodGet, fpConfigSets, nil, fpAsAdmin); code != http.StatusOK {
			t.Fatalf("GET list: HTTP %d, want 200 (without it the refusals below prove nothing): %.500s", code, body)
		}
		code, body := p.do(t, http.MethodPost, fpConfigSets, fpConfigSetJSON("fp-allowed"), fpAsAdmin)
		if code != http.StatusCreated {
			t.Fatalf("POST: HTTP %d, want 201: %.500s", code, body)
		}
		if !exists(t, "fp-allowed") {
			t.Fatal("fp-allowed was created (201) but kube-apiserver does not find it: the absence checks below prove nothing")
		}
		t.Logf("GET list: 200, POST: 201, fp-allowed found through kube-apiserver")
	})

	refused := []struct {
		name, object string
		cert         tls.Certificate
	}{
		{"front-proxy CA, name not allowed", "fp-mallory", mustCert(frontProxyCA.ValidClientCert("mallory-proxy"))},
		{"allowed name from a rogue CA", "fp-rogue", mustCert(rogueCA.ValidClientCert(controlplane.FrontProxyClientName))},
	}
	for _, r := range refused {
		t.Run(r.name+": 401, nothing written", func(t *testing.T) {
			p := fpNewProbe(t, c, r.cert)
			for _, req := range []struct {
				method string
				body   []byte
			}{{http.MethodGet, nil}, {http.MethodPost, fpConfigSetJSON(r.object)}} {
				code, body := p.do(t, req.method, fpConfigSets, req.body, fpAsAdmin)
				if code != http.StatusUnauthorized {
					t.Fatalf("%s as %q: HTTP %d, want 401: %.500s", req.method, r.cert.Leaf.Subject.CommonName, code, body)
				}
				st := fpStatus(t, req.method, code, body)
				if st.Reason != metav1.StatusReasonUnauthorized {
					t.Errorf("%s: reason %q, want Unauthorized", req.method, st.Reason)
				}
				t.Logf("%s: %d %s %q", req.method, code, st.Reason, st.Message)
			}
			if exists(t, r.object) {
				t.Fatalf("%s exists after a POST that was refused with 401", r.object)
			}
		})
	}

	t.Run("client CA certificate named front-proxy-client: its own user, headers ignored", func(t *testing.T) {
		p := fpNewProbe(t, c, mustCert(clientCA.ValidClientCert(controlplane.FrontProxyClientName)))
		for _, req := range []struct {
			method string
			body   []byte
		}{{http.MethodGet, nil}, {http.MethodPost, fpConfigSetJSON("fp-client-ca")}} {
			code, body := p.do(t, req.method, fpConfigSets, req.body, fpAsAdmin)
			if code != http.StatusForbidden {
				t.Fatalf("%s: HTTP %d, want 403 for user %q: %.500s", req.method, code, controlplane.FrontProxyClientName, body)
			}
			st := fpStatus(t, req.method, code, body)
			if want := `User "` + controlplane.FrontProxyClientName + `"`; !strings.Contains(st.Message, want) || strings.Contains(st.Message, controlplane.AdminUser) {
				t.Fatalf("%s: message %q does not name %s alone", req.method, st.Message, want)
			}
			t.Logf("%s: %d %s %q", req.method, code, st.Reason, st.Message)
		}
		if exists(t, "fp-client-ca") {
			t.Fatal("fp-client-ca exists after a POST that was refused")
		}
	})
}
