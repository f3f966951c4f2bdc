// Package repo finds Capstan's checkout, where the test suites find the
// binaries that make build and hack/build-tools.sh write.
package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

// Root walks up from the working folder (a test's package folder) to the go.mod
// of capstan.dev/capstan and returns its folder.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module capstan.dev/capstan\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of capstan.dev/capstan above the working folder")
		}
		dir = parent
	}
}
