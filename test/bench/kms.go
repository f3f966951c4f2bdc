package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"time"

	"k8s.io/kms/pkg/service"
)

// mockKMS is a KMS v2 plugin for the bench: it wraps data encryption keys
// with a local AES-GCM key, as a real plugin would with a remote one, and
// runs in the bench process on a unix socket.
type mockKMS struct {
	aead cipher.AEAD
}

const mockKeyID = "bench-key-1"

func newMockKMS() (*mockKMS, error) {
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
	return &mockKMS{aead: aead}, nil
}

func (m *mockKMS) Encrypt(_ context.Context, _ string, data []byte) (*service.EncryptResponse, error) {
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return &service.EncryptResponse{Ciphertext: m.aead.Seal(nonce, nonce, data, nil), KeyID: mockKeyID}, nil
}

func (m *mockKMS) Decrypt(_ context.Context, _ string, req *service.DecryptRequest) ([]byte, error) {
	n := m.aead.NonceSize()
	if len(req.Ciphertext) < n {
		return nil, errors.New("ciphertext too short")
	}
	return m.aead.Open(nil, req.Ciphertext[:n], req.Ciphertext[n:], nil)
}

func (m *mockKMS) Status(context.Context) (*service.StatusResponse, error) {
	return &service.StatusResponse{Version: "v2", Healthz: "ok", KeyID: mockKeyID}, nil
}

// startMockKMS serves the mock plugin on socket until the returned stop is called.
func startMockKMS(socket string) (func(), error) {
	m, err := newMockKMS()
	if err != nil {
		return nil, err
	}
	s := service.NewGRPCService(socket, 10*time.Second, m)
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe() }()
	select {
	case err := <-errc:
		return nil, err
	case <-time.After(300 * time.Millisecond):
	}
	return s.Shutdown, nil
}
