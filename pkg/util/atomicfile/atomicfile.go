// Package atomicfile writes files so that concurrent readers see either the
// old or the new content, never a truncated file.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data so that concurrent readers see
// either the old or the new content, never a truncated file, and a crash
// leaves at most a stray temporary file behind.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// CreateExclusive creates path with data unless it already exists, in
// which case it reports created == false and leaves the file untouched. The
// hard link makes creation both atomic and non-clobbering, so two processes
// racing to create the same file cannot overwrite each other's content.
func CreateExclusive(path string, data []byte, perm fs.FileMode) (created bool, err error) {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return false, err
	}
	defer func() { _ = os.Remove(tmp) }()
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return true, nil
}

// writeTemp writes data to a fresh temporary file next to path, so that a
// later rename or link stays on the same file system, and returns its name.
// The data is synced before returning because a rename that outlives a crash
// must not point at a file whose content was lost.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(name)
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	return name, nil
}

// syncDir makes a preceding rename or link in dir durable. It is best effort
// because some platforms (notably Windows) cannot sync directories, and the
// file content itself has already been synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
