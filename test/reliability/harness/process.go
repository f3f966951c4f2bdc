package harness

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"capstan.dev/capstan/test/utils/process"
)

// child is a restartable process the harness started, with its output
// appended to a log file: each start is a new process.Process, signalled and
// killed by its PID, never by name.
type child struct {
	name string

	mu sync.Mutex
	// cur is the process to signal and kill: nil before the first start
	// and after kill.
	cur *process.Process
	// last is the latest process started, for its exit; kill keeps it.
	last *process.Process
}

// start runs binary with args, appending its output to logFile.
func (c *child) start(binary string, args []string, logFile string) error {
	p, err := process.Start(process.Options{Name: c.name, Args: append([]string{binary}, args...), LogFile: logFile})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cur, c.last = p, p
	c.mu.Unlock()
	return nil
}

// pid is the current process's id, or 0.
func (c *child) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return 0
	}
	return c.cur.PID
}

// exitedCh is closed when the latest process has exited (nil before the first start).
func (c *child) exitedCh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return nil
	}
	return c.last.Exited()
}

// exitCode is the latest process's exit code, or -1 while it runs or when a signal ended it.
func (c *child) exitCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return -1
	}
	return c.last.ExitCode()
}

// running returns the running process.
func (c *child) running() (*process.Process, error) {
	c.mu.Lock()
	p := c.cur
	c.mu.Unlock()
	if p == nil {
		return nil, errors.New(c.name + " is not running")
	}
	return p, nil
}

// signal sends sig to the running process.
func (c *child) signal(sig syscall.Signal) error {
	p, err := c.running()
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// pause stops the running process and waits until all its threads are stopped.
func (c *child) pause() error {
	p, err := c.running()
	if err != nil {
		return err
	}
	return p.Pause(10 * time.Second)
}

// kill sends SIGKILL, then SIGCONT so that a paused process can die, and
// waits for the exit.
func (c *child) kill() {
	c.mu.Lock()
	p := c.cur
	c.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.Kill()
	c.mu.Lock()
	if c.cur == p {
		c.cur = nil
	}
	c.mu.Unlock()
}
