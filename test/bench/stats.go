package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// opResult is what running one workload against one system yields.
type opResult struct {
	ops        int
	errors     int
	firstError string
	elapsed    time.Duration
	latencies  []time.Duration
}

// runOps runs op(i) for i in [0,n) on conc workers and records each latency.
func runOps(ctx context.Context, n, conc int, op func(ctx context.Context, i int) error) opResult {
	var next atomic.Int64
	var mu sync.Mutex
	res := opResult{latencies: make([]time.Duration, 0, n)}
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, n/conc+1)
			var errs int
			var first string
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					break
				}
				t := time.Now()
				err := op(ctx, i)
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			if res.firstError == "" {
				res.firstError = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ops = len(res.latencies)
	return res
}

// percentile returns the p-th percentile (0..100) in milliseconds.
func percentile(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i]) / float64(time.Millisecond)
}
