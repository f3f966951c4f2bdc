package integration

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

const (
	// writerCount is how many goroutines change the shared ConfigSet at once.
	writerCount = 16
	// writesPerWriter is how many changes each of them makes.
	writesPerWriter = 25
)

// ack is one write the server acknowledged: the revision the response
// reported and the entries it stored.
type ack struct {
	writer, write int
	revision      int64
	data          map[string]string
}

// conflictBackoff retries a get-modify-update on conflict for as long as
// sixteen writers may keep one another waiting; retry.DefaultRetry gives up
// after five attempts, which would be a test failure, not a server one. It has
// no Cap: wait.Backoff stops retrying once the duration reaches its cap.
var conflictBackoff = wait.Backoff{Steps: 100000, Duration: 2 * time.Millisecond, Factor: 1, Jitter: 1}

// TestHistoryConcurrentWriters has 16 writers change one ConfigSet 25 times
// each with get-modify-update, retrying on conflict. Writer i sets key w<i>
// to the number of its write, so every write changes the entries. Every
// acknowledged write must have its own revision number, the history must be
// exactly 1..401 without a gap, and each acknowledged revision must record
// exactly the entries that write stored.
func TestHistoryConcurrentWriters(t *testing.T) {
	e := sharedEnv(t)
	const ns, name = "hi-concurrent", "shared"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	cs := configSet(name, map[string]string{"base": "0"}, nil)
	cs.Spec.RevisionHistoryLimit = ptr.To[int32](1000)
	created := e.mustCreate(t, ns, cs)

	start := time.Now()
	var (
		mu        sync.Mutex
		acks      []ack
		conflicts int
		wg        sync.WaitGroup
	)
	for w := range writerCount {
		wg.Go(func() {
			key := fmt.Sprintf("w%02d", w)
			for n := 1; n <= writesPerWriter; n++ {
				var out *v1beta1.ConfigSet
				attempts := 0
				err := retry.RetryOnConflict(conflictBackoff, func() error {
					attempts++
					cur, err := client.Get(e.ctx, name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					if cur.Spec.Data == nil {
						cur.Spec.Data = map[string]string{}
					}
					cur.Spec.Data[key] = fmt.Sprint(n)
					out, err = client.Update(e.ctx, cur, metav1.UpdateOptions{})
					return err
				})
				if err != nil {
					t.Errorf("writer %d, write %d: %v", w, n, err)
					return
				}
				if got := out.Spec.Data[key]; got != fmt.Sprint(n) {
					t.Errorf("writer %d, write %d: response has %s=%q", w, n, key, got)
				}
				mu.Lock()
				acks = append(acks, ack{writer: w, write: n, revision: out.Status.CurrentRevision, data: maps.Clone(out.Spec.Data)})
				conflicts += attempts - 1
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d writes acknowledged in %v, after %d conflicts", len(acks), time.Since(start).Round(time.Millisecond), conflicts)
	if t.Failed() {
		t.FailNow()
	}

	const wantFinal = 1 + writerCount*writesPerWriter
	if len(acks) != writerCount*writesPerWriter {
		t.Fatalf("%d writes acknowledged, want %d", len(acks), writerCount*writesPerWriter)
	}
	final := e.mustGet(t, ns, name)
	if final.Status.CurrentRevision != wantFinal {
		t.Errorf("final currentRevision = %d, want %d", final.Status.CurrentRevision, wantFinal)
	}
	for w := range writerCount {
		if got := final.Spec.Data[fmt.Sprintf("w%02d", w)]; got != fmt.Sprint(writesPerWriter) {
			t.Errorf("final w%02d = %q, want %d (a write was lost)", w, got, writesPerWriter)
		}
	}

	// The revision is written before the response, so the history is complete now.
	revs := e.listRevisions(t, ns, name)
	if got, want := revisionNumbers(revs), numberRange(1, wantFinal); !slices.Equal(got, want) {
		t.Fatalf("kept revisions = %v (%d), want 1..%d contiguous", got, len(got), wantFinal)
	}
	byRevision := make(map[int64]*v1beta1.ConfigRevision, len(revs))
	for i := range revs {
		byRevision[revs[i].Revision] = &revs[i]
	}
	requireRevision(t, byRevision[1], created, revisionWant{revision: 1, data: map[string]string{"base": "0"}})

	seen := make(map[int64]ack, len(acks))
	for _, ack := range acks {
		if prev, dup := seen[ack.revision]; dup {
			t.Errorf("revision %d acknowledged twice: writer %d write %d, and writer %d write %d",
				ack.revision, prev.writer, prev.write, ack.writer, ack.write)
			continue
		}
		seen[ack.revision] = ack
		rev := byRevision[ack.revision]
		if rev == nil {
			t.Errorf("writer %d write %d: acknowledged revision %d is not kept", ack.writer, ack.write, ack.revision)
			continue
		}
		if !sameEntries(rev.Data, rev.SecretData, ack.data, nil) {
			t.Errorf("writer %d write %d: revision %d records %v, the write stored %v", ack.writer, ack.write, ack.revision, rev.Data, ack.data)
		}
		if rev.Author != adminUser || rev.RollbackOf != 0 || rev.ChangeCause != "" {
			t.Errorf("revision %d: author %q rollbackOf %d changeCause %q, want %q, 0, empty", ack.revision, rev.Author, rev.RollbackOf, rev.ChangeCause, adminUser)
		}
	}
	// Every revision after the first is its predecessor with one entry changed.
	for n := int64(2); n <= wantFinal; n++ {
		prev, cur := byRevision[n-1], byRevision[n]
		if prev == nil || cur == nil {
			continue
		}
		var changed []string
		for k, v := range cur.Data {
			if prev.Data[k] != v {
				changed = append(changed, k)
			}
		}
		if len(changed) != 1 || len(cur.Data) < len(prev.Data) {
			t.Errorf("revision %d differs from revision %d in %v (want exactly one key): %v -> %v", n, n-1, changed, prev.Data, cur.Data)
		}
	}
}
