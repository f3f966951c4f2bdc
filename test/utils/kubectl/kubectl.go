// Package kubectl runs the real kubectl binary in tests, as users do: with
// one kubeconfig, optional stdin, and its output kept apart.
package kubectl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// Kubectl runs one kubectl binary against one kubeconfig.
type Kubectl struct {
	// Path is the binary; see Find and Require.
	Path string
	// Kubeconfig, when set, is passed as --kubeconfig after the arguments
	// (plugin commands, kubectl capstan …, must come before the flags).
	Kubeconfig string
	// Home, when set, is kubectl's HOME, so that nothing from ~/.kube leaks in.
	Home string
	// CacheDir, when set, is passed as --cache-dir.
	CacheDir string
	// Env is added to the caller's environment (later entries win), for
	// example KUBECONFIG or a PATH with plugins on it.
	Env []string
	// Timeout, when set, bounds one invocation in Try and the TB variants.
	Timeout time.Duration
}

// UsualPath is where the machines that run the tests, CI included, install
// kubectl (v1.32, with its built-in kustomize).
const UsualPath = "/usr/bin/kubectl"

// Find returns the kubectl on PATH, else the one at UsualPath, or an error
// saying why tests need it.
func Find() (string, error) {
	path, err := exec.LookPath("kubectl")
	if err == nil {
		return path, nil
	}
	if info, statErr := os.Stat(UsualPath); statErr == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
		return UsualPath, nil
	}
	return "", fmt.Errorf("kubectl is neither on PATH (%v) nor at %s: these tests drive the real kubectl, as users do, so install it (CI has it at %s)", err, UsualPath, UsualPath)
}

// Require returns the kubectl Find finds, or fails the test saying why it needs one.
func Require(t testing.TB) string {
	t.Helper()
	path, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// RequireAt returns path when it is an executable file, or fails the test
// with why, the path and what is wrong.
func RequireAt(t testing.TB, path, why string) string {
	t.Helper()
	info, err := os.Stat(path)
	if err == nil && (info.IsDir() || info.Mode()&0o111 == 0) {
		err = errors.New("not an executable file")
	}
	if err != nil {
		t.Fatalf("%s: kubectl at %s is missing or not executable: %v", why, path, err)
	}
	return path
}

// Command builds the kubectl command for args and stdin (empty: none),
// ended with ctx; the caller runs it.
func (k Kubectl) Command(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	full := slices.Clone(args)
	if k.Kubeconfig != "" {
		full = append(full, "--kubeconfig="+k.Kubeconfig)
	}
	if k.CacheDir != "" {
		full = append(full, "--cache-dir="+k.CacheDir)
	}
	cmd := exec.CommandContext(ctx, k.Path, full...)
	cmd.Env = os.Environ()
	if k.Home != "" {
		cmd.Env = append(cmd.Env, "HOME="+k.Home)
	}
	cmd.Env = append(cmd.Env, k.Env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs kubectl with args and stdin (empty: none) until it exits or ctx
// ends, and returns what it printed and its error; when ctx ended, the
// error is ctx's.
func (k Kubectl) Exec(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := k.Command(ctx, stdin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return out.String(), errOut.String(), err
}

// Try runs kubectl within the test's context and Timeout, and returns what
// it printed and its error, whatever they are.
func (k Kubectl) Try(t testing.TB, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx := t.Context()
	if k.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.Timeout)
		defer cancel()
	}
	return k.Exec(ctx, stdin, args...)
}

// ExitCode runs kubectl and returns what it printed and its exit code; it
// fails the test when kubectl does not finish in time or cannot run.
func (k Kubectl) ExitCode(t testing.TB, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	stdout, stderr, err := k.Try(t, "", args...)
	var exitErr *exec.ExitError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("kubectl %s did not finish in %v", strings.Join(args, " "), k.Timeout)
	case errors.As(err, &exitErr):
		exitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running kubectl %s: %v", strings.Join(args, " "), err)
	}
	return stdout, stderr, exitCode
}

// Run runs kubectl and fails the test unless it succeeds; it returns stdout.
func (k Kubectl) Run(t testing.TB, args ...string) string {
	t.Helper()
	return k.RunStdin(t, "", args...)
}

// RunStdin runs kubectl with stdin and fails the test unless it succeeds;
// it returns stdout.
func (k Kubectl) RunStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, err := k.Try(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	t.Logf("kubectl %s:\n%s", strings.Join(args, " "), stdout)
	return stdout
}

// Fail runs kubectl with stdin, fails the test if it succeeds, and returns stderr.
func (k Kubectl) Fail(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, err := k.Try(t, stdin, args...)
	if err == nil {
		t.Fatalf("kubectl %s succeeded, want an error; stdout:\n%s", strings.Join(args, " "), stdout)
	}
	return stderr
}
