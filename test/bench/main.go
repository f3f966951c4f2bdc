// Command bench measures Capstan side by side with raw etcd (E), Capstan
// direct (O), Capstan through kube-apiserver's aggregator (O-agg) and a CRD
// of the same shape on that kube-apiserver (C), in one run on one machine,
// and writes the figures as JSON and as tables in docs/benchmarks.md. Binary
// CPU profiles go to the git-ignored _output/bench/pprof; only their small
// `go tool pprof -top` summaries are written beside the JSON.
//
// Every process it starts is stopped by PID at the end, on error and on
// interrupt. Nothing here asserts a figure: timings on shared machines are
// reported, never tested.
//
//	go run ./test/bench [-quick] [-out bench/results/latest.json] [-md docs/benchmarks.md] [-pprof-dir _output/bench/pprof]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"capstan.dev/capstan/test/utils/kms"
)

func main() {
	quick := flag.Bool("quick", false, "a small run (300 objects, concurrency 8, 10 watchers) for a smoke test")
	out := flag.String("out", "bench/results/latest.json", "JSON results file; the profiles' `go tool pprof -top` summaries (*.top.txt) go to a pprof folder beside it")
	md := flag.String("md", "docs/benchmarks.md", "markdown file whose generated section is replaced (empty: none)")
	systemsFlag := flag.String("systems", "E,O,enc,hist,store,h1,mem,O-agg,wire,O-direct,C,wl", "systems to run: E, O (local mode), enc (O with each encryption provider), hist (O with and without revisions), store (O storing protobuf and JSON in etcd), h1 (one tenant patching beside a large value, on a fresh local-mode server), mem (ConfigSets with revisions on O-agg against the CRD, on a fresh control plane of its own), O-agg (through kube-apiserver), wire (O-agg's lists, gets and watch with a JSON and a protobuf client, and C's with JSON), O-direct (O-agg's Capstan called directly), C (the CRD), wl (ConfigSet changes propagated to Deployments by capstan-controller-manager)")
	workDir := flag.String("work-dir", "", "folder for etcd data, certificates and logs (default: a new temporary folder, removed at the end)")
	root := flag.String("root", ".", "the repository root, where bin/ and _output/bin/ are")
	pprofDir := flag.String("pprof-dir", "", "folder for the binary CPU profiles (*.pb.gz) (default: _output/bench/pprof under -root, which git ignores)")
	workloads := flag.String("workloads", "", "a regular expression: measure only the workloads whose names it matches (the last create run always runs; the others read its objects), to measure one change on its own")
	capstanFlags := flag.String("capstan-args", "", "flags for the control plane's capstan-apiserver (O-agg, O-direct), after the deployment's, separated by spaces; the report prints them in its settings")
	render := flag.Bool("render", false, "measure nothing: rewrite the markdown (and the ratios in the JSON) from the results in -out")
	flag.Parse()

	if *render {
		if err := rerender(*out, *md); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}

	capstanArgs = strings.Fields(*capstanFlags)
	var only *regexp.Regexp
	if *workloads != "" {
		var err error
		if only, err = regexp.Compile(*workloads); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -workloads: %v\n", err)
			os.Exit(2)
		}
		if *md != "" {
			fmt.Fprintln(os.Stderr, "bench: -workloads measures part of a run, which is not a report: give -md ''")
			os.Exit(2)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var cleanup sync.Once
	var clusterDown func()
	var mu sync.Mutex
	stopEverything := func() {
		cleanup.Do(func() {
			mu.Lock()
			down := clusterDown
			mu.Unlock()
			if down != nil {
				down()
			}
			stopAll()
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "bench: %v: stopping every process started\n", s)
		cancel()
		stopEverything()
		os.Exit(130)
	}()

	err := run(ctx, *quick, *out, *md, *systemsFlag, *workDir, *root, *pprofDir, only, func(down func()) {
		mu.Lock()
		clusterDown = down
		mu.Unlock()
	})
	stopEverything()
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, quick bool, out, md, systemsFlag, workDir, root, pprofDir string, only *regexp.Regexp, onCluster func(func())) error {
	rootAbs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	bins := binaries{root: rootAbs, etcd: filepath.Join(rootAbs, "_output", "bin", "etcd"), capstan: filepath.Join(rootAbs, "bin", "capstan-apiserver")}
	for _, b := range []string{bins.etcd, bins.capstan, filepath.Join(rootAbs, "_output", "bin", "kube-apiserver")} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s is missing: run hack/build-tools.sh and make build first", b)
		}
	}
	if workDir == "" {
		// A short path: unix socket paths (the KMS plugin) are limited to 108 bytes.
		workDir, err = os.MkdirTemp("", "capstan-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(workDir)
	}
	s := fullSizes
	if quick {
		s = quickSizes
		settleTime = 150 * time.Millisecond
		maxQuietWait = time.Minute
	}
	started := time.Now()
	if pprofDir == "" {
		pprofDir = filepath.Join(root, "_output", "bench", "pprof")
	}
	r := &runner{sizes: s, outDir: filepath.Dir(out), pprofDir: pprofDir, versions: versions(rootAbs), only: only, log: func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}}
	want := map[string]bool{}
	for _, n := range strings.Split(systemsFlag, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var errs []string
	note := func(err error) {
		if err != nil {
			r.log("ERROR: %v", err)
			errs = append(errs, err.Error())
		}
	}

	if want["E"] {
		r.log("E: raw etcd")
		e, err := newEtcdSystem(ctx, bins.etcd, workDir)
		note(err)
		if err == nil {
			note(r.runAll(ctx, e))
			e.stop()
		}
	}
	if want["O"] && ctx.Err() == nil {
		r.log("O: Capstan in local mode, %s encryption", deployedEncryption)
		o, err := startCapstanLocal(ctx, bins, workDir, "capstan-O", deployedEncryption, "")
		note(err)
		if err == nil {
			note(r.runAll(ctx, o))
			o.stop()
		}
	}
	if want["enc"] && ctx.Err() == nil {
		r.log("O with each encryption provider")
		providers := []string{"identity", "aesgcm", "secretbox"}
		socket := filepath.Join(workDir, "kms.sock")
		stopKMS, err := kms.Serve(socket)
		if err != nil {
			note(fmt.Errorf("KMS v2 mock plugin: %w", err))
		} else {
			providers = append(providers, "kms")
		}
		r.runEncryption(ctx, bins, workDir, providers, socket)
		if stopKMS != nil {
			stopKMS()
		}
	}
	for _, p := range pairs {
		if want[p.key] && ctx.Err() == nil {
			r.log("%s: %s against %s", p.key, p.variants[0].name, p.variants[1].name)
			r.runVariants(ctx, bins, workDir, p.prefix, p.variants)
		}
	}
	if want["h1"] && ctx.Err() == nil {
		r.log("H1: %d patches beside a %d KiB value, local mode with its embedded etcd", s.H1Patches, s.H1ValueKiB)
		r.runH1(ctx, bins, workDir)
	}
	progress := &logWriter{log: r.log}
	// onControlPlane starts a control plane in dir, runs f on it and stops it.
	onControlPlane := func(purpose, dir string, f func(b *benchCluster)) {
		r.log("cluster%s: etcd, kube-apiserver, Capstan aggregated (test/utils/controlplane)", purpose)
		b, err := startCluster(ctx, bins, dir, progress)
		note(err)
		if err != nil {
			return
		}
		onCluster(b.down)
		defer onCluster(nil)
		defer b.down()
		f(b)
	}
	// Memory with history on a control plane of its own, fresh, which it
	// leaves with hundreds of thousands of writes in its watch caches: the
	// systems measured after it would carry them.
	if want["mem"] && ctx.Err() == nil {
		onControlPlane(" for memory", filepath.Join(workDir, "mem"), func(b *benchCluster) {
			agg, err := b.aggregated()
			note(err)
			crd, err := b.crd(ctx)
			note(err)
			if agg != nil && crd != nil && ctx.Err() == nil {
				r.log("memory: %v ConfigSets with %d revisions each, O-agg and C", s.MemoryConfigSets, s.MemoryRevisions)
				r.runHistoryMemory(ctx, agg, crd)
			}
		})
	}
	if (want["O-agg"] || want["O-direct"] || want["C"] || want["wl"]) && ctx.Err() == nil {
		onControlPlane("", workDir, func(b *benchCluster) {
			var agg, crd *kubeSystem
			var err error
			if want["O-agg"] {
				agg, err = b.aggregated()
				note(err)
			}
			if want["C"] && ctx.Err() == nil {
				crd, err = b.crd(ctx)
				note(err)
			}
			if want["O-agg"] && agg != nil && ctx.Err() == nil {
				r.log("O-agg: Capstan through the aggregator")
				note(r.runAll(ctx, agg))
				if want["wire"] && ctx.Err() == nil {
					r.log("wire: O-agg with a JSON and a protobuf client")
					pb, err := b.aggregatedProtobuf()
					note(err)
					if err == nil {
						r.runWire(ctx, agg, pb)
					}
				}
				note(r.clear(ctx, agg))
			}
			if want["O-direct"] && ctx.Err() == nil {
				r.log("O-direct: the same Capstan called directly, restarted on its etcd compacted and defragmented")
				note(b.freshCapstan(ctx))
				direct, err := b.direct()
				note(err)
				if err == nil {
					note(r.runAll(ctx, direct))
					note(r.clear(ctx, direct))
				}
			}
			if want["C"] && crd != nil && ctx.Err() == nil {
				r.log("C: the CRD on kube-apiserver")
				note(r.runAll(ctx, crd))
				if want["wire"] && ctx.Err() == nil {
					// The same lists, gets and watch as O-agg's and O-agg-pb's,
					// with the only format a CRD has: JSON.
					r.log("wire: C with its JSON client")
					r.runWire(ctx, crd)
				}
			}
			if agg != nil && crd != nil && ctx.Err() == nil {
				r.log("interleaved: creates, then updates, in rounds of %d, O-agg and C in turn", s.InterleavedObjects)
				r.runInterleaved(ctx, agg, crd)
			}
			if want["wl"] && ctx.Err() == nil {
				r.log("wl: ConfigSet changes to Deployments' pod templates, by capstan-controller-manager")
				note(r.runPropagation(ctx, b))
			}
		})
	}

	res := buildResults(r, quick, time.Since(started), errs)
	if err := writeJSON(out, res); err != nil {
		return err
	}
	r.log("results written to %s", out)
	if md != "" {
		if err := writeMarkdown(md, res); err != nil {
			return err
		}
		r.log("tables written to %s", md)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d errors: %s", len(errs), strings.Join(slices.Compact(errs), "; "))
	}
	return nil
}

// logWriter turns the cluster harness's progress lines into log lines.
type logWriter struct{ log func(string, ...any) }

func (w *logWriter) Write(p []byte) (int, error) {
	w.log("  cluster: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
