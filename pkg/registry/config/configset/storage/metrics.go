package storage

import (
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var rollbacks = metrics.NewCounterVec(&metrics.CounterOpts{
	Namespace:      "capstan",
	Subsystem:      "configset",
	Name:           "rollbacks_total",
	Help:           "Rollbacks of ConfigSets (dry runs left out), by result: success, or the reason of the refusal (NotFound, Conflict, Forbidden, Invalid, ...).",
	StabilityLevel: metrics.ALPHA,
}, []string{"result"})

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() { legacyregistry.MustRegister(rollbacks) })
}

// recordRollback counts a rollback by its outcome.
func recordRollback(err error) {
	result := "success"
	if err != nil {
		result = string(apierrors.ReasonForError(err))
		if result == "" {
			result = "error"
		}
	}
	rollbacks.WithLabelValues(result).Inc()
}
