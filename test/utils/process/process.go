// Package process starts the servers tests run as child processes and stops
// them again: by PID only, never by name, and only while that PID still is
// the process that was started (its start time in /proc/PID/stat).
package process

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

// killWait bounds the wait for a process to exit after SIGKILL.
const killWait = 10 * time.Second

// Options say how to start a process.
type Options struct {
	// Name is the role, for messages and the state of whoever records it.
	Name string
	// Args is the command line, binary first.
	Args []string
	// Dir is the working folder; empty means the caller's.
	Dir string
	// LogFile receives stdout and stderr, appended after a header line.
	LogFile string
	// Detach gives the process its own session, so that it survives the
	// caller. Otherwise it is killed when the caller dies (Pdeathsig), so
	// that a crashed test leaves nothing behind.
	Detach bool
}

// Process is one child process. The exported fields are what another
// process needs to find and stop exactly it (they are written to state
// files as JSON, so their names stay).
type Process struct {
	// Name is the role.
	Name string `json:"name"`
	// PID is the process id.
	PID int `json:"pid"`
	// StartTicks is the start time from /proc/PID/stat; a PID whose start time
	// differs belongs to another process that reused the number, and is never
	// signalled.
	StartTicks uint64 `json:"startTicks"`
	// Args is the command line, binary first.
	Args []string `json:"args"`
	// LogFile receives the process's stdout and stderr.
	LogFile string `json:"logFile"`

	// run is set only in the process that started it, which can wait for
	// it; a process loaded from a state file is polled instead. It is a
	// pointer so that a copy of the Process still sees the exit.
	run *run
}

// run is the process as its parent sees it.
type run struct {
	cmd *exec.Cmd
	// done is closed when the process has exited and been reaped; state is
	// written before.
	done  chan struct{}
	state *os.ProcessState
}

// Start runs opts.Args with its output appended to opts.LogFile, after a
// header line saying when and what started.
func Start(opts Options) (*Process, error) {
	if len(opts.Args) == 0 {
		return nil, fmt.Errorf("starting %s: no command", opts.Name)
	}
	if err := os.MkdirAll(filepath.Dir(opts.LogFile), 0o755); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	fmt.Fprintf(out, "\n==== %s: starting %s\n", time.Now().Format(time.RFC3339), strings.Join(opts.Args, " "))

	cmd := exec.Command(opts.Args[0], opts.Args[1:]...)
	cmd.Dir = opts.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	if opts.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", opts.Name, err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	p := &Process{Name: opts.Name, PID: cmd.Process.Pid, Args: opts.Args, LogFile: opts.LogFile, run: r}
	p.StartTicks, _ = startTicks(p.PID)
	go func() {
		_ = cmd.Wait()
		r.state = cmd.ProcessState
		close(r.done)
	}()
	return p, nil
}

// Running reports whether the process is still alive (a zombie is not).
func (p *Process) Running() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	if p.run != nil {
		select {
		case <-p.run.done:
			return false
		default:
			return true
		}
	}
	ticks, err := startTicks(p.PID)
	return err == nil && ticks == p.StartTicks
}

// Exited returns a channel closed when the process exits; for a process
// loaded from a state file it is polled.
func (p *Process) Exited() <-chan struct{} {
	if p.run != nil {
		return p.run.done
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

// ExitCode is the exit code, or -1 while the process runs, when a signal
// ended it, or when another process started it.
func (p *Process) ExitCode() int {
	if p.run == nil {
		return -1
	}
	select {
	case <-p.run.done:
		return p.run.state.ExitCode()
	default:
		return -1
	}
}

// Signal sends sig to the process, by PID, while it still is this process.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return fmt.Errorf("%s (pid %d) is not running", p.Name, p.PID)
	}
	var err error
	if p.run != nil {
		// os.Process signals through a pidfd: never a process that reused the PID.
		err = p.run.cmd.Process.Signal(sig)
		if errors.Is(err, os.ErrProcessDone) {
			err = syscall.ESRCH
		}
	} else {
		err = syscall.Kill(p.PID, sig)
	}
	if err != nil {
		return fmt.Errorf("signalling %s (pid %d) with %v: %w", p.Name, p.PID, sig, err)
	}
	return nil
}

// Pause stops the process with SIGSTOP and returns once every one of its
// threads is stopped. The kernel stops a process's threads after kill(2) has
// returned, each when it next leaves the kernel; on a loaded machine a thread
// can still answer a request in between, so a test that needs the process to
// answer nothing waits for this.
func (p *Process) Pause(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		stopped, err := allThreadsStopped(p.PID)
		if err == nil && stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not stopped %v after SIGSTOP (%v)", p.Name, p.PID, timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped by a signal).
func allThreadsStopped(pid int) (bool, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false, err
	}
	for _, task := range tasks {
		fields, err := statFieldsOf(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false, err
		}
		if fields[0] != "T" {
			return false, nil
		}
	}
	return len(tasks) > 0, nil
}

// signalIfRunning is Signal that counts a process which is gone, or goes
// meanwhile, as success.
func (p *Process) signalIfRunning(sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(sig); err != nil && !errors.Is(err, syscall.ESRCH) && p.Running() {
		return err
	}
	return nil
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL and waits again.
func (p *Process) Stop(grace time.Duration) error {
	if err := p.signalIfRunning(syscall.SIGTERM); err != nil {
		return err
	}
	if p.WaitExit(grace) {
		return nil
	}
	return p.Kill()
}

// Kill sends SIGKILL, as a crash would, then SIGCONT so that a paused
// process can die, and waits for the exit.
func (p *Process) Kill() error {
	if err := p.signalIfRunning(syscall.SIGKILL); err != nil {
		return err
	}
	_ = p.signalIfRunning(syscall.SIGCONT)
	if !p.WaitExit(killWait) {
		return fmt.Errorf("%s (pid %d) still runs after SIGKILL", p.Name, p.PID)
	}
	return nil
}

// WaitExit reports whether the process exited within timeout.
func (p *Process) WaitExit(timeout time.Duration) bool {
	if p.run != nil {
		select {
		case <-p.run.done:
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

// WaitReady polls check, each call bounded to 5s, until it succeeds. It
// fails early when the process exits, and its errors carry the tail of the
// process's log.
func (p *Process) WaitReady(ctx context.Context, check func(context.Context) error) error {
	exited := p.Exited()
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
			return fmt.Errorf("%s (pid %d) exited before it was ready (last check: %v); end of %s:\n%s", p.Name, p.PID, last, p.LogFile, p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not ready: %v (%w); end of %s:\n%s", p.Name, p.PID, last, ctx.Err(), p.LogFile, p.LogTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// LogTail returns the end of the process's log, or a note saying why it cannot.
func (p *Process) LogTail() string { return LogTail(p.LogFile) }

// LogTail returns the last few KiB of a log file from a line start, or a
// note saying why it cannot.
func LogTail(path string) string {
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

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// statFields returns the fields of /proc/PID/stat from field 3 (the state)
// on: statFields(pid)[n-3] is field n.
func statFields(pid int) ([]string, error) {
	return statFieldsOf("/proc/" + strconv.Itoa(pid) + "/stat")
}

// statFieldsOf is statFields for the stat file at path: a process's or one
// of its threads' (/proc/PID/task/TID/stat, the same format).
func statFieldsOf(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return nil, fmt.Errorf("unexpected %s", path)
	}
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 20 {
		return nil, fmt.Errorf("unexpected %s", path)
	}
	return fields, nil
}

// startTicks reads a process's start time (field 22 of /proc/PID/stat, in
// clock ticks since boot). A zombie counts as gone.
func startTicks(pid int) (uint64, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(fields[22-3], 10, 64)
}

// CPUSeconds is the user plus system CPU time of pid so far (fields 14 and
// 15 of /proc/PID/stat), or 0 when it cannot be read.
func CPUSeconds(pid int) float64 {
	fields, err := statFields(pid)
	if err != nil {
		return 0
	}
	u, _ := strconv.ParseUint(fields[14-3], 10, 64)
	s, _ := strconv.ParseUint(fields[15-3], 10, 64)
	return float64(u+s) / clockTicks
}
