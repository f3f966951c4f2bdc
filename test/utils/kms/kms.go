// Package kms is a mock KMS v2 plugin for tests and the bench: it wraps data
// encryption keys with a local AES-GCM key, as a real plugin would with a
// remote one, and serves the KMS v2 gRPC API on a unix socket.
package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	kmsservice "k8s.io/kms/pkg/service"
)

// KeyID is the key id the plugin reports and accepts.
const KeyID = "mock-kms-key-1"

// Plugin encrypts with AES-GCM under a random key of its own.
type Plugin struct {
	aead cipher.AEAD
}

var _ kmsservice.Service = (*Plugin)(nil)

// NewPlugin creates a plugin with a fresh random key.
func NewPlugin() (*Plugin, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Plugin{aead: aead}, nil
}

func (p *Plugin) Encrypt(_ context.Context, _ string, data []byte) (*kmsservice.EncryptResponse, error) {
	nonce := make([]byte, p.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return &kmsservice.EncryptResponse{Ciphertext: p.aead.Seal(nonce, nonce, data, nil), KeyID: KeyID}, nil
}

func (p *Plugin) Decrypt(_ context.Context, _ string, req *kmsservice.DecryptRequest) ([]byte, error) {
	if req.KeyID != KeyID {
		return nil, errors.New("unknown key id " + req.KeyID)
	}
	n := p.aead.NonceSize()
	if len(req.Ciphertext) < n {
		return nil, errors.New("ciphertext too short")
	}
	return p.aead.Open(nil, req.Ciphertext[:n], req.Ciphertext[n:], nil)
}

func (p *Plugin) Status(context.Context) (*kmsservice.StatusResponse, error) {
	return &kmsservice.StatusResponse{Version: "v2", Healthz: "ok", KeyID: KeyID}, nil
}

// Serve serves a new plugin on the unix socket path socket (at most about
// 100 bytes long) once the socket exists, until stop is called; stop lets
// calls in flight finish.
func Serve(socket string) (stop func(), err error) {
	svc, err := serve(socket)
	if err != nil {
		return nil, err
	}
	return svc.Shutdown, nil
}

// Start serves a new plugin on a unix socket in a fresh folder under /tmp
// and returns its endpoint (unix://…) for an EncryptionConfiguration. It is
// stopped, and the folder removed, in t.Cleanup.
func Start(t testing.TB) string {
	t.Helper()
	// Unix socket paths are limited to about 100 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("/tmp", "capstan-kms-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "kms.sock")
	svc, err := serve(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return "unix://" + socket
}

// serve starts the gRPC service and waits up to five seconds for its socket.
func serve(socket string) (*kmsservice.GRPCService, error) {
	if _, err := os.Lstat(socket); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mock KMS: %s already exists", socket)
	}
	p, err := NewPlugin()
	if err != nil {
		return nil, err
	}
	svc := kmsservice.NewGRPCService(socket, 10*time.Second, p)
	errs := make(chan error, 1)
	go func() { errs <- svc.ListenAndServe() }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(socket); err == nil {
			return svc, nil
		}
		select {
		case err := <-errs:
			return nil, fmt.Errorf("mock KMS: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	svc.Close()
	return nil, fmt.Errorf("mock KMS socket %s did not appear", socket)
}
