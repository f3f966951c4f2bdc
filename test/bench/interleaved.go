package main

import (
	"context"
	"fmt"
	"slices"
)

// interleavedWorkload is creates at the last create concurrency, run in
// short rounds on two systems in turn. The create runs of runAll take each
// system's figures minutes apart, and on this shared 2-core machine the same
// code's write ratio has spread from 0.46× to 1.12× between runs; in rounds
// of a few seconds, in the order A B B A A B…, what the machine does
// meanwhile falls on both systems alike, and the median of the rounds is the
// figure.
func interleavedWorkload(conc int) string { return fmt.Sprintf("create c=%d interleaved", conc) }

// runInterleaved runs the interleaved creates on a and b and records, for
// each, the median of its rounds, with the rounds' spread in Extra.
func (r *runner) runInterleaved(ctx context.Context, a, b system) {
	s := r.sizes
	conc := s.CreateConc[len(s.CreateConc)-1]
	workload := interleavedWorkload(conc)
	if !r.wants(workload) || s.InterleavedRounds == 0 {
		return
	}
	rounds := map[string][]Measurement{}
	for k := range s.InterleavedRounds {
		order := []system{a, b}
		if k%2 == 1 {
			order = []system{b, a}
		}
		for _, sys := range order {
			prefix := fmt.Sprintf("il%d", k)
			m := r.take(ctx, sys, workload, s.InterleavedObjects, conc, false, func(ctx context.Context, i int) error {
				ns, name := r.ref(prefix, i)
				return sys.create(ctx, ns, name, i, smallShape)
			})
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
// rounds', and whose counts are their sums; Extra holds each figure's
// lowest and highest round.
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
