package kms

import (
	"context"
	"testing"

	kmsservice "k8s.io/kms/pkg/service"
)

func TestPluginRoundTrip(t *testing.T) {
	p, err := NewPlugin()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc, err := p.Encrypt(ctx, "uid", []byte("data key"))
	if err != nil {
		t.Fatal(err)
	}
	if enc.KeyID != KeyID {
		t.Errorf("key id %q, want %q", enc.KeyID, KeyID)
	}
	plain, err := p.Decrypt(ctx, "uid", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: enc.KeyID})
	if err != nil || string(plain) != "data key" {
		t.Fatalf("Decrypt = %q, %v", plain, err)
	}
	if _, err := p.Decrypt(ctx, "uid", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: "other"}); err == nil {
		t.Error("Decrypt accepted an unknown key id")
	}
}

func TestStart(t *testing.T) {
	if endpoint := Start(t); len(endpoint) > len("unix://")+100 {
		t.Errorf("endpoint %s is too long for a unix socket", endpoint)
	}
}
