package frontproxy

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/request/headerrequest"

	"capstan.dev/capstan/pkg/util/pki"
)

func TestVerifierRemembersOnlyWhatStillHolds(t *testing.T) {
	start := time.Now()
	ca, err := pki.NewAuthority("front-proxy-ca", start.Add(-time.Hour), start.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := pki.NewAuthority("front-proxy-ca", start.Add(-time.Hour), start.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string, notAfter time.Time) *x509.Certificate {
		t.Helper()
		leaf, err := ca.Issue(pki.LeafSpec{CommonName: cn, ClientAuth: true, NotBefore: start.Add(-time.Hour), NotAfter: notAfter})
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Cert
	}
	proxyCert := issue("front-proxy-client", start.Add(10*time.Minute))
	otherCert := issue("mallory", start.Add(10*time.Minute))

	roots := ca.Cert
	pool := func(c *x509.Certificate) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(c); return p }
	current := pool(roots)
	v := newVerifier(func() (x509.VerifyOptions, bool) {
		return x509.VerifyOptions{Roots: current, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true
	}, headerrequest.StaticStringSlice{"front-proxy-client"}, headerrequest.NewDynamic(
		headerrequest.StaticStringSlice{"X-Remote-User"}, headerrequest.StaticStringSlice{"X-Remote-Uid"},
		headerrequest.StaticStringSlice{"X-Remote-Group"}, headerrequest.StaticStringSlice{"X-Remote-Extra-"}))
	now := start
	v.now = func() time.Time { return now }
	checks := 0
	v.check = func(leaf *x509.Certificate, opts x509.VerifyOptions) ([][]*x509.Certificate, error) {
		checks++
		return leaf.Verify(opts)
	}
	request := func(cert *x509.Certificate) (string, error) {
		r := httptest.NewRequest(http.MethodGet, "/apis", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
		r.Header.Set("X-Remote-User", "jane")
		resp, ok, err := v.AuthenticateRequest(r)
		if err != nil || !ok {
			return "", err
		}
		return resp.User.GetName(), nil
	}
	expect := func(step string, cert *x509.Certificate, wantUser string, wantChecks int) {
		t.Helper()
		user, err := request(cert)
		if user != wantUser || checks != wantChecks {
			t.Errorf("%s: user %q (%v) after %d verifications, want %q after %d", step, user, err, checks, wantUser, wantChecks)
		}
	}

	expect("first request", proxyCert, "jane", 1)
	expect("the same certificate again", proxyCert, "jane", 1)
	now = start.Add(verifiedFor + time.Second)
	expect("after the remembered minute", proxyCert, "jane", 2)
	expect("an allowed CA but a name not allowed", otherCert, "", 3)
	expect("a name not allowed, verified before", otherCert, "", 3)

	current = pool(rotated.Cert)
	expect("the CA bundle rotated away from its CA", proxyCert, "", 4)
	current = pool(roots)
	now = start.Add(11 * time.Minute)
	expect("past the certificate's NotAfter", proxyCert, "", 5)

	r := httptest.NewRequest(http.MethodGet, "/apis", nil)
	r.Header.Set("X-Remote-User", "jane")
	if _, ok, _ := v.AuthenticateRequest(r); ok {
		t.Error("headers without a client certificate authenticated")
	}
}
