package local

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"

	"capstan.dev/capstan/pkg/util/atomicfile"
)

// encryptionKeyName is the name under which the generated key is recorded
// in every ciphertext, so a later rotation can add key2 and still read data
// written with key1.
const encryptionKeyName = "key1"

// EnsureEncryptionConfig writes an EncryptionConfiguration that encrypts
// resources (in "resource.group" form) with a new secretbox key, unless path
// already exists. An existing file is never modified, because replacing its
// key would make everything already stored unreadable; generated reports
// whether a new key was created so the caller can tell the user to back it
// up.
//
// The identity provider is listed after secretbox so that objects stored
// before encryption was enabled can still be read, and are re-encrypted on
// their next write.
func EnsureEncryptionConfig(path string, resources []string) (generated bool, err error) {
	if path == "" {
		return false, errors.New("encryption config path must not be empty")
	}
	if len(resources) == 0 {
		return false, errors.New("at least one resource to encrypt is required")
	}
	for _, r := range resources {
		if strings.TrimSpace(r) == "" {
			return false, errors.New("resource names to encrypt must not be empty")
		}
	}

	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("checking encryption config: %w", err)
	}

	data, err := newEncryptionConfig(resources)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("creating encryption config directory: %w", err)
	}
	// Creation is exclusive so that two processes starting at once cannot
	// both generate a key and have the loser encrypt data with a key that
	// is then overwritten.
	return atomicfile.CreateExclusive(path, data, 0o600)
}

func newEncryptionConfig(resources []string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating encryption key: %w", err)
	}
	cfg := apiserverv1.EncryptionConfiguration{
		Resources: []apiserverv1.ResourceConfiguration{{
			Resources: append([]string(nil), resources...),
			Providers: []apiserverv1.ProviderConfiguration{
				{Secretbox: &apiserverv1.SecretboxConfiguration{
					Keys: []apiserverv1.Key{{
						Name:   encryptionKeyName,
						Secret: base64.StdEncoding.EncodeToString(key),
					}},
				}},
				{Identity: &apiserverv1.IdentityConfiguration{}},
			},
		}},
	}
	cfg.APIVersion = apiserverv1.SchemeGroupVersion.String()
	cfg.Kind = "EncryptionConfiguration"
	data, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding encryption config: %w", err)
	}
	return data, nil
}
