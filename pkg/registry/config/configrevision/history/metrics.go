package history

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Writers of revisions, the writer label of capstan_history_revisions_written_total.
const (
	writerRequest    = "request"
	writerReconciler = "reconciler"
)

// Reasons for pruning, the reason label of capstan_history_revisions_pruned_total.
const (
	pruneCount    = "count"
	pruneBytes    = "bytes"
	pruneOrphaned = "orphaned"
)

var (
	revisionsWritten = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "history",
		Name:           "revisions_written_total",
		Help:           "ConfigRevisions written, by writer (request: the change's own request; reconciler: restored later) and result (success, error).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"writer", "result"})
	revisionsPruned = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "history",
		Name:           "revisions_pruned_total",
		Help:           "ConfigRevisions pruned, by reason: count (beyond revisionHistoryLimit), bytes (beyond --history-max-bytes) or orphaned (left by an earlier ConfigSet of the same name).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})
)

var registerOnce sync.Once

// registerMetrics adds the history's metrics to the legacy registry, which
// the server serves on /metrics, once per process.
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(revisionsWritten, revisionsPruned)
	})
}

func recordWrite(writer string, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	revisionsWritten.WithLabelValues(writer, result).Inc()
}
