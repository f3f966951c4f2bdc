package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// The memory workloads: what a server holds for ConfigSets with history,
// against the CRD holding the same objects, and the H1 scenario, one tenant
// growing history as fast as kubectl can.
const (
	historyMemoryPrefix = "history memory "
	h1Workload          = "H1"
)

func historyMemoryWorkload(configSets, revisions int) string {
	return fmt.Sprintf("%s%d×%d", historyMemoryPrefix, configSets, revisions)
}

// runHistoryMemory writes, on each system in turn, MemoryConfigSets[0]
// ConfigSets of ~1 KiB with MemoryRevisions revisions each (a create, then
// rounds of merge patches changing an entry), and then more up to each later
// size, and reads the live heap and RSS of the process holding them after
// each size. It runs on fresh servers: the watch cache's event window keeps
// recent versions until newer events overwrite them, so a server that has
// already served other workloads would report less than it holds. The
// objects are deleted at the end.
func (r *runner) runHistoryMemory(ctx context.Context, systems ...*kubeSystem) {
	s := r.sizes
	var nss []string
	for i := range s.Namespaces {
		nss = append(nss, namespaceName("mem", i))
	}
	ref := func(i int) (string, string) { return nss[i%len(nss)], objectName("m", i) }
	for _, sys := range systems {
		if ctx.Err() != nil {
			return
		}
		if err := sys.prepare(ctx, nss); err != nil {
			r.add(Measurement{System: sys.name(), Workload: historyMemoryPrefix + "setup", Errors: 1, FirstError: err.Error()})
			continue
		}
		time.Sleep(4 * settleTime)
		baseHeap, baseRSS := r.liveHeap(ctx, sys), rssMiB(sys.memoryPID())
		done := 0
		for _, n := range s.MemoryConfigSets {
			fresh := n - done
			started := time.Now()
			created := runOps(ctx, fresh, s.MutateConc, func(ctx context.Context, i int) error {
				ns, name := ref(done + i)
				return sys.create(ctx, ns, name, done+i, smallShape)
			})
			patched := runOps(ctx, fresh*(s.MemoryRevisions-1), s.MutateConc, func(ctx context.Context, i int) error {
				ns, name := ref(done + i%fresh)
				return sys.patch(ctx, ns, name, done+i%fresh, 1+i/fresh)
			})
			done = n
			elapsed := time.Since(started)
			time.Sleep(4 * settleTime)
			heap, rss := r.liveHeap(ctx, sys), rssMiB(sys.memoryPID())
			m := Measurement{System: sys.name(), Workload: historyMemoryWorkload(n, s.MemoryRevisions), Ops: created.ops + patched.ops,
				Errors: created.errors + patched.errors, FirstError: created.firstError + patched.firstError, Seconds: elapsed.Seconds(),
				Extra: map[string]float64{
					"rssMiB": rss, "rssGrowthMiB": rss - baseRSS, "rssMiBPer1kObjects": (rss - baseRSS) / (float64(n) / 1000),
				}}
			if heap > 0 && baseHeap > 0 {
				m.Extra["heapMiB"], m.Extra["heapGrowthMiB"] = heap, heap-baseHeap
				m.Extra["heapMiBPer1kObjects"] = (heap - baseHeap) / (float64(n) / 1000)
				r.saveHeapProfile(ctx, sys, m.Workload)
			}
			if m.Seconds > 0 {
				m.PerSecond = float64(m.Ops) / m.Seconds
			}
			r.add(m)
		}
		for _, ns := range nss {
			if err := sys.deleteAll(ctx, ns); err != nil {
				r.log("%s: deleting the memory workload's objects: %v", sys.name(), err)
			}
		}
	}
}

// runH1 is the H1 scenario on a fresh server run as `make run` runs it (local
// mode, embedded etcd): one ConfigSet with revisionHistoryLimit 1000 and a
// large value, then one small key patched H1Patches times in a row, as a loop
// of `kubectl patch` would. It reports the growth of the live heap and how
// many revisions the byte budget kept.
func (r *runner) runH1(ctx context.Context, bins binaries, dir string) {
	s := r.sizes
	sys, err := startCapstanEmbedded(ctx, bins, dir, "capstan-h1")
	if err != nil {
		r.add(Measurement{System: "O", Workload: h1Workload, Errors: 1, FirstError: err.Error()})
		return
	}
	defer sys.stop()
	const ns, name = "h1", "big"
	time.Sleep(4 * settleTime)
	baseHeap, baseRSS := r.liveHeap(ctx, sys), rssMiB(sys.memoryPID())

	cs := &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: configv1beta1.ConfigSetSpec{
			Data:                 map[string]string{"big": value("h1", s.H1ValueKiB<<10), "small": "0"},
			RevisionHistoryLimit: ptr.To[int32](1000),
		},
	}
	m := Measurement{System: "O", Workload: h1Workload, Extra: map[string]float64{"valueKiB": float64(s.H1ValueKiB), "revisionHistoryLimit": 1000}}
	if _, err := sys.client.ConfigSets(ns).Create(ctx, cs, metav1.CreateOptions{}); err != nil {
		r.add(Measurement{System: "O", Workload: h1Workload, Errors: 1, FirstError: err.Error()})
		return
	}
	started := time.Now()
	res := runOps(ctx, s.H1Patches, 1, func(ctx context.Context, i int) error {
		body := fmt.Sprintf(`{"spec":{"data":{"small":"%d"}}}`, i+1)
		_, err := sys.client.ConfigSets(ns).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
		return err
	})
	m.Ops, m.Errors, m.FirstError = res.ops, res.errors, res.firstError
	m.Seconds = time.Since(started).Seconds()
	m.P50ms, m.P99ms = percentile(res.latencies, 50), percentile(res.latencies, 99)
	if m.Seconds > 0 {
		m.PerSecond = float64(m.Ops) / m.Seconds
	}
	time.Sleep(4 * settleTime)
	heap, rss := r.liveHeap(ctx, sys), rssMiB(sys.memoryPID())
	m.Extra["heapBeforeMiB"], m.Extra["heapAfterMiB"], m.Extra["heapGrowthMiB"] = baseHeap, heap, heap-baseHeap
	m.Extra["rssBeforeMiB"], m.Extra["rssAfterMiB"] = baseRSS, rss
	if revs, err := sys.client.ConfigRevisions(ns).List(ctx, metav1.ListOptions{}); err == nil {
		m.Extra["revisionsKept"] = float64(len(revs.Items))
	} else {
		m.FirstError = strings.TrimSpace(m.FirstError + " listing revisions: " + err.Error())
	}
	r.add(m)
}

// memoryTables renders the memory workloads: Capstan through the aggregator
// against the CRD, size by size, and H1.
func memoryTables(res Results) string {
	var b strings.Builder
	by := map[string]map[string]Measurement{}
	var order []string
	for _, m := range res.Results {
		if !strings.HasPrefix(m.Workload, historyMemoryPrefix) || m.Skipped != "" {
			continue
		}
		if by[m.Workload] == nil {
			by[m.Workload] = map[string]Measurement{}
			order = append(order, m.Workload)
		}
		by[m.Workload][m.System] = m
	}
	if len(order) > 0 {
		fmt.Fprintf(&b, "\nMemory with history (fresh kube-apiserver and Capstan; ConfigSets of ~1 KiB created and then merge-patched %d times each "+
			"through the aggregator, the CRD's objects the same way; growth of the live heap after a forced GC, and of RSS, in the process "+
			"holding the objects: Capstan for O-agg, kube-apiserver for C; both include the watch cache's window of recent events):\n\n", res.Sizes.MemoryRevisions-1)
		b.WriteString("| ConfigSets × revisions | O-agg heap MiB | per 1k | C heap MiB | per 1k | O-agg/C heap | O-agg RSS MiB | C RSS MiB | O-agg/C RSS |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, w := range order {
			o, c := by[w]["O-agg"], by[w]["C"]
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(w, historyMemoryPrefix),
				fmtNum(o.Extra["heapGrowthMiB"]), fmtNum(o.Extra["heapMiBPer1kObjects"]),
				fmtNum(c.Extra["heapGrowthMiB"]), fmtNum(c.Extra["heapMiBPer1kObjects"]),
				fmtRatio(ratio(o.Extra["heapGrowthMiB"], c.Extra["heapGrowthMiB"])),
				fmtNum(o.Extra["rssGrowthMiB"]), fmtNum(c.Extra["rssGrowthMiB"]),
				fmtRatio(ratio(o.Extra["rssGrowthMiB"], c.Extra["rssGrowthMiB"])))
		}
	}
	for _, m := range res.Results {
		if m.Workload != h1Workload || m.Skipped != "" {
			continue
		}
		fmt.Fprintf(&b, "\nH1, one tenant growing history (local mode with its embedded etcd, as `make run`; a ConfigSet with revisionHistoryLimit 1000 "+
			"and a %.0f KiB value, then one small key merge-patched %d times in a row; live heap after a forced GC):\n\n", m.Extra["valueKiB"], m.Ops)
		b.WriteString("| patches | patches/s | heap before MiB | heap after MiB | growth MiB | RSS after MiB | revisions kept |\n|--:|--:|--:|--:|--:|--:|--:|\n")
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %.0f |\n", m.Ops, fmtNum(m.PerSecond), fmtNum(m.Extra["heapBeforeMiB"]),
			fmtNum(m.Extra["heapAfterMiB"]), fmtNum(m.Extra["heapGrowthMiB"]), fmtNum(m.Extra["rssAfterMiB"]), m.Extra["revisionsKept"])
	}
	return b.String()
}
