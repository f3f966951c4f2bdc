package configsetjson

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The item cache's metrics: how often lists find their items kept, and how
// much memory the kept items take.
var (
	itemLookups = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "list_item_cache",
		Name:           "lookups_total",
		Help:           "ConfigSets of JSON list responses looked up among the items kept encoded, by result: hit (copied) or miss (encoded and kept).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	itemBytes = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      "capstan",
		Subsystem:      "list_item_cache",
		Name:           "bytes",
		Help:           "Bytes of encoded list items kept between lists (at most two generations of the cache's budget).",
		StabilityLevel: metrics.ALPHA,
	})
)

var registerOnce sync.Once

// registerMetrics adds the item cache's metrics to the legacy registry, which
// the server serves on /metrics, once per process.
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(itemLookups, itemBytes)
	})
}

// recordLookups counts one list's lookups.
func recordLookups(hits, misses int) {
	if hits > 0 {
		itemLookups.WithLabelValues("hit").Add(float64(hits))
	}
	if misses > 0 {
		itemLookups.WithLabelValues("miss").Add(float64(misses))
	}
}
