package controlplane

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// Status is a report on a cluster: its processes and its APIServices.
type Status struct {
	// Processes are the recorded processes, in start order.
	Processes []ProcessStatus
	// APIServices holds the Available condition of each APIService; it is
	// nil when kube-apiserver could not be asked, and APIServicesErr says why.
	APIServices    map[string]Condition
	APIServicesErr error
}

// ProcessStatus is one process of a Status.
type ProcessStatus struct {
	Name    string
	PID     int
	Running bool
	LogFile string
}

// Healthy reports whether every process runs and every APIService is Available.
func (s Status) Healthy() bool {
	if len(s.Processes) == 0 || s.APIServices == nil {
		return false
	}
	for _, p := range s.Processes {
		if !p.Running {
			return false
		}
	}
	for _, c := range s.APIServices {
		if c.Status != "True" {
			return false
		}
	}
	return true
}

// Status reports on the processes and, when kube-apiserver runs, the APIServices.
func (c *Cluster) Status(ctx context.Context) Status {
	c.mu.Lock()
	var s Status
	kubeRunning := false
	for _, p := range c.Processes {
		running := p.Running()
		s.Processes = append(s.Processes, ProcessStatus{Name: p.Name, PID: p.PID, Running: running, LogFile: p.LogFile})
		if p.Name == ProcessKubeAPIServer {
			kubeRunning = running
		}
	}
	c.mu.Unlock()
	if !kubeRunning {
		s.APIServicesErr = fmt.Errorf("kube-apiserver is not running")
		return s
	}
	s.APIServices, s.APIServicesErr = c.APIServiceConditions(ctx)
	return s
}

// Print writes the status for people.
func (s Status) Print(w io.Writer) {
	if len(s.Processes) == 0 {
		fmt.Fprintln(w, "no processes recorded: the cluster is down")
	}
	for _, p := range s.Processes {
		state := "running"
		if !p.Running {
			state = "NOT RUNNING"
		}
		fmt.Fprintf(w, "%-15s pid %-8d %-12s log %s\n", p.Name, p.PID, state, p.LogFile)
	}
	if s.APIServicesErr != nil {
		fmt.Fprintf(w, "APIServices: unknown (%v)\n", s.APIServicesErr)
		return
	}
	names := make([]string, 0, len(s.APIServices))
	for name := range s.APIServices {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := s.APIServices[name]
		fmt.Fprintf(w, "APIService %-28s Available=%s (%s: %s)\n", name, c.Status, c.Reason, c.Message)
	}
}
