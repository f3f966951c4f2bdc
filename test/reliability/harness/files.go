package harness

import "os"

func mkShortTempDir() (string, error) { return os.MkdirTemp("/tmp", "rel-kms-") }

func removeAll(dir string) { _ = os.RemoveAll(dir) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
