package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"capstan.dev/capstan/test/utils/process"
)

// processes records every process the bench started, so that an error or an
// interrupt still stops each of them.
var processes struct {
	sync.Mutex
	list []*process.Process
}

// startProcess runs args with output appended to logFile. The child is
// killed if the bench dies (Pdeathsig), so that a crash leaves nothing behind.
func startProcess(name, logFile string, args []string) (*process.Process, error) {
	p, err := process.Start(process.Options{Name: name, Args: args, LogFile: logFile})
	if err != nil {
		return nil, err
	}
	processes.Lock()
	processes.list = append(processes.list, p)
	processes.Unlock()
	return p, nil
}

// stopAll stops every process still running, newest first.
func stopAll() {
	processes.Lock()
	list := processes.list
	processes.list = nil
	processes.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		_ = list[i].Stop(15 * time.Second)
	}
}

// rssMiB is VmRSS of a process in MiB.
func rssMiB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				kb, _ := strconv.ParseFloat(fields[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// poll calls f until it succeeds or the context ends; a wait on a process
// the bench started is that process's WaitReady, which also ends when it exits.
func poll(ctx context.Context, what string, f func(context.Context) error) error {
	var last error
	for {
		if last = f(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waiting for %s: %w", what, ctx.Err()), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
