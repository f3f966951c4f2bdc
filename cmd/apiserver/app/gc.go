package app

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target growth of the heap
// between collections (Go's GOGC) when GOGC is not set. Go's own default,
// 100, lets the heap reach twice what is live; Capstan's live heap is about
// half the CRD's kube-apiserver's for the same objects, so at 100 it
// collects twice as often per byte allocated, and in the write path that
// was 9–12% of its CPU (docs/benchmarks.md). At 200 the heap may reach three
// times what is live: still below the CRD's peak, and GOMEMLIMIT, which the
// deployment sets to the container's memory limit, makes the collector work
// harder before the limit whatever GOGC says.
const DefaultGCPercent = 200

// SetGCPercent applies DefaultGCPercent unless the environment sets GOGC,
// which always wins; it returns the percent in force.
func SetGCPercent() int {
	return setGCPercent(os.LookupEnv)
}

func setGCPercent(lookupEnv func(string) (string, bool)) int {
	if _, set := lookupEnv("GOGC"); set {
		current := debug.SetGCPercent(-1)
		debug.SetGCPercent(current)
		return current
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
