package projection

import (
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// lagTracker remembers when the controller first saw each ConfigSet at its
// current revision, so that the time until that revision is projected, and
// until its consumers point at it, can be observed once per revision.
type lagTracker struct {
	mu   sync.Mutex
	seen map[cache.ObjectName]*revisionSeen
}

type revisionSeen struct {
	revision                     int64
	at                           time.Time
	projected, pushed, rolledOut bool
}

func newLagTracker() *lagTracker {
	return &lagTracker{seen: map[cache.ObjectName]*revisionSeen{}}
}

// observe notes a ConfigSet from an informer event.
func (t *lagTracker) observe(cs *configv1beta1.ConfigSet) {
	key := cache.ObjectName{Namespace: cs.Namespace, Name: cs.Name}
	rev := cs.Status.CurrentRevision
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.seen[key]; ok && s.revision >= rev {
		return
	}
	t.seen[key] = &revisionSeen{revision: rev, at: time.Now()}
}

// forget drops a deleted ConfigSet.
func (t *lagTracker) forget(key cache.ObjectName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.seen, key)
}

// done records the outcome of a sync at revision rev of key: whether the
// revision is projected, whether workloads were pointed at it, and whether
// every consumer that had to change now does. Each lag is observed once per
// revision, the rollout's only when some workload had to change.
func (t *lagTracker) done(key cache.ObjectName, rev int64, projected, pushed, rolloutComplete bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.seen[key]
	if !ok || s.revision != rev {
		return
	}
	since := time.Since(s.at).Seconds()
	if projected && !s.projected {
		s.projected = true
		projectionLag.Observe(since)
	}
	s.pushed = s.pushed || pushed
	if s.pushed && rolloutComplete && !s.rolledOut {
		s.rolledOut = true
		rolloutLag.Observe(since)
	}
}
