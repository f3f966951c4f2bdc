// Package utils holds helpers that several test suites share (the way
// Kubernetes has test/utils); each helper has its one home here.
package utils

import (
	"k8s.io/component-base/metrics/testutil"
)

// MetricSeries parses a Prometheus text exposition (a /metrics body) into
// the value of each series, keyed as `name{a="x", b="y"}` (labels sorted).
// A histogram's series are its _bucket, _sum and _count.
func MetricSeries(body []byte) (map[string]float64, error) {
	parsed := testutil.NewMetrics()
	if err := testutil.ParseMetrics(string(body), &parsed); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, samples := range parsed {
		for _, s := range samples {
			out[s.Metric.String()] += float64(s.Value)
		}
	}
	return out, nil
}
