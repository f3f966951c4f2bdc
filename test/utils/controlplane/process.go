package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// logTailBytes is how much of a log an error quotes: enough for the last
// few klog lines, which say why a server gave up.
const logTailBytes = 4096

// Process is one server the cluster started. It is recorded in the state file
// so that a later process (hack/local-cluster.sh down) can stop exactly it.
type Process struct {
	// Name is the role: etcd-kube, etcd-capstan, kube-apiserver or capstan.
	Name string `json:"name"`
	// PID is the process id.
	PID int `json:"pid"`
	// StartTicks is the start time from /proc/PID/stat; a PID whose start time
	// differs belongs to another process that reused the number, and is never
	// signalled.
	StartTicks uint64 `json:"startTicks"`
	// Args is the command line, binary first; StartCapstan runs it again.
	Args []string `json:"args"`
	// LogFile receives the process's stdout and stderr.
	LogFile string `json:"logFile"`
	// URL is where it serves, when the cluster needs to say so
	// (capstan-controller-manager's /healthz and /metrics).
	URL string `json:"url,omitempty"`

	// cmd and done are set only in the process that started it, which can
	// wait for it; a process loaded from the state file is polled instead.
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs args in dir with output appended to logFile. A detached
// process gets its own session, so that it survives the caller; otherwise it
// is killed when the caller dies, so that a crashed test leaves nothing behind.
func startProcess(name, dir, logFile string, args []string, detach bool) (*Process, error) {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	fmt.Fprintf(out, "\n==== %s: starting %s\n", time.Now().Format(time.RFC3339), strings.Join(args, " "))

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, PID: cmd.Process.Pid, Args: args, LogFile: logFile, cmd: cmd, done: make(chan struct{})}
	p.StartTicks, _ = startTicks(p.PID)
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Running reports whether the process is still alive (a zombie is not).
func (p *Process) Running() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	ticks, err := startTicks(p.PID)
	return err == nil && ticks == p.StartTicks
}

// stop sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL and waits again. It signals the recorded PID only, and only while
// that PID still is the process the cluster started.
func (p *Process) stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping %s (pid %d): %w", p.Name, p.PID, err)
	}
	if p.waitExit(grace) {
		return nil
	}
	if !p.Running() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s (pid %d): %w", p.Name, p.PID, err)
	}
	if !p.waitExit(10 * time.Second) {
		return fmt.Errorf("%s (pid %d) still runs after SIGKILL", p.Name, p.PID)
	}
	return nil
}

// Kill sends SIGKILL, as a crash would, and waits for the process to exit.
// It signals the recorded PID only while it still is this process.
func (p *Process) Kill() error {
	if !p.Running() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s (pid %d): %w", p.Name, p.PID, err)
	}
	if !p.waitExit(10 * time.Second) {
		return fmt.Errorf("%s (pid %d) still runs after SIGKILL", p.Name, p.PID)
	}
	return nil
}

// waitExit reports whether the process exited within timeout.
func (p *Process) waitExit(timeout time.Duration) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(timeout):
			return false
		}
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !p.Running() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return !p.Running()
}

// exited returns a channel closed when the process exits; for a loaded
// process it is polled.
func (p *Process) exited() <-chan struct{} {
	if p.done != nil {
		return p.done
	}
	ch := make(chan struct{})
	go func() {
		for p.Running() {
			time.Sleep(100 * time.Millisecond)
		}
		close(ch)
	}()
	return ch
}

// waitReady polls check until it succeeds. It fails early when the process
// exits, and its errors carry the tail of the process's log.
func (p *Process) waitReady(ctx context.Context, check func(context.Context) error) error {
	exited := p.exited()
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s (pid %d) exited before it was ready (last check: %v); end of %s:\n%s", p.Name, p.PID, last, p.LogFile, logTail(p.LogFile))
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not ready: %v (%w); end of %s:\n%s", p.Name, p.PID, last, ctx.Err(), p.LogFile, logTail(p.LogFile))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail returns the end of a log file, or a note saying why it cannot.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	offset := max(info.Size()-logTailBytes, 0)
	buf, err := io.ReadAll(io.NewSectionReader(f, offset, info.Size()-offset))
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	if offset > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return string(buf)
}

// startTicks reads a process's start time (field 22 of /proc/PID/stat, in
// clock ticks since boot). A zombie counts as gone.
func startTicks(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
