package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"capstan.dev/capstan/test/utils/ports"
	"capstan.dev/capstan/test/utils/repo"
)

// BuildToolsScript builds _output/bin/etcd and etcdutl; tests name it when a binary is missing.
const BuildToolsScript = "hack/build-tools.sh"

// EtcdBinary returns the path of _output/bin/etcd, or an error that says how
// to build it.
func EtcdBinary() (string, error) { return toolBinary("etcd") }

// EtcdutlBinary returns the path of _output/bin/etcdutl (etcd's offline
// tool, which restores snapshots), or an error that says how to build it.
func EtcdutlBinary() (string, error) { return toolBinary("etcdutl") }

// toolBinary returns the path of _output/bin/name, which BuildToolsScript builds.
func toolBinary(name string) (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, "_output", "bin", name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s binary %s is missing (%v): run %s from the repository root to build it", name, path, err, BuildToolsScript)
	}
	return path, nil
}

// EtcdOptions configure an etcd child process.
type EtcdOptions struct {
	// UnsafeNoFsync passes --unsafe-no-fsync: faster, loses data on power failure only.
	UnsafeNoFsync bool
	// Snapshot is a snapshot file (SaveSnapshot, etcdctl snapshot save) that
	// StartEtcd restores with etcdutl into the new data folder, for this
	// member's name and peer URL, before it starts etcd on it.
	Snapshot string
	// RestoreArgs are further flags of that restore, such as --bump-revision.
	RestoreArgs []string
}

// Etcd is a single-member etcd running as a child process on 127.0.0.1.
type Etcd struct {
	binary     string
	dataDir    string
	clientPort int
	peerPort   int
	opts       EtcdOptions
	logFile    string
	// name and initialCluster differ from the defaults for cluster members.
	name           string
	initialCluster string

	proc child
}

// StartEtcd starts etcd on free loopback ports with its data in a temporary
// folder (restored from opts.Snapshot when set), waits until it answers, and
// stops it (by PID) in t.Cleanup.
func StartEtcd(t testing.TB, opts EtcdOptions) *Etcd {
	t.Helper()
	binary, err := EtcdBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &Etcd{binary: binary, dataDir: filepath.Join(dir, "data"), opts: opts, logFile: filepath.Join(dir, "etcd.log"), name: "reliability", proc: child{name: "etcd"}}
	if e.clientPort, err = ports.Free(); err != nil {
		t.Fatal(err)
	}
	if e.peerPort, err = ports.Free(); err != nil {
		t.Fatal(err)
	}
	e.initialCluster = e.name + "=" + e.peerURL()
	if opts.Snapshot != "" {
		if err := RestoreSnapshot(opts.Snapshot, e.dataDir, e.name, e.peerURL(), opts.RestoreArgs...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.Kill() })
	if err := e.start(); err != nil {
		t.Fatalf("starting etcd: %v (log %s: %s)", err, e.logFile, e.tail())
	}
	return e
}

// StartEtcdCluster starts an n-member etcd cluster, each member a child
// process on its own loopback ports and data folder, and waits until every
// member serves a read. Members are killed by PID in t.Cleanup.
func StartEtcdCluster(t testing.TB, n int, opts EtcdOptions) []*Etcd {
	t.Helper()
	binary, err := EtcdBinary()
	if err != nil {
		t.Fatal(err)
	}
	members := make([]*Etcd, n)
	var initial []string
	for i := range members {
		dir := t.TempDir()
		e := &Etcd{binary: binary, dataDir: filepath.Join(dir, "data"), opts: opts, logFile: filepath.Join(dir, "etcd.log"), name: "member" + strconv.Itoa(i), proc: child{name: "etcd member" + strconv.Itoa(i)}}
		if e.clientPort, err = ports.Free(); err != nil {
			t.Fatal(err)
		}
		if e.peerPort, err = ports.Free(); err != nil {
			t.Fatal(err)
		}
		initial = append(initial, e.name+"="+e.peerURL())
		members[i] = e
		t.Cleanup(e.Kill)
	}
	for _, e := range members {
		e.initialCluster = strings.Join(initial, ",")
		if err := e.launch(); err != nil {
			t.Fatalf("starting etcd %s: %v", e.name, err)
		}
	}
	for _, e := range members {
		if err := e.WaitHealthy(60 * time.Second); err != nil {
			t.Fatalf("etcd %s: %v (log %s: %s)", e.name, err, e.logFile, e.tail())
		}
	}
	return members
}

// Name is the member's name.
func (e *Etcd) Name() string { return e.name }

// IsLeader asks this member whether it leads the raft group.
func (e *Etcd) IsLeader(ctx context.Context) (bool, error) {
	c, err := e.client()
	if err != nil {
		return false, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := c.Status(ctx, e.Endpoint())
	if err != nil {
		return false, err
	}
	return st.Header.MemberId == st.Leader, nil
}

func (e *Etcd) peerURL() string { return "http://127.0.0.1:" + strconv.Itoa(e.peerPort) }

// Endpoint is the client URL.
func (e *Etcd) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(e.clientPort) }

// Addr is the client host:port, for a proxy to dial.
func (e *Etcd) Addr() string { return "127.0.0.1:" + strconv.Itoa(e.clientPort) }

// DataDir is etcd's data folder.
func (e *Etcd) DataDir() string { return e.dataDir }

// PID is the process id of the running etcd, or 0.
func (e *Etcd) PID() int { return e.proc.pid() }

func (e *Etcd) start() error {
	if err := e.launch(); err != nil {
		return err
	}
	return e.WaitHealthy(30 * time.Second)
}

// launch starts the process without waiting: a cluster member cannot serve
// until a quorum of members runs.
func (e *Etcd) launch() error {
	peer := e.peerURL()
	args := []string{
		"--name=" + e.name,
		"--data-dir=" + e.dataDir,
		"--listen-client-urls=" + e.Endpoint(),
		"--advertise-client-urls=" + e.Endpoint(),
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + e.initialCluster,
		"--initial-cluster-state=new",
		"--log-level=warn",
	}
	if e.opts.UnsafeNoFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	return e.proc.start(e.binary, args, e.logFile)
}

// WaitHealthy waits until etcd serves a read.
func (e *Etcd) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-e.proc.exitedCh():
			return errors.New("etcd exited")
		default:
		}
		c, err := e.client()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = c.Get(ctx, "health")
			cancel()
			c.Close()
			if err == nil {
				return nil
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("etcd not healthy after %v: %v", timeout, lastErr)
}

func (e *Etcd) client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{e.Endpoint()},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// Client returns an etcd client closed in t.Cleanup.
func (e *Etcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := e.client()
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Kill sends SIGKILL to the etcd process (by PID) and waits for it to exit.
// It resumes a paused process first so that it can die.
func (e *Etcd) Kill() { e.proc.kill() }

// Pause stops the process with SIGSTOP and returns once all its threads are
// stopped: its sockets stay open but nothing answers.
func (e *Etcd) Pause() error { return e.proc.pause() }

// Resume continues a paused process with SIGCONT.
func (e *Etcd) Resume() error { return e.proc.signal(syscall.SIGCONT) }

// Restart kills etcd if it runs and starts it again on the same data and ports.
func (e *Etcd) Restart() error {
	e.Kill()
	var err error
	// The ports were ours; a short retry covers a slow socket release.
	for i := 0; i < 5; i++ {
		if err = e.start(); err == nil {
			return nil
		}
		e.Kill()
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("restarting etcd: %w (log: %s)", err, e.tail())
}

func (e *Etcd) tail() string {
	b, _ := os.ReadFile(e.logFile)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
