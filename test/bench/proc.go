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

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

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

// cpuSeconds is utime+stime of a process, in seconds.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	// The command name may hold spaces; fields restart after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return float64(u+st) / clockTicks
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
