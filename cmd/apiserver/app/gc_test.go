package app

import (
	"runtime/debug"
	"testing"
)

func TestSetGCPercent(t *testing.T) {
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	debug.SetGCPercent(100)
	if got := setGCPercent(func(string) (string, bool) { return "", false }); got != DefaultGCPercent {
		t.Errorf("without GOGC: SetGCPercent returned %d, want %d", got, DefaultGCPercent)
	}
	if got := debug.SetGCPercent(-1); got != DefaultGCPercent {
		t.Errorf("without GOGC: the runtime's percent is %d, want %d", got, DefaultGCPercent)
	}

	// GOGC set: the runtime read it at start; whatever it holds stays.
	debug.SetGCPercent(75)
	if got := setGCPercent(func(k string) (string, bool) { return "75", k == "GOGC" }); got != 75 {
		t.Errorf("with GOGC=75: SetGCPercent returned %d, want 75", got)
	}
	if got := debug.SetGCPercent(-1); got != 75 {
		t.Errorf("with GOGC=75: the runtime's percent is %d, want 75 kept", got)
	}
}
