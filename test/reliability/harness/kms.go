package harness

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	kmsservice "k8s.io/kms/pkg/service"
)

// MockKMSKeyID is the key id the mock KMS v2 plugin reports.
const MockKMSKeyID = "reliability-kms-key-1"

// mockKMS encrypts data encryption keys with AES-GCM under a fixed key: a
// stand-in for a real KMS that the API server's KMS v2 envelope code talks to
// over gRPC.
type mockKMS struct {
	aead cipher.AEAD
}

var _ kmsservice.Service = (*mockKMS)(nil)

func (m *mockKMS) Encrypt(_ context.Context, _ string, data []byte) (*kmsservice.EncryptResponse, error) {
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return &kmsservice.EncryptResponse{Ciphertext: m.aead.Seal(nonce, nonce, data, nil), KeyID: MockKMSKeyID}, nil
}

func (m *mockKMS) Decrypt(_ context.Context, _ string, req *kmsservice.DecryptRequest) ([]byte, error) {
	if req.KeyID != MockKMSKeyID {
		return nil, errors.New("unknown key id " + req.KeyID)
	}
	n := m.aead.NonceSize()
	if len(req.Ciphertext) < n {
		return nil, errors.New("ciphertext too short")
	}
	return m.aead.Open(nil, req.Ciphertext[:n], req.Ciphertext[n:], nil)
}

func (m *mockKMS) Status(context.Context) (*kmsservice.StatusResponse, error) {
	return &kmsservice.StatusResponse{Version: "v2", Healthz: "ok", KeyID: MockKMSKeyID}, nil
}

// StartMockKMS serves a KMS v2 plugin on a unix socket in a temporary folder
// and returns its endpoint (unix://…) for an EncryptionConfiguration. It is
// stopped in t.Cleanup.
func StartMockKMS(t testing.TB) string {
	t.Helper()
	key := []byte("0123456789abcdef0123456789abcdef")
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are limited to about 100 bytes; t.TempDir can be longer.
	dir, err := mkShortTempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(dir) })
	socket := filepath.Join(dir, "kms.sock")
	svc := kmsservice.NewGRPCService(socket, 10*time.Second, &mockKMS{aead: aead})
	errs := make(chan error, 1)
	go func() { errs <- svc.ListenAndServe() }()
	t.Cleanup(svc.Close)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if fileExists(socket) {
			return "unix://" + socket
		}
		select {
		case err := <-errs:
			t.Fatalf("mock KMS: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("mock KMS socket %s did not appear", socket)
	return ""
}
