package intern

import (
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// fresh returns a string with the given contents in an allocation of its own,
// as a decoder produces one.
func fresh(s string) string { return strings.Clone(s) }

func TestEqualValuesShareMemory(t *testing.T) {
	tab := New(1024)
	big := strings.Repeat("v", 4096)
	a, b := tab.String(fresh(big)), tab.String(fresh(big))
	if a != big || b != big {
		t.Fatal("interned strings differ from their input")
	}
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("two equal large strings do not share memory")
	}
	bs := tab.Bytes([]byte(big))
	if unsafe.SliceData(bs) != unsafe.StringData(a) {
		t.Error("a byte slice equal to an interned string does not share its memory")
	}
	if cap(bs) != len(bs) {
		t.Errorf("cap %d != len %d: an append would write into shared memory", cap(bs), len(bs))
	}
	other := tab.String(fresh(strings.Repeat("w", 4096)))
	if unsafe.StringData(other) == unsafe.StringData(a) {
		t.Error("different values share memory")
	}
	if n := tab.Len(); n != 2 {
		t.Errorf("table holds %d values, want 2", n)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}

func TestSmallValuesAreLeftAlone(t *testing.T) {
	tab := New(1024)
	small := fresh(strings.Repeat("s", 1023))
	if got := tab.String(small); unsafe.StringData(got) != unsafe.StringData(small) {
		t.Error("a value under the minimum size was copied")
	}
	if got := tab.Bytes(nil); got != nil {
		t.Errorf("Bytes(nil) = %v", got)
	}
	if n := tab.Len(); n != 0 {
		t.Errorf("table holds %d values, want 0", n)
	}
}

// The table must not keep values alive: once nothing refers to a value, the
// garbage collector frees it and the table forgets it.
func TestFreedValuesAreForgotten(t *testing.T) {
	tab := New(16)
	for i := range 100 {
		_ = tab.String(fresh(strings.Repeat(string(rune('a'+i%26)), 64+i)))
	}
	kept := tab.String(fresh(strings.Repeat("k", 64)))
	deadline := time.Now().Add(10 * time.Second)
	for tab.Len() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("table still holds %d values after their strings were dropped", tab.Len())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := tab.String(fresh(strings.Repeat("k", 64))); unsafe.StringData(got) != unsafe.StringData(kept) {
		t.Error("a value still referred to was forgotten")
	}
	runtime.KeepAlive(kept)
}
