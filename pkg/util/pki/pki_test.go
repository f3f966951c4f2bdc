package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func verify(ca *Authority, cert *x509.Certificate, at time.Time, usage x509.ExtKeyUsage) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestIssueChainsToAuthority(t *testing.T) {
	now := time.Now()
	ca, err := NewAuthority("test-ca", now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(LeafSpec{
		CommonName:    "server",
		Organizations: []string{"team"},
		DNSNames:      []string{"localhost", "server.example"},
		IPs:           []net.IP{net.IPv4(127, 0, 0, 1)},
		ServerAuth:    true,
		ClientAuth:    true,
		NotBefore:     now.Add(-time.Minute),
		NotAfter:      now.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := verify(ca, leaf.Cert, now, usage); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	if err := leaf.Cert.VerifyHostname("server.example"); err != nil {
		t.Error(err)
	}
	if err := leaf.Cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if leaf.Cert.Subject.CommonName != "server" || !slices.Equal(leaf.Cert.Subject.Organization, []string{"team"}) {
		t.Errorf("subject = %v, want CN=server, O=team", leaf.Cert.Subject)
	}
	if leaf.Cert.IsCA {
		t.Error("leaf is a CA")
	}

	clientOnly, err := ca.Issue(LeafSpec{CommonName: "client", ClientAuth: true, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(ca, clientOnly.Cert, now, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("a client certificate verified for server authentication")
	}

	tlsCert := clientOnly.TLSCertificate()
	if _, err := tls.X509KeyPair(EncodeCertPEM(tlsCert.Certificate[0]), mustKeyPEM(t, clientOnly)); err != nil {
		t.Errorf("TLS certificate does not form a key pair: %v", err)
	}
}

func TestExpiredLeafIsRejected(t *testing.T) {
	now := time.Now()
	ca, err := NewAuthority("test-ca", now.Add(-72*time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(LeafSpec{CommonName: "late", ClientAuth: true, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(ca, leaf.Cert, now, x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("an expired certificate verified")
	}
}

func TestFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := NewAuthority("test-ca", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := ca.WriteFiles(caCert, caKey); err != nil {
		t.Fatal(err)
	}
	for file, mode := range map[string]os.FileMode{caCert: 0o644, caKey: 0o600} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", file, fi.Mode().Perm(), mode)
		}
	}
	loaded, err := LoadAuthority(caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Error("loaded CA certificate differs from the written one")
	}
	leaf, err := loaded.Issue(LeafSpec{CommonName: "client", ClientAuth: true, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := leaf.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := verify(ca, leaf.Cert, now, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("a leaf of the loaded CA does not chain to the original: %v", err)
	}
	// A key that is not the certificate's is refused.
	if err := WritePair(certFile, keyFile, leaf.Cert.Raw, ca.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(certFile, keyFile); err == nil {
		t.Error("LoadAuthority accepted a key that does not match the certificate")
	}
}

func mustKeyPEM(t *testing.T, l *Leaf) []byte {
	t.Helper()
	b, err := EncodeKeyPEM(l.Key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
