package main

import (
	"context"
	"fmt"
	"slices"
)

// The interleaved workloads are creates at the last create concurrency, then
// updates of those objects at the update concurrency, each run in short
// rounds on two systems in turn. The create runs of runAll take each system's
// figures minutes apart, and on this shared 2-core machine the same code's
// write ratio has spread from 0.46× to 1.12× between runs; in rounds of a few
// seconds, in the order A B B A A B…, what the machine does meanwhile falls
// on both systems alike, and the median of the rounds is the figure.
func interleavedWorkloads(s sizes) (create, update string) {
	return fmt.Sprintf("create c=%d interleaved", s.CreateConc[len(s.CreateConc)-1]),
		fmt.Sprintf("update c=%d interleaved", s.MutateConc)
}

// runInterleaved runs the interleaved creates, then the interleaved updates,
// on a and b, and records for each system the median of its rounds, with the
// rounds' spread in Extra. Round k updates the objects round k created.
func (r *runner) runInterleaved(ctx context.Context, a, b system) {
	s := r.sizes
	if s.InterleavedRounds == 0 {
		return
	}
	create, update := interleavedWorkloads(s)
	prefix := func(k int) string { return fmt.Sprintf("il%d", k) }
	// Updates need the objects: the creates run whenever the updates do.
	if r.wants(create) || r.wants(update) {
		r.interleave(ctx, create, s.CreateConc[len(s.CreateConc)-1], a, b, func(sys system, k int) func(context.Context, int) error {
			return func(ctx context.Context, i int) error {
				ns, name := r.ref(prefix(k), i)
				return sys.create(ctx, ns, name, i, smallShape)
			}
		})
	}
	if r.wants(update) && ctx.Err() == nil {
		r.interleave(ctx, update, s.MutateConc, a, b, func(sys system, k int) func(context.Context, int) error {
			return func(ctx context.Context, i int) error {
				ns, name := r.ref(prefix(k), i)
				return sys.update(ctx, ns, name, i, 1)
			}
		})
	}
}

// interleave runs InterleavedRounds rounds of InterleavedObjects operations
// on a and b in turn, op(sys, k) being round k's operation on sys, and
// records each system's median.
func (r *runner) interleave(ctx context.Context, workload string, conc int, a, b system, op func(sys system, k int) func(context.Context, int) error) {
	s := r.sizes
	rounds := map[string][]Measurement{}
	for k := range s.InterleavedRounds {
		order := []system{a, b}
		if k%2 == 1 {
			order = []system{b, a}
		}
		for _, sys := range order {
			m := r.take(ctx, sys, workload, s.InterleavedObjects, conc, false, op(sys, k))
			if ctx.Err() != nil {
				return
			}
			r.log("%-6s %s round %d: %.1f/s, server %.3f ms/op", sys.name(), workload, k+1, m.PerSecond, m.ServerCPUPerOpMs)
			rounds[sys.name()] = append(rounds[sys.name()], m)
		}
	}
	for _, sys := range []system{a, b} {
		r.add(medianOfRounds(rounds[sys.name()]))
	}
}

// medianOfRounds is one Measurement whose figures are the medians of the
// rounds', and whose counts and CPU seconds (each server's too) are their
// sums; Extra holds each figure's lowest and highest round.
func medianOfRounds(ms []Measurement) Measurement {
	if len(ms) == 0 {
		return Measurement{}
	}
	out := Measurement{System: ms[0].System, Workload: ms[0].Workload}
	for _, m := range ms {
		out.Ops += m.Ops
		out.Errors += m.Errors
		if out.FirstError == "" {
			out.FirstError = m.FirstError
		}
		out.Seconds += m.Seconds
		out.ServerCPU += m.ServerCPU
		for role, cpu := range m.ServerCPUByRole {
			if out.ServerCPUByRole == nil {
				out.ServerCPUByRole = map[string]float64{}
			}
			out.ServerCPUByRole[role] += cpu
		}
		out.EtcdCPU += m.EtcdCPU
		out.ClientCPU += m.ClientCPU
	}
	med := func(name string, get func(Measurement) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = get(m)
		}
		slices.Sort(v)
		out.Extra = addExtra(out.Extra, name+"Min", v[0])
		out.Extra = addExtra(out.Extra, name+"Max", v[len(v)-1])
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	out.PerSecond = med("perSecond", func(m Measurement) float64 { return m.PerSecond })
	out.P50ms = med("p50ms", func(m Measurement) float64 { return m.P50ms })
	out.P99ms = med("p99ms", func(m Measurement) float64 { return m.P99ms })
	out.ServerCPUPerOpMs = med("serverCPUmsPerOp", func(m Measurement) float64 { return m.ServerCPUPerOpMs })
	out.EtcdCPUPerOpMs = med("etcdCPUmsPerOp", func(m Measurement) float64 { return m.EtcdCPUPerOpMs })
	out.EtcdPutsPerOp = med("etcdPutsPerOp", func(m Measurement) float64 { return m.EtcdPutsPerOp })
	out.EtcdDeletesPerOp = med("etcdDeletesPerOp", func(m Measurement) float64 { return m.EtcdDeletesPerOp })
	out.EtcdRangesPerOp = med("etcdRangesPerOp", func(m Measurement) float64 { return m.EtcdRangesPerOp })
	gets := med("getsServedPerOp", func(m Measurement) float64 { return m.Extra[getsServedPerOp] })
	out.Extra = addExtra(out.Extra, getsServedPerOp, gets)
	out.Extra = addExtra(out.Extra, "rounds", float64(len(ms)))
	return out
}
