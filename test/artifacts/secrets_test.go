package artifacts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
)

// encryptedResources are the resources docs/deploy.md says are encrypted at rest.
var encryptedResources = []schema.GroupResource{
	{Group: group, Resource: "configsets"},
	{Group: group, Resource: "configrevisions"},
}

func loadEncryptionConfig(t *testing.T, path string) (*encryptionconfig.EncryptionConfiguration, error) {
	t.Helper()
	return encryptionconfig.LoadEncryptionConfig(context.Background(), path, false, "capstan-artifacts-test")
}

func checkEncrypts(t *testing.T, path string) {
	t.Helper()
	cfg, err := loadEncryptionConfig(t, path)
	if err != nil {
		t.Fatalf("k8s.io/apiserver does not load %s: %v", path, err)
	}
	for _, gr := range encryptedResources {
		if cfg.Transformers[gr] == nil {
			t.Errorf("%s: nothing encrypts %s", path, gr)
		}
	}
	if cfg.Transformers[schema.GroupResource{Group: group, Resource: "configpolicies"}] != nil {
		t.Errorf("%s: configpolicies are encrypted; they hold no secrets", path)
	}
}

func TestEncryptionConfigExample(t *testing.T) {
	example := filepath.Join(repoRoot, "artifacts", "encryption", "encryption-config.yaml")
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(encryptionPlaceholder)) {
		t.Fatalf("the example has no %s placeholder for generate-secrets.sh to replace", encryptionPlaceholder)
	}
	t.Run("placeholder is refused", func(t *testing.T) {
		// An operator who forgets to set a key gets a server that does not
		// start, not one encrypting with a key everyone can read.
		if _, err := loadEncryptionConfig(t, example); err == nil {
			t.Fatal("the example loads with its placeholder key")
		}
	})
	t.Run("with a key", func(t *testing.T) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "encryption-config.yaml")
		withKey := bytes.ReplaceAll(data, []byte(encryptionPlaceholder), []byte(base64.StdEncoding.EncodeToString(key)))
		if err := os.WriteFile(path, withKey, 0o600); err != nil {
			t.Fatal(err)
		}
		checkEncrypts(t, path)
	})
}

// TestGenerateSecretsScript runs the example overlay's generate-secrets.sh
// and checks what it made: certificates that verify for the names and
// usages the manifests need, keys that match, an encryption configuration
// that loads, and nothing overwritten on a second run.
func TestGenerateSecretsScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("generate-secrets.sh needs openssl, which is not on PATH (Debian package openssl)")
	}
	script := filepath.Join(repoRoot, "artifacts", "overlays", "example", "generate-secrets.sh")
	dir := filepath.Join(t.TempDir(), "secrets")
	runScript := func() {
		t.Helper()
		cmd := exec.Command(script, dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	runScript()

	read := func(name string) []byte {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	pool := func(name string) *x509.CertPool {
		t.Helper()
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(read(name)) {
			t.Fatalf("%s holds no PEM certificate", name)
		}
		return p
	}
	leaf := func(name string) *x509.Certificate {
		t.Helper()
		pair, err := tls.X509KeyPair(read(name+".crt"), read(name+".key"))
		if err != nil {
			t.Fatalf("%s.crt and %s.key: %v", name, name, err)
		}
		return pair.Leaf
	}
	verify := func(name, ca, dnsName string, usages ...x509.ExtKeyUsage) {
		t.Helper()
		for _, u := range usages {
			_, err := leaf(name).Verify(x509.VerifyOptions{DNSName: dnsName, Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{u}})
			if err != nil {
				t.Errorf("%s for %q with usage %v: %v", name, dnsName, u, err)
			}
		}
	}
	servingCA, etcdCA := "ca.crt", "etcd-ca.crt"
	// The aggregator verifies <service>.<namespace>.svc against the caBundle.
	verify("serving", servingCA, "capstan."+namespace+".svc", x509.ExtKeyUsageServerAuth)
	for i := range 3 {
		member := fmt.Sprintf("capstan-etcd-%d.capstan-etcd.%s.svc", i, namespace)
		verify("etcd-server", etcdCA, member, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
		verify("etcd-peer", etcdCA, member, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	}
	verify("etcd-client", etcdCA, "", x509.ExtKeyUsageClientAuth)
	// The CAs are separate: a certificate kube-apiserver trusts opens no etcd.
	if _, err := leaf("serving").Verify(x509.VerifyOptions{Roots: pool(etcdCA)}); err == nil {
		t.Error("the etcd CA trusts Capstan's serving certificate")
	}
	checkEncrypts(t, filepath.Join(dir, "encryption-config.yaml"))

	before := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		before[e.Name()] = read(e.Name())
		if info, err := e.Info(); err != nil || info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others (%v)", e.Name(), info.Mode())
		}
	}
	runScript()
	for name, data := range before {
		if !bytes.Equal(data, read(name)) {
			t.Errorf("a second run changed %s; above all the encryption key must never be replaced", name)
		}
	}
	// Everything the example overlay generates Secrets from.
	ks, err := findKustomizations(filepath.Join(repoRoot, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	var wanted int
	for _, k := range ks {
		if k.Dir != "overlays/example" {
			continue
		}
		for _, f := range k.GeneratorFiles {
			wanted++
			if rel, ok := strings.CutPrefix(f, "secrets/"); !ok || before[rel] == nil {
				t.Errorf("the example overlay reads %s, which the script does not write", f)
			}
		}
	}
	if wanted == 0 {
		t.Error("the example overlay generates no Secrets from files")
	}
	for name := range before {
		if strings.HasSuffix(name, ".csr") || strings.HasSuffix(name, ".ext") {
			t.Errorf("the script left %s behind", name)
		}
	}
}
