package projection

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/testutil"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
)

func count(t *testing.T, h *metrics.Histogram) uint64 {
	t.Helper()
	n, err := testutil.GetHistogramMetricCount(h.ObserverMetric)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Each lag is observed once per revision: projection when the pair is
// written, rollout only once some workload had to change and all that had to
// now point at the revision.
func TestLagObservedOncePerRevision(t *testing.T) {
	registerMetrics()
	tr := newLagTracker()
	key := cache.ObjectName{Namespace: "ns", Name: "web"}
	cs := &configv1beta1.ConfigSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}, Status: configv1beta1.ConfigSetStatus{CurrentRevision: 2}}
	projected, rolled := count(t, projectionLag), count(t, rolloutLag)

	tr.observe(cs)
	tr.done(key, 2, true, true, false) // projected; one workload pushed, another failed
	tr.done(key, 2, true, false, false)
	if got := count(t, projectionLag) - projected; got != 1 {
		t.Errorf("projection lag observed %d times for one revision, want 1", got)
	}
	if got := count(t, rolloutLag) - rolled; got != 0 {
		t.Errorf("rollout lag observed %d times before the rollout completed, want 0", got)
	}
	tr.done(key, 2, true, false, true) // the failed one succeeds
	tr.done(key, 2, true, false, true)
	if got := count(t, rolloutLag) - rolled; got != 1 {
		t.Errorf("rollout lag observed %d times for one revision, want 1", got)
	}
	tr.done(key, 1, true, true, true) // an older revision: nothing
	cs.Status.CurrentRevision = 3
	tr.observe(cs)
	tr.done(key, 3, true, false, true) // no workload had to change
	if got := count(t, projectionLag) - projected; got != 2 {
		t.Errorf("projection lag observed %d times for two revisions, want 2", got)
	}
	if got := count(t, rolloutLag) - rolled; got != 1 {
		t.Errorf("rollout lag observed for a revision no workload had to change to")
	}
}
