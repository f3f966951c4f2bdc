package historyreconciler

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Kinds of repairs, the kind label of capstan_history_repairs_total.
const (
	repairRestoredEarlier = "restored_earlier"
	repairRestoredCurrent = "restored_current"
	repairOrphanDeleted   = "orphan_deleted"
)

var repairs = metrics.NewCounterVec(&metrics.CounterOpts{
	Namespace: "capstan",
	Subsystem: "history",
	Name:      "repairs_total",
	Help: "Repairs by the history reconciler, by kind: restored_earlier (the revision of a change its request did not write), " +
		"restored_current (a missing current revision) and orphan_deleted (a revision whose ConfigSet is gone). " +
		"Pruning is counted in capstan_history_revisions_pruned_total.",
	StabilityLevel: metrics.ALPHA,
}, []string{"kind"})

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() { legacyregistry.MustRegister(repairs) })
}
