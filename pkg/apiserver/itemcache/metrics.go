package itemcache

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The caches' metrics: how often lists find their items kept, and how much
// memory the kept items take, by wire format.
var (
	itemLookups = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "list_item_cache",
		Name:           "lookups_total",
		Help:           "ConfigSets of list responses looked up among the items kept encoded, by wire format (json, protobuf) and result: hit (copied) or miss (encoded and kept).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"format", "result"})
	itemBytes = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      "capstan",
		Subsystem:      "list_item_cache",
		Name:           "bytes",
		Help:           "Bytes of encoded list items kept between lists, by wire format (at most the cache's budget each).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"format"})
)

var registerOnce sync.Once

// registerMetrics adds the metrics to the legacy registry, which the server
// serves on /metrics, once per process.
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(itemLookups, itemBytes)
	})
}
