package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"capstan.dev/capstan/test/utils/ports"
	"capstan.dev/capstan/test/utils/repo"
)

// CapstanOptions configure a Capstan child process in local mode.
type CapstanOptions struct {
	// DataDir keeps the PKI, encryption key and kubeconfig across restarts;
	// empty means a new temporary folder.
	DataDir string
	// EtcdServers is passed as --etcd-servers (a harness etcd or proxy).
	EtcdServers []string
	// Args are extra flags.
	Args []string
	// Binary is the capstan-apiserver to run; empty means bin/capstan-apiserver.
	Binary string
}

// Capstan is bin/capstan-apiserver running as a child process on 127.0.0.1,
// so that tests can SIGKILL and SIGTERM it.
type Capstan struct {
	binary  string
	opts    CapstanOptions
	port    int
	logFile string

	proc child
}

// CapstanBinary returns bin/capstan-apiserver, or an error that says how to build it.
func CapstanBinary() (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, "bin", "capstan-apiserver")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("capstan binary %s is missing (%v): run make build", path, err)
	}
	return path, nil
}

// StartCapstan starts Capstan on a free loopback port, waits for /readyz, and
// kills it (by PID) in t.Cleanup.
func StartCapstan(t testing.TB, opts CapstanOptions) *Capstan {
	t.Helper()
	c := NewCapstan(t, opts)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// NewCapstan prepares what StartCapstan starts, without starting it: for a
// start that is expected to fail, Launch it and watch Exited and Readyz.
func NewCapstan(t testing.TB, opts CapstanOptions) *Capstan {
	t.Helper()
	binary := opts.Binary
	if binary == "" {
		var err error
		if binary, err = CapstanBinary(); err != nil {
			t.Fatal(err)
		}
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	port, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	// Per port, since replicas may share a data folder.
	logFile := filepath.Join(opts.DataDir, fmt.Sprintf("capstan-%d.log", port))
	c := &Capstan{binary: binary, opts: opts, port: port, logFile: logFile, proc: child{name: "capstan"}}
	t.Cleanup(c.Kill)
	return c
}

// Start starts the process on the same data folder and port and waits until
// /readyz answers 200.
func (c *Capstan) Start() error {
	if err := c.Launch(); err != nil {
		return err
	}
	if err := c.WaitReady(90 * time.Second); err != nil {
		return fmt.Errorf("capstan: %w (log %s: %s)", err, c.logFile, c.Tail(3000))
	}
	return nil
}

// Launch starts the process on the same data folder and port without
// waiting for it.
func (c *Capstan) Launch() error {
	args := []string{
		"--mode=local",
		"--data-dir=" + c.opts.DataDir,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
	}
	if len(c.opts.EtcdServers) > 0 {
		args = append(args, "--etcd-servers="+strings.Join(c.opts.EtcdServers, ","))
	}
	args = append(args, c.opts.Args...)
	return c.proc.start(c.binary, args, c.logFile)
}

// URL is the server's base URL.
func (c *Capstan) URL() string { return "https://127.0.0.1:" + strconv.Itoa(c.port) }

// Addr is host:port of the secure listener.
func (c *Capstan) Addr() string { return "127.0.0.1:" + strconv.Itoa(c.port) }

// SetBinary makes the next Start run binary: an upgrade or a rollback.
func (c *Capstan) SetBinary(binary string) { c.binary = binary }

// DataDir is the data folder: PKI, kubeconfig, and the generated
// EncryptionConfiguration (encryption-config.yaml) unless Args set one.
func (c *Capstan) DataDir() string { return c.opts.DataDir }

// PID is the process id of the running Capstan, or 0.
func (c *Capstan) PID() int { return c.proc.pid() }

// Exited is closed when the current process has exited.
func (c *Capstan) Exited() <-chan struct{} { return c.proc.exitedCh() }

// ExitCode is the last process's exit code, or -1 while it runs or when a signal ended it.
func (c *Capstan) ExitCode() int { return c.proc.exitCode() }

// ClientConfig authenticates as local mode's admin (the generated kubeconfig).
func (c *Capstan) ClientConfig() (*restclient.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.opts.DataDir, "kubeconfig"))
	if err != nil {
		return nil, err
	}
	cfg.QPS = -1
	return cfg, nil
}

// Signal sends sig to the running process (by PID).
func (c *Capstan) Signal(sig syscall.Signal) error { return c.proc.signal(sig) }

// Kill sends SIGKILL (by PID) and waits for the process to exit.
func (c *Capstan) Kill() { c.proc.kill() }

// WaitReady polls /readyz until it answers 200 or the process exits.
func (c *Capstan) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-c.Exited():
			return errors.New("process exited before it was ready")
		default:
		}
		code, err := c.Readyz()
		if err == nil && code == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("status %d, error %v", code, err)
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %s", timeout, last)
}

// Readyz returns /readyz's status code, anonymously (health paths are open).
func (c *Capstan) Readyz() (int, error) {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // health probe on loopback
		DisableKeepAlives: true,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL()+"/readyz", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Tail is the end of the log file.
func (c *Capstan) Tail(n int) string {
	b, _ := os.ReadFile(c.logFile)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
