package txnstorage

import (
	"context"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/storage"
)

// suggestionRecorder is a store whose writes succeed at the resource
// versions it is told, and which records the watch cache suggestion each
// update was given.
type suggestionRecorder struct {
	storage.Interface
	nextRV     int
	suggestion runtime.Object
}

func (r *suggestionRecorder) setRV(obj runtime.Object) {
	obj.(*metav1.PartialObjectMetadata).ResourceVersion = strconv.Itoa(r.nextRV)
}

func (r *suggestionRecorder) Create(_ context.Context, _ string, _, out runtime.Object, _ uint64) error {
	r.setRV(out)
	return nil
}

func (r *suggestionRecorder) GuaranteedUpdate(_ context.Context, _ string, destination runtime.Object, _ bool,
	_ *storage.Preconditions, _ storage.UpdateFunc, cachedExistingObject runtime.Object) error {
	r.suggestion = cachedExistingObject
	r.setRV(destination)
	return nil
}

func (r *suggestionRecorder) Delete(context.Context, string, runtime.Object, *storage.Preconditions,
	storage.ValidateObjectFunc, runtime.Object, storage.DeleteOptions) error {
	return nil
}

func atRV(rv int) runtime.Object {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.Itoa(rv)}}
}

// TestCacheSuggestionBehindOwnWrite: a change that writes a revision is tried
// on the watch cache's copy only when that copy holds the last write of the
// object this server made; a write without a revision keeps the suggestion
// as k8s.io/apiserver gives it.
func TestCacheSuggestionBehindOwnWrite(t *testing.T) {
	rec := &suggestionRecorder{}
	p := &preparing{Interface: rec}
	ctx := context.Background()
	change := WithExtra(ctx, func(context.Context, runtime.Object, runtime.Object) *Extra { return nil })
	const key = "/configsets/ns/foo"
	update := func(ctx context.Context, writeRV int, cached runtime.Object) runtime.Object {
		t.Helper()
		rec.nextRV = writeRV
		if err := p.GuaranteedUpdate(ctx, key, &metav1.PartialObjectMetadata{}, false, nil, nil, cached); err != nil {
			t.Fatal(err)
		}
		return rec.suggestion
	}

	// Nothing written yet: the cache's copy is all there is to go by.
	if got := update(change, 11, atRV(10)); got == nil {
		t.Errorf("first change: suggestion at 10 dropped, want it used")
	}
	// This server wrote 11; a copy at 10 trails it, one at 11 does not.
	if got := update(change, 12, atRV(10)); got != nil {
		t.Errorf("change after the write of 11: suggestion at 10 kept, want it dropped")
	}
	if got := update(change, 13, atRV(12)); got == nil {
		t.Errorf("change after the write of 12: suggestion at 12 dropped, want it used")
	}
	// A write without a revision keeps its suggestion but is remembered.
	if got := update(ctx, 14, atRV(10)); got == nil {
		t.Errorf("plain update: suggestion dropped, want it kept as given")
	}
	if got := update(change, 15, atRV(13)); got != nil {
		t.Errorf("change after the plain write of 14: suggestion at 13 kept, want it dropped")
	}
	// A create is remembered too.
	rec.nextRV = 20
	if err := p.Create(ctx, key, &metav1.PartialObjectMetadata{}, &metav1.PartialObjectMetadata{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := update(change, 21, atRV(15)); got != nil {
		t.Errorf("change after the create at 20: suggestion at 15 kept, want it dropped")
	}
	// After a delete, nothing is known of the key again.
	if err := p.Delete(ctx, key, &metav1.PartialObjectMetadata{}, nil, nil, nil, storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := update(change, 31, atRV(30)); got == nil {
		t.Errorf("change after the delete: suggestion at 30 dropped, want it used")
	}
}

// TestRecentWritesSweep: the table of writes forgets writes older than
// writeMemory, so it holds about the keys written recently.
func TestRecentWritesSweep(t *testing.T) {
	var w recentWrites
	for i := range 100 {
		w.record("/old/"+strconv.Itoa(i), atRV(i+1))
	}
	w.mu.Lock()
	for k, e := range w.byKey {
		e.at = e.at.Add(-2 * writeMemory)
		w.byKey[k] = e
	}
	w.mu.Unlock()
	for i := range 300 {
		w.record("/new/"+strconv.Itoa(i), atRV(1000+i))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.byKey {
		if k[:5] == "/old/" {
			t.Fatalf("%s is still remembered after %v", k, 2*writeMemory)
		}
	}
	if len(w.byKey) != 300 {
		t.Errorf("table holds %d keys, want the 300 recent ones", len(w.byKey))
	}
}
