package local

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestWriteKubeconfig(t *testing.T) {
	p, err := EnsurePKI(filepath.Join(t.TempDir(), "pki"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "nested")
	path := filepath.Join(dir, "kubeconfig")
	if err := WriteKubeconfig(path, "https://127.0.0.1:6443", p); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode = %v, want 0600", st.Mode().Perm())
	}

	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "capstan-local" {
		t.Errorf("current context = %q", cfg.CurrentContext)
	}
	kctx := cfg.Contexts["capstan-local"]
	if kctx == nil || kctx.Cluster != "capstan-local" || kctx.AuthInfo != "capstan-admin" || kctx.Namespace != "default" {
		t.Fatalf("context = %+v", kctx)
	}
	cluster := cfg.Clusters["capstan-local"]
	if cluster == nil || cluster.Server != "https://127.0.0.1:6443" || cluster.CertificateAuthority != "" {
		t.Fatalf("cluster = %+v", cluster)
	}
	user := cfg.AuthInfos["capstan-admin"]
	if user == nil || user.ClientCertificate != "" || user.ClientKey != "" {
		t.Fatalf("user = %+v", user)
	}

	want := map[string][]byte{}
	for name, file := range map[string]string{"ca": p.CACertFile, "cert": p.AdminCertFile, "key": p.AdminKeyFile} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = data
	}

	restCfg, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if restCfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("rest host = %q", restCfg.Host)
	}
	if !bytes.Equal(restCfg.CAData, want["ca"]) || !bytes.Equal(restCfg.CertData, want["cert"]) || !bytes.Equal(restCfg.KeyData, want["key"]) {
		t.Error("rest.Config TLS data does not match the PKI files")
	}
	if _, err := rest.TLSConfigFor(restCfg); err != nil {
		t.Errorf("building TLS config from kubeconfig: %v", err)
	}

	if err := WriteKubeconfig(path, "https://localhost:7443", p); err != nil {
		t.Fatal(err)
	}
	cfg, err = clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Clusters["capstan-local"].Server; got != "https://localhost:7443" {
		t.Errorf("server after rewrite = %q", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("kubeconfig directory holds %d entries, want 1 (temporary files left behind?)", len(entries))
	}
}

// TestKubeconfigAuthenticatesAgainstServingCert checks that the PKI and
// kubeconfig fit together: a client built from the kubeconfig trusts the
// serving certificate and presents the admin identity.
func TestKubeconfigAuthenticatesAgainstServingCert(t *testing.T) {
	p, err := EnsurePKI(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := tls.LoadX509KeyPair(p.ServingCertFile, p.ServingKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA PEM not parsable")
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := r.TLS.PeerCertificates[0]
		_, _ = io.WriteString(w, peer.Subject.CommonName+"/"+strings.Join(peer.Subject.Organization, ","))
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientCAs:    clientCAs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	srv.StartTLS()
	defer srv.Close()

	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := WriteKubeconfig(path, srv.URL, p); err != nil {
		t.Fatal(err)
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(body), AdminUser+"/"+AdminGroup; got != want {
		t.Errorf("server saw client %q, want %q", got, want)
	}
}

func TestWriteKubeconfigRejectsBadInput(t *testing.T) {
	p, err := EnsurePKI(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	for _, server := range []string{"", "127.0.0.1:6443", "http://127.0.0.1:6443", "https://"} {
		if err := WriteKubeconfig(path, server, p); err == nil {
			t.Errorf("WriteKubeconfig accepted server URL %q", server)
		}
	}
	if err := WriteKubeconfig(path, "https://127.0.0.1:6443", nil); err == nil {
		t.Error("WriteKubeconfig accepted a nil PKI")
	}
	missing := *p
	missing.AdminKeyFile = filepath.Join(t.TempDir(), "absent.key")
	if err := WriteKubeconfig(path, "https://127.0.0.1:6443", &missing); err == nil {
		t.Error("WriteKubeconfig accepted a PKI without admin key")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("failed writes left a kubeconfig behind (stat err %v)", err)
	}
}
