package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Register is the state of one ConfigSet as the history checker models it:
// the value the load writes into one entry, and status.currentRevision, which
// every change of the entries raises by exactly one.
type Register struct {
	Value    string
	Revision int64
}

// RegisterOp is an operation on one ConfigSet.
type RegisterOp struct {
	Key   string
	Write bool
	// Value is what a write stores.
	Value string
}

// RegisterResult is what the server answered.
type RegisterResult struct {
	// Unknown marks a write that timed out, got a 5xx or 429, or lost its
	// connection: it may or may not have happened.
	Unknown bool
	Register
}

// History records operations with their call and return times for a
// linearizability check with porcupine. It is safe for concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// NewHistory starts an empty history; times are measured from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the time to use as an operation's call or return.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Done records an operation whose outcome the client knows.
func (h *History) Done(client int, op RegisterOp, call int64, result Register) {
	h.add(porcupine.Operation{ClientId: client, Input: op, Call: call, Output: RegisterResult{Register: result}, Return: h.Now()})
}

// Unknown records a write whose outcome the client does not know. It is open
// until the end of time: the checker may place it anywhere after its call, or
// treat it as never having happened (placed after every other operation).
// Reads with unknown outcomes are not recorded: they constrain nothing.
func (h *History) Unknown(client int, op RegisterOp, call int64) {
	if !op.Write {
		return
	}
	h.add(porcupine.Operation{ClientId: client, Input: op, Call: call, Output: RegisterResult{Unknown: true}, Return: math.MaxInt64})
}

func (h *History) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Len is the number of recorded operations.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// RegisterModel is the sequential specification: a write sets the value and
// raises the revision by one, unless the value is already there; a read
// returns both. Each ConfigSet is checked
// on its own (the partition by key).
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(RegisterOp).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return Register{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(Register), input.(RegisterOp), output.(RegisterResult)
		if in.Write {
			next := Register{Value: in.Value, Revision: s.Revision + 1}
			if in.Value == s.Value {
				// The entries do not change (a rollback to them): no revision.
				next = s
			}
			if out.Unknown {
				return true, next
			}
			return out.Register == next, next
		}
		return out.Register == s, s
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(RegisterOp), output.(RegisterResult)
		switch {
		case in.Write && out.Unknown:
			return fmt.Sprintf("write(%s, %q) -> unknown", in.Key, in.Value)
		case in.Write:
			return fmt.Sprintf("write(%s, %q) -> rev %d", in.Key, in.Value, out.Revision)
		default:
			return fmt.Sprintf("read(%s) -> %q rev %d", in.Key, out.Value, out.Revision)
		}
	},
	DescribeState: func(state interface{}) string {
		s := state.(Register)
		return fmt.Sprintf("%q rev %d", s.Value, s.Revision)
	},
}

// CheckResult summarises a linearizability check.
type CheckResult struct {
	Result     porcupine.CheckResult
	Operations int
	Unknown    int
	// Visualization is an HTML file showing the history when the check did
	// not pass, or "".
	Visualization string
}

// Check runs porcupine on the history. When the history is not linearizable,
// or the check times out, it writes porcupine's visualization into dir.
func (h *History) Check(timeout time.Duration, dir string) CheckResult {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	res := CheckResult{Operations: len(ops)}
	for _, op := range ops {
		if op.Output.(RegisterResult).Unknown {
			res.Unknown++
		}
	}
	var info porcupine.LinearizationInfo
	res.Result, info = porcupine.CheckOperationsVerbose(RegisterModel, ops, timeout)
	if res.Result != porcupine.Ok && dir != "" {
		path := filepath.Join(dir, "history.html")
		if err := os.MkdirAll(dir, 0o755); err == nil && porcupine.VisualizePath(RegisterModel, info, path) == nil {
			res.Visualization = path
		}
	}
	return res
}
