package local

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage/value"
)

var testEncryptedResources = []string{"configsets.config.capstan.dev", "configrevisions.config.capstan.dev"}

func TestEnsureEncryptionConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "encryption.yaml")
	generated, err := EnsureEncryptionConfig(path, testEncryptedResources)
	if err != nil {
		t.Fatal(err)
	}
	if !generated {
		t.Fatal("first call reported generated = false")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temporary files left behind?)", len(entries))
	}
	original, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"apiVersion: apiserver.config.k8s.io/v1", "kind: EncryptionConfiguration", "secretbox:", "name: key1", "identity: {}"} {
		if !bytes.Contains(original, []byte(want)) {
			t.Errorf("config lacks %q:\n%s", want, original)
		}
	}
	if bytes.Index(original, []byte("secretbox:")) > bytes.Index(original, []byte("identity:")) {
		t.Errorf("identity must come after secretbox so new writes are encrypted:\n%s", original)
	}

	loaded, err := encryptionconfig.LoadEncryptionConfig(t.Context(), path, false, "test-apiserver")
	if err != nil {
		t.Fatalf("LoadEncryptionConfig: %v", err)
	}
	for _, r := range testEncryptedResources {
		gr := schema.ParseGroupResource(r)
		tr, ok := loaded.Transformers[gr]
		if !ok {
			t.Errorf("no transformer for %v; have %v", gr, loaded.Transformers)
			continue
		}
		dataCtx := value.DefaultContext("/registry/" + gr.String() + "/default/example")
		plaintext := []byte(`{"kind":"ConfigSet","spec":{"secret":"hunter2"}}`)
		ciphertext, err := tr.TransformToStorage(t.Context(), plaintext, dataCtx)
		if err != nil {
			t.Fatalf("%v: TransformToStorage: %v", gr, err)
		}
		if bytes.Contains(ciphertext, []byte("hunter2")) {
			t.Errorf("%v: ciphertext contains the plaintext", gr)
		}
		if !bytes.HasPrefix(ciphertext, []byte("k8s:enc:secretbox:v1:key1:")) {
			t.Errorf("%v: ciphertext prefix %q", gr, ciphertext[:min(len(ciphertext), 32)])
		}
		roundTrip, stale, err := tr.TransformFromStorage(t.Context(), ciphertext, dataCtx)
		if err != nil {
			t.Fatalf("%v: TransformFromStorage: %v", gr, err)
		}
		if !bytes.Equal(roundTrip, plaintext) || stale {
			t.Errorf("%v: round trip = %q (stale %v), want %q", gr, roundTrip, stale, plaintext)
		}

		// Data written before encryption was enabled must stay readable
		// and be flagged stale so the API server rewrites it encrypted.
		legacy, stale, err := tr.TransformFromStorage(t.Context(), plaintext, dataCtx)
		if err != nil {
			t.Fatalf("%v: reading unencrypted data: %v", gr, err)
		}
		if !bytes.Equal(legacy, plaintext) || !stale {
			t.Errorf("%v: unencrypted read = %q (stale %v)", gr, legacy, stale)
		}
	}
	if _, ok := loaded.Transformers[schema.GroupResource{Resource: "secrets"}]; ok {
		t.Error("config encrypts secrets, which were not requested")
	}

	generated, err = EnsureEncryptionConfig(path, append(testEncryptedResources, "other.config.capstan.dev"))
	if err != nil {
		t.Fatal(err)
	}
	if generated {
		t.Error("second call reported generated = true")
	}
	again, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(original, again) {
		t.Error("existing encryption config was modified; its key must survive restarts")
	}
}

func TestEnsureEncryptionConfigUsesFreshKeys(t *testing.T) {
	dir := t.TempDir()
	secret := func(name string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if _, err := EnsureEncryptionConfig(path, testEncryptedResources); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if s, ok := strings.CutPrefix(strings.TrimSpace(line), "secret: "); ok {
				return s
			}
		}
		t.Fatalf("no secret in %s:\n%s", name, data)
		return ""
	}
	if a, b := secret("a.yaml"), secret("b.yaml"); a == b {
		t.Errorf("two generated configs share the key %q", a)
	}
}

func TestEnsureEncryptionConfigRejectsBadInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "encryption.yaml")
	for _, resources := range [][]string{nil, {}, {"configsets.config.capstan.dev", " "}} {
		if _, err := EnsureEncryptionConfig(path, resources); err == nil {
			t.Errorf("EnsureEncryptionConfig accepted resources %q", resources)
		}
	}
	if _, err := EnsureEncryptionConfig("", testEncryptedResources); err == nil {
		t.Error("EnsureEncryptionConfig accepted an empty path")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("rejected calls created the file (stat err %v)", err)
	}
}
