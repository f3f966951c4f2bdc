// Package etcdread reads what an API server stored in etcd, bypassing the
// server: the raw value at a key, and that value decrypted with an
// EncryptionConfiguration the way the server's storage layer does it (the
// full etcd key is the authenticated data).
package etcdread

import (
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage/value"
)

// apiServerID labels the metrics of the transformers this package loads.
const apiServerID = "capstan-test"

// Get returns the value at exactly key. When there is none, the error lists
// the keys under /registry/, which usually shows what went wrong.
func Get(ctx context.Context, c *clientv3.Client, key string) ([]byte, error) {
	resp, err := c.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) != 1 {
		var present []string
		if keys, err := c.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithKeysOnly()); err == nil {
			for _, kv := range keys.Kvs {
				present = append(present, string(kv.Key))
			}
		}
		return nil, fmt.Errorf("etcd has no value at %s; keys under /registry/: %q", key, present)
	}
	return resp.Kvs[0].Value, nil
}

// MustGet is Get that fails the test when there is no value.
func MustGet(t testing.TB, c *clientv3.Client, key string) []byte {
	t.Helper()
	v, err := Get(t.Context(), c, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Decrypter decrypts stored values with the transformers of one
// EncryptionConfiguration file, loaded as the API server loads it.
type Decrypter struct {
	// Path is the EncryptionConfiguration file.
	Path   string
	config *encryptionconfig.EncryptionConfiguration
}

// Load reads the EncryptionConfiguration at path.
func Load(ctx context.Context, path string) (*Decrypter, error) {
	cfg, err := encryptionconfig.LoadEncryptionConfig(ctx, path, false, apiServerID)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return &Decrypter{Path: path, config: cfg}, nil
}

// Transformer is the configuration's transformer for resource.
func (d *Decrypter) Transformer(resource schema.GroupResource) (value.Transformer, error) {
	tr, ok := d.config.Transformers[resource]
	if !ok {
		return nil, fmt.Errorf("%s has no transformer for %s", d.Path, resource)
	}
	return tr, nil
}

// Decrypt decrypts raw, stored at key, as a value of resource. stale says
// that it was written with another key or provider than the configuration
// writes with now.
func (d *Decrypter) Decrypt(ctx context.Context, resource schema.GroupResource, key string, raw []byte) (plain []byte, stale bool, err error) {
	tr, err := d.Transformer(resource)
	if err != nil {
		return nil, false, err
	}
	return Decrypt(ctx, tr, key, raw)
}

// Decrypt decrypts raw, stored at key, with tr, the way the server's storage
// layer does: the full etcd key is the authenticated data.
func Decrypt(ctx context.Context, tr value.Transformer, key string, raw []byte) (plain []byte, stale bool, err error) {
	plain, stale, err = tr.TransformFromStorage(ctx, raw, value.DefaultContext(key))
	if err != nil {
		return nil, false, fmt.Errorf("decrypting %s: %w", key, err)
	}
	return plain, stale, nil
}

// DecryptFile loads the EncryptionConfiguration at path and decrypts raw,
// stored at key, as a value of resource.
func DecryptFile(ctx context.Context, path string, resource schema.GroupResource, key string, raw []byte) (plain []byte, stale bool, err error) {
	d, err := Load(ctx, path)
	if err != nil {
		return nil, false, err
	}
	return d.Decrypt(ctx, resource, key, raw)
}
