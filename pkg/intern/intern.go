// Package intern lets equal large values decoded at different times share one
// copy in memory.
//
// A watch cache keeps every version of an object for a while (kube-apiserver's
// keeps at least the last 75 seconds of events). When a user changes one small
// key of a ConfigSet beside a large value a hundred times, each version is
// decoded from etcd with its own copy of the large value, and the cache holds
// all of them. Interning the values on decode keeps one copy per distinct
// value however many versions refer to it.
//
// The table holds weak pointers only: a value stays in memory exactly as long
// as something else refers to it, and its entry is removed when the garbage
// collector frees it.
package intern

import (
	"hash/maphash"
	"runtime"
	"sync"
	"unsafe"
	"weak"
)

// Table shares the memory of equal values of at least MinSize bytes.
// The zero value is not usable; use New.
type Table struct {
	min  int
	seed maphash.Seed

	mu      sync.Mutex
	entries map[uint64]entry
}

// entry is one canonical copy: a weak pointer to the first byte of its
// allocation and its length.
type entry struct {
	ptr weak.Pointer[byte]
	n   int
}

// New returns a table that interns values of at least minSize bytes; smaller
// ones are not worth hashing and keeping an entry for.
func New(minSize int) *Table {
	return &Table{min: max(minSize, 1), seed: maphash.MakeSeed(), entries: map[uint64]entry{}}
}

// String returns a string equal to s that shares its memory with the other
// strings and byte slices the table returned for the same contents.
func (t *Table) String(s string) string {
	if len(s) < t.min {
		return s
	}
	p := t.intern(unsafe.Slice(unsafe.StringData(s), len(s)))
	if p == nil {
		return s
	}
	return unsafe.String(p, len(s))
}

// Bytes returns a slice equal to b that shares its memory with the others the
// table returned for the same contents. Its capacity is its length, so an
// append never writes into the shared memory; its contents must not be
// modified, as is true of anything read from a cache.
func (t *Table) Bytes(b []byte) []byte {
	if len(b) < t.min {
		return b
	}
	p := t.intern(b)
	if p == nil {
		return b
	}
	return unsafe.Slice(p, len(b))[:len(b):len(b)]
}

// Len is the number of distinct values the table refers to, some of which the
// garbage collector may have freed already.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// intern returns the first byte of the canonical copy of b, making one from
// b if there is none, or nil when another value holds b's hash.
func (t *Table) intern(b []byte) *byte {
	h := maphash.Bytes(t.seed, b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[h]; ok {
		p := e.ptr.Value()
		if p != nil {
			if e.n == len(b) && string(unsafe.Slice(p, e.n)) == string(b) {
				return p
			}
			// A different value with the same hash: leave b alone.
			return nil
		}
	}
	// A copy of its own, so that the weak pointer is to the start of an
	// allocation that holds nothing else.
	own := make([]byte, len(b))
	copy(own, b)
	p := &own[0]
	wp := weak.Make(p)
	t.entries[h] = entry{ptr: wp, n: len(b)}
	runtime.AddCleanup(p, t.forget, cleanupArg{hash: h, ptr: wp})
	return p
}

type cleanupArg struct {
	hash uint64
	ptr  weak.Pointer[byte]
}

// forget removes the entry of a freed value, unless it was replaced since.
func (t *Table) forget(a cleanupArg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[a.hash]; ok && e.ptr == a.ptr {
		delete(t.entries, a.hash)
	}
}
