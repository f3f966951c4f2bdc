package local

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"capstan.dev/capstan/pkg/util/pki"
)

var allPKIFiles = []string{caCertName, caKeyName, servingCertName, servingKeyName, adminCertName, adminKeyName}

func readPKIFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range allPKIFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		out[name] = data
	}
	return out
}

// assertChanged checks that exactly the named files differ between before
// and after, which is how the tests tell "reissued" from "reused".
func assertChanged(t *testing.T, before, after map[string][]byte, changed ...string) {
	t.Helper()
	for _, name := range allPKIFiles {
		differs := !bytes.Equal(before[name], after[name])
		want := slices.Contains(changed, name)
		if differs != want {
			t.Errorf("%s changed = %v, want %v", name, differs, want)
		}
	}
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func verifyLeaf(p *PKI, certFile string, usage x509.ExtKeyUsage, dnsName string) error {
	caPEM, err := os.ReadFile(p.CACertFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	data, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestEnsurePKIFirstRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := EnsurePKI(dir, []string{"capstan.example", " ", "10.1.2.3"}, []net.IP{net.ParseIP("192.0.2.7")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Dir != dir || p.CACertFile != filepath.Join(dir, "ca.crt") || p.AdminKeyFile != filepath.Join(dir, "admin.key") {
		t.Errorf("unexpected paths: %+v", p)
	}

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", st.Mode().Perm())
	}
	for _, f := range []string{p.CAKeyFile, p.ServingKeyFile, p.AdminKeyFile} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(allPKIFiles) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want exactly %v (no temporary files)", names, allPKIFiles)
	}

	ca := loadCert(t, p.CACertFile)
	if ca.Subject.CommonName != "capstan-local-ca" || !ca.IsCA {
		t.Errorf("CA subject %q IsCA %v", ca.Subject.CommonName, ca.IsCA)
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if life := ca.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour || life > 11*365*24*time.Hour {
		t.Errorf("CA lifetime %v, want about 10 years", life)
	}

	serving := loadCert(t, p.ServingCertFile)
	for _, name := range []string{"localhost", "capstan.example"} {
		if !slices.Contains(serving.DNSNames, name) {
			t.Errorf("serving DNS SANs %v lack %q", serving.DNSNames, name)
		}
	}
	if slices.Contains(serving.DNSNames, "10.1.2.3") || slices.Contains(serving.DNSNames, "") {
		t.Errorf("serving DNS SANs %v contain an IP literal or empty name", serving.DNSNames)
	}
	for _, ip := range []string{"127.0.0.1", "10.1.2.3", "192.0.2.7"} {
		if !slices.ContainsFunc(serving.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("serving IP SANs %v lack %s", serving.IPAddresses, ip)
		}
	}
	if life := serving.NotAfter.Sub(time.Now()); life < 360*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("serving lifetime %v, want about 1 year", life)
	}

	for _, host := range []string{"capstan.example", "localhost", "127.0.0.1", "10.1.2.3", "192.0.2.7"} {
		if err := verifyLeaf(p, p.ServingCertFile, x509.ExtKeyUsageServerAuth, host); err != nil {
			t.Errorf("serving cert does not verify for %s: %v", host, err)
		}
	}
	if err := verifyLeaf(p, p.ServingCertFile, x509.ExtKeyUsageServerAuth, "other.example"); err == nil {
		t.Error("serving cert verified for a name it was not issued for")
	}
	if err := verifyLeaf(p, p.ServingCertFile, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Error("serving cert verified for client auth")
	}

	admin := loadCert(t, p.AdminCertFile)
	if admin.Subject.CommonName != AdminUser || !slices.Equal(admin.Subject.Organization, []string{AdminGroup}) {
		t.Errorf("admin subject = %v", admin.Subject)
	}
	if AdminUser != "capstan-admin" || AdminGroup != "system:masters" {
		t.Errorf("admin identity constants changed: %q %q", AdminUser, AdminGroup)
	}
	if err := verifyLeaf(p, p.AdminCertFile, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("admin cert does not verify for client auth: %v", err)
	}
	if err := verifyLeaf(p, p.AdminCertFile, x509.ExtKeyUsageServerAuth, ""); err == nil {
		t.Error("admin cert verified for server auth")
	}
}

func TestEnsurePKIReusesAndRegenerates(t *testing.T) {
	dir := t.TempDir()
	hosts := []string{"capstan.example"}
	if _, err := EnsurePKI(dir, hosts, nil); err != nil {
		t.Fatal(err)
	}
	first := readPKIFiles(t, dir)

	if _, err := EnsurePKI(dir, hosts, nil); err != nil {
		t.Fatal(err)
	}
	second := readPKIFiles(t, dir)
	assertChanged(t, first, second)

	// Requesting a subset of the existing names, or differently cased or
	// duplicated names, must not churn the certificate.
	if _, err := EnsurePKI(dir, []string{"CAPSTAN.example", "localhost", "capstan.example"}, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	assertChanged(t, second, readPKIFiles(t, dir))

	if err := os.Remove(filepath.Join(dir, servingCertName)); err != nil {
		t.Fatal(err)
	}
	p, err := EnsurePKI(dir, hosts, nil)
	if err != nil {
		t.Fatal(err)
	}
	third := readPKIFiles(t, dir)
	assertChanged(t, second, third, servingCertName, servingKeyName)
	if err := verifyLeaf(p, p.ServingCertFile, x509.ExtKeyUsageServerAuth, "capstan.example"); err != nil {
		t.Errorf("regenerated serving cert: %v", err)
	}

	if _, err := EnsurePKI(dir, append(hosts, "new.example"), []net.IP{net.ParseIP("198.51.100.1")}); err != nil {
		t.Fatal(err)
	}
	fourth := readPKIFiles(t, dir)
	assertChanged(t, third, fourth, servingCertName, servingKeyName)
	for _, host := range []string{"capstan.example", "new.example", "198.51.100.1", "localhost"} {
		if err := verifyLeaf(p, p.ServingCertFile, x509.ExtKeyUsageServerAuth, host); err != nil {
			t.Errorf("serving cert with new SANs, %s: %v", host, err)
		}
	}

	// An IP that only appears as a new IP SAN must also trigger reissue.
	if _, err := EnsurePKI(dir, append(hosts, "new.example"), []net.IP{net.ParseIP("198.51.100.1"), net.ParseIP("2001:db8::1")}); err != nil {
		t.Fatal(err)
	}
	fifth := readPKIFiles(t, dir)
	assertChanged(t, fourth, fifth, servingCertName, servingKeyName)

	if err := os.Remove(filepath.Join(dir, adminKeyName)); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsurePKI(dir, append(hosts, "new.example"), nil); err != nil {
		t.Fatal(err)
	}
	assertChanged(t, fifth, readPKIFiles(t, dir), adminCertName, adminKeyName)
}

func TestEnsurePKIReissuesUnfitLeaves(t *testing.T) {
	dir := t.TempDir()
	p, err := EnsurePKI(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("key does not match certificate", func(t *testing.T) {
		before := readPKIFiles(t, dir)
		if err := os.WriteFile(p.ServingKeyFile, before[adminKeyName], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		after := readPKIFiles(t, dir)
		assertChanged(t, before, after, servingCertName, servingKeyName)
		if bytes.Equal(after[servingKeyName], before[adminKeyName]) {
			t.Error("serving key still is the admin key")
		}
	})

	t.Run("garbage certificate", func(t *testing.T) {
		before := readPKIFiles(t, dir)
		if err := os.WriteFile(p.AdminCertFile, []byte("not a certificate"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		assertChanged(t, before, readPKIFiles(t, dir), adminCertName, adminKeyName)
		if err := verifyLeaf(p, p.AdminCertFile, x509.ExtKeyUsageClientAuth, ""); err != nil {
			t.Error(err)
		}
	})

	t.Run("signed by another CA", func(t *testing.T) {
		other, err := EnsurePKI(t.TempDir(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{
			other.AdminCertFile: p.AdminCertFile, other.AdminKeyFile: p.AdminKeyFile,
			other.ServingCertFile: p.ServingCertFile, other.ServingKeyFile: p.ServingKeyFile,
		} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		before := readPKIFiles(t, dir)
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		assertChanged(t, before, readPKIFiles(t, dir), servingCertName, servingKeyName, adminCertName, adminKeyName)
		if err := verifyLeaf(p, p.AdminCertFile, x509.ExtKeyUsageClientAuth, ""); err != nil {
			t.Error(err)
		}
		if err := verifyLeaf(p, p.ServingCertFile, x509.ExtKeyUsageServerAuth, "localhost"); err != nil {
			t.Error(err)
		}
	})

	t.Run("expires soon", func(t *testing.T) {
		ca, err := ensureCA(caFiles{cert: p.CACertFile, key: p.CAKeyFile, commonName: caCommonName}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// Issued 340 days ago, so 25 days are left: inside the 30-day
		// renewal window.
		spec := leafSpec{
			certFile: p.AdminCertFile, keyFile: p.AdminKeyFile,
			leaf: pki.LeafSpec{CommonName: AdminUser, Organizations: []string{AdminGroup}, ClientAuth: true},
		}
		if err := issueLeaf(spec, ca, time.Now().Add(-340*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if left := time.Until(loadCert(t, p.AdminCertFile).NotAfter); left > 26*24*time.Hour || left < 24*24*time.Hour {
			t.Fatalf("test setup: admin cert has %v left", left)
		}
		before := readPKIFiles(t, dir)
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		assertChanged(t, before, readPKIFiles(t, dir), adminCertName, adminKeyName)
		if left := time.Until(loadCert(t, p.AdminCertFile).NotAfter); left < 360*24*time.Hour {
			t.Errorf("reissued admin cert has only %v left", left)
		}
	})

	t.Run("wrong identity", func(t *testing.T) {
		ca, err := ensureCA(caFiles{cert: p.CACertFile, key: p.CAKeyFile, commonName: caCommonName}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		spec := leafSpec{
			certFile: p.AdminCertFile, keyFile: p.AdminKeyFile,
			leaf: pki.LeafSpec{CommonName: "someone-else", ClientAuth: true},
		}
		if err := issueLeaf(spec, ca, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		if cn := loadCert(t, p.AdminCertFile).Subject.CommonName; cn != AdminUser {
			t.Errorf("admin cert CN = %q after EnsurePKI", cn)
		}
	})
}

func TestEnsurePKIRefusesToReplaceBrokenCA(t *testing.T) {
	t.Run("missing key", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		caBefore, _ := os.ReadFile(filepath.Join(dir, caCertName))
		if err := os.Remove(filepath.Join(dir, caKeyName)); err != nil {
			t.Fatal(err)
		}
		_, err := EnsurePKI(dir, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "ca.key") {
			t.Fatalf("EnsurePKI error = %v, want one naming ca.key", err)
		}
		caAfter, _ := os.ReadFile(filepath.Join(dir, caCertName))
		if !bytes.Equal(caBefore, caAfter) {
			t.Error("CA certificate was replaced")
		}
	})

	t.Run("corrupt certificate", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, caCertName), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsurePKI(dir, nil, nil); err == nil {
			t.Fatal("EnsurePKI accepted a corrupt CA certificate")
		}
	})

	t.Run("key from another CA", func(t *testing.T) {
		dir, otherDir := t.TempDir(), t.TempDir()
		if _, err := EnsurePKI(dir, nil, nil); err != nil {
			t.Fatal(err)
		}
		other, err := EnsurePKI(otherDir, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := os.ReadFile(other.CAKeyFile)
		if err := os.WriteFile(filepath.Join(dir, caKeyName), key, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsurePKI(dir, nil, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("EnsurePKI error = %v, want key mismatch", err)
		}
	})

	t.Run("leftover key from interrupted first run", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, caKeyName), []byte("half-written"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := EnsurePKI(dir, nil, nil)
		if err != nil {
			t.Fatalf("EnsurePKI with only a stale CA key: %v", err)
		}
		if err := verifyLeaf(p, p.AdminCertFile, x509.ExtKeyUsageClientAuth, ""); err != nil {
			t.Error(err)
		}
	})

	t.Run("empty dir argument", func(t *testing.T) {
		if _, err := EnsurePKI("", nil, nil); err == nil {
			t.Fatal("EnsurePKI accepted an empty directory")
		}
	})
}
