package process

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func lookPath(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("no %s binary", name)
	}
	return path
}

// TestStartStop starts sleep, checks it runs with its start time and a
// header in its log, and stops it with SIGTERM.
func TestStartStop(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "logs", "sleeper.log")
	p, err := Start(Options{Name: "sleeper", Args: []string{lookPath(t, "sleep"), "60"}, Dir: dir, LogFile: log})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() || p.StartTicks == 0 || p.PID <= 0 {
		t.Fatalf("started process: running %v, pid %d, start ticks %d", p.Running(), p.PID, p.StartTicks)
	}
	if code := p.ExitCode(); code != -1 {
		t.Fatalf("exit code %d while running, want -1", code)
	}
	select {
	case <-p.Exited():
		t.Fatal("Exited is closed while the process runs")
	default:
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "==== ") || !strings.Contains(string(data), "starting "+p.Args[0]+" 60") {
		t.Fatalf("log has no header line:\n%s", data)
	}

	start := time.Now()
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("stop took %s: SIGTERM should end sleep at once", d)
	}
	if p.Running() {
		t.Fatal("the process runs after Stop")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited is open after Stop")
	}
	// sleep dies of SIGTERM: no exit code.
	if code := p.ExitCode(); code != -1 {
		t.Fatalf("exit code %d after SIGTERM, want -1", code)
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Fatal("signalling a stopped process succeeded")
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatalf("stopping a stopped process: %v", err)
	}
}

// TestExitCode checks the code of a process that exits by itself, and that
// a second start appends to the same log.
func TestExitCode(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "exit.log")
	sh := lookPath(t, "sh")
	for _, want := range []string{"first", "second"} {
		p, err := Start(Options{Name: "exit", Args: []string{sh, "-c", "echo " + want + "; exit 7"}, LogFile: log})
		if err != nil {
			t.Fatal(err)
		}
		if !p.WaitExit(10 * time.Second) {
			t.Fatal("sh -c 'exit 7' did not exit")
		}
		if code := p.ExitCode(); code != 7 {
			t.Fatalf("exit code %d, want 7", code)
		}
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(data); !strings.Contains(s, "first") || !strings.Contains(s, "second") || strings.Count(s, "==== ") != 2 {
		t.Fatalf("log does not hold both runs, each after a header:\n%s", s)
	}
}

// TestStopSignalsOnlyTheRecordedProcess checks that a record loaded from a
// state file stops the process, and that a record whose start time does
// not match (a reused PID) is never signalled.
func TestStopSignalsOnlyTheRecordedProcess(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(Options{Name: "sleeper", Args: []string{lookPath(t, "sleep"), "60"}, Dir: dir, LogFile: filepath.Join(dir, "sleeper.log")})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() || p.StartTicks == 0 {
		t.Fatalf("started process: running %v, start ticks %d", p.Running(), p.StartTicks)
	}

	// As loaded from a state file by another process: no cmd to wait on.
	loaded := &Process{Name: p.Name, PID: p.PID, StartTicks: p.StartTicks}
	if !loaded.Running() {
		t.Fatal("a loaded record of a live process reports it stopped")
	}
	impostor := &Process{Name: "impostor", PID: p.PID, StartTicks: p.StartTicks + 1}
	if impostor.Running() {
		t.Fatal("a record with another start time claims the process")
	}
	if err := impostor.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := impostor.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := impostor.Signal(syscall.SIGKILL); err == nil {
		t.Fatal("signalling a record with another start time succeeded")
	}
	if !p.Running() {
		t.Fatal("stopping a record with another start time signalled the process")
	}

	start := time.Now()
	if err := loaded.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() || loaded.Running() {
		t.Fatal("the process runs after stop")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("stop took %s: SIGTERM should end sleep at once", d)
	}
}

// TestKill checks that Kill ends a process that ignores SIGTERM and one
// that is paused.
func TestKill(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(Options{Name: "stubborn", Args: []string{lookPath(t, "sh"), "-c", "trap '' TERM; sleep 60"}, LogFile: filepath.Join(dir, "stubborn.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("a paused process reports it stopped")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("the process runs after Kill")
	}
	if code := p.ExitCode(); code != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1", code)
	}
}

// TestPause checks that Pause returns with the process stopped, and that
// SIGCONT runs it again.
func TestPause(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(Options{Name: "sleeper", Args: []string{lookPath(t, "sleep"), "60"}, LogFile: filepath.Join(dir, "sleeper.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Kill() }()
	if stopped, err := allThreadsStopped(p.PID); err != nil || stopped {
		t.Fatalf("a running process reads as stopped (%v, %v)", stopped, err)
	}
	if err := p.Pause(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if stopped, err := allThreadsStopped(p.PID); err != nil || !stopped {
		t.Fatalf("after Pause: stopped %v (%v)", stopped, err)
	}
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		stopped, err := allThreadsStopped(p.PID)
		if err != nil {
			t.Fatal(err)
		}
		if !stopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still stopped 10s after SIGCONT")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Pause(time.Second); err == nil {
		t.Error("Pause of a process that is gone succeeded")
	}
}

// TestWaitReadyQuotesTheLog checks that a process that dies before it is
// ready fails with the end of its log.
func TestWaitReadyQuotesTheLog(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(Options{Name: "failing", Args: []string{lookPath(t, "sh"), "-c", "echo 'the reason it failed' >&2; exit 3"},
		Dir: dir, LogFile: filepath.Join(dir, "failing.log")})
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(t.Context(), func(context.Context) error { return errors.New("not ready") })
	if err == nil || !strings.Contains(err.Error(), "the reason it failed") || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("WaitReady: %v", err)
	}
	if code := p.ExitCode(); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
}

// TestWaitReady checks that WaitReady returns once the check passes.
func TestWaitReady(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(Options{Name: "sleeper", Args: []string{lookPath(t, "sleep"), "60"}, LogFile: filepath.Join(dir, "sleeper.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	calls := 0
	if err := p.WaitReady(t.Context(), func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
}
