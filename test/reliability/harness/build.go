package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"capstan.dev/capstan/test/utils/repo"
)

// CapstanBinaryAt builds capstan-apiserver as it was at rev (a commit, or
// anything git rev-parse resolves, such as HEAD~1) from `git archive` of the
// repository, and returns its path. Builds are kept per commit under the
// git-ignored _output/capstan-at, so a second run reuses them.
func CapstanBinaryAt(rev string) (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--verify", "--quiet", rev+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("commit %s is not in this clone (a shallow clone has no history to upgrade from): %v", rev, err)
	}
	sha := strings.TrimSpace(string(out))
	dir := filepath.Join(root, "_output", "capstan-at", sha)
	binary := filepath.Join(dir, "capstan-apiserver")
	if _, err := os.Stat(binary); err == nil {
		return binary, nil
	}
	src, err := os.MkdirTemp("", "capstan-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, sha, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("extracting %s: %v: %s", sha, err, out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	build := exec.Command("go", "build", "-o", binary+".tmp", "./cmd/apiserver")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building capstan-apiserver at %s: %v: %s", sha, err, out)
	}
	return binary, os.Rename(binary+".tmp", binary)
}
