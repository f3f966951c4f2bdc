package projection

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The controller's metrics, on the controller manager's /metrics beside
// client-go's and the workqueue's (capstan_projection queue: depth, wait
// and work durations, retries).
var (
	syncsTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "projection",
		Name:           "syncs_total",
		Help:           "ConfigSet syncs of the projection controller, by outcome: projected, name_conflict, error or not_requested.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	objectWritesTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "projection",
		Name:           "object_writes_total",
		Help:           "Projected ConfigMaps and Secrets written, by kind and operation (create, update, delete).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"kind", "operation"})
	workloadUpdatesTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "projection",
		Name:           "workload_updates_total",
		Help:           "Pod templates of consuming workloads pointed at a new revision, by kind and result (success, error).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"kind", "result"})
	projectionLag = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace:      "capstan",
		Subsystem:      "projection",
		Name:           "lag_seconds",
		Help:           "Time from the controller's first sight of a ConfigSet's new revision until its ConfigMap and Secret are written, once per revision.",
		Buckets:        metrics.ExponentialBuckets(0.005, 2, 14),
		StabilityLevel: metrics.ALPHA,
	})
	rolloutLag = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace:      "capstan",
		Subsystem:      "projection",
		Name:           "rollout_lag_seconds",
		Help:           "Time from the controller's first sight of a ConfigSet's new revision until every consuming workload that had to change points at it, once per revision with such workloads.",
		Buckets:        metrics.ExponentialBuckets(0.005, 2, 14),
		StabilityLevel: metrics.ALPHA,
	})
)

var registerOnce sync.Once

// registerMetrics adds the controller's metrics to the legacy registry once.
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(syncsTotal, objectWritesTotal, workloadUpdatesTotal, projectionLag, rolloutLag)
	})
}
