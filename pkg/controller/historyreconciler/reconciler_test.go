package historyreconciler

import (
	"testing"
	"time"

	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
)

// The grace period runs per revision: when a ConfigSet moves on to a new
// revision while an older one was missing, its request gets the whole grace
// period to write the new one before the reconciler would.
func TestGracePeriodRunsPerRevision(t *testing.T) {
	const grace = 200 * time.Millisecond
	r := &Reconciler{history: history.New(nil, history.Options{RepairGrace: grace}), missingFrom: map[item]missing{}}
	key := item{namespace: "ns", name: "cs"}
	if wait := r.waitForWriter(key, 5); wait != grace {
		t.Fatalf("first sight of revision 5 missing: wait %v, want %v", wait, grace)
	}
	r.mu.Lock()
	r.missingFrom[key] = missing{revision: 5, since: time.Now().Add(-2 * grace)}
	r.mu.Unlock()
	if wait := r.waitForWriter(key, 5); wait != 0 {
		t.Errorf("revision 5 missing for twice the grace period: wait %v, want 0", wait)
	}
	if wait := r.waitForWriter(key, 6); wait != grace {
		t.Errorf("revision 6 missing just now, after 5 was missing long: wait %v, want the whole %v", wait, grace)
	}
}
