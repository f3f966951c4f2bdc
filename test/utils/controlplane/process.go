package controlplane

import (
	"capstan.dev/capstan/test/utils/process"
)

// Process is one server the cluster started. It is recorded in the state file
// so that a later process (hack/local-cluster.sh down) can stop exactly it:
// by PID, while its start time still matches (see test/utils/process).
type Process struct {
	// process.Process holds name, pid, startTicks, args (binary first;
	// StartCapstan runs them again) and logFile.
	process.Process
	// URL is where it serves, when the cluster needs to say so
	// (capstan-controller-manager's /healthz and /metrics).
	URL string `json:"url,omitempty"`
}

// startProcess runs args in dir with output appended to logFile. A detached
// process gets its own session, so that it survives the caller; otherwise it
// is killed when the caller dies, so that a crashed test leaves nothing behind.
func startProcess(name, dir, logFile string, args []string, detach bool) (*Process, error) {
	p, err := process.Start(process.Options{Name: name, Args: args, Dir: dir, LogFile: logFile, Detach: detach})
	if err != nil {
		return nil, err
	}
	return &Process{Process: *p}, nil
}
