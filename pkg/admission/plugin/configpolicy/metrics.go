package configpolicy

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	decisions = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "configpolicy",
		Name:           "decisions_total",
		Help:           "ConfigPolicy decisions on ConfigSet writes (dry runs left out), by policy, enforcement (Deny, Warn) and result (allowed, warned, denied).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"policy", "enforcement", "result"})
	ruleEvaluations = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "capstan",
		Subsystem:      "configpolicy",
		Name:           "rule_evaluations_total",
		Help:           "CEL rule evaluations, by result: true, false, error, or limit (the cost limit or timeout was reached).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	ruleCost = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace:      "capstan",
		Subsystem:      "configpolicy",
		Name:           "rule_cost",
		Help:           "Actual CEL cost of each rule evaluation that finished, in CEL cost units.",
		Buckets:        metrics.ExponentialBuckets(1, 4, 12),
		StabilityLevel: metrics.ALPHA,
	})
)

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(decisions, ruleEvaluations, ruleCost)
	})
}
