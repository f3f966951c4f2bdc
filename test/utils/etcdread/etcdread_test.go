package etcdread

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/storage/value"
)

const encryptionConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - configsets.config.capstan.dev
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: ZXRjZHJlYWQtdGVzdC1rZXktMzItYnl0ZXMhISEhISE=
      - identity: {}
`

// TestDecrypt round-trips a value through the configuration's transformer:
// the key is the authenticated data, so the value does not decrypt at
// another key.
func TestDecrypt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "encryption-config.yaml")
	if err := os.WriteFile(path, []byte(encryptionConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Load(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	configsets := schema.GroupResource{Group: "config.capstan.dev", Resource: "configsets"}
	tr, err := d.Transformer(configsets)
	if err != nil {
		t.Fatal(err)
	}
	const key = "/registry/config.capstan.dev/configsets/ns/name"
	stored, err := tr.TransformToStorage(t.Context(), []byte(`{"kind":"ConfigSet"}`), value.DefaultContext(key))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(stored, []byte("k8s:enc:aesgcm:v1:key1:")) {
		t.Fatalf("stored value starts %.30q", stored)
	}
	plain, stale, err := DecryptFile(t.Context(), path, configsets, key, stored)
	if err != nil || stale || string(plain) != `{"kind":"ConfigSet"}` {
		t.Fatalf("DecryptFile: %q, stale %v, %v", plain, stale, err)
	}
	if _, _, err := d.Decrypt(t.Context(), configsets, key+"-elsewhere", stored); err == nil {
		t.Fatal("a value decrypted at another key")
	}
	if _, err := d.Transformer(schema.GroupResource{Resource: "secrets"}); err == nil {
		t.Fatal("a transformer for a resource the configuration does not name")
	}
}
