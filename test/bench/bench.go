package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"capstan.dev/capstan/test/utils/process"
)

// sizes are the workload sizes of a run.
type sizes struct {
	Objects        int   `json:"objects"`
	Namespaces     int   `json:"namespaces"`
	CreateConc     []int `json:"createConcurrency"`
	MutateOps      int   `json:"mutateOps"`
	MutateConc     int   `json:"mutateConcurrency"`
	ListRepeats    int   `json:"listRepeats"`
	Watchers       int   `json:"watchers"`
	WatchRate      int   `json:"watchUpdatesPerSecond"`
	WatchSeconds   int   `json:"watchSeconds"`
	Informers      int   `json:"informers"`
	BigObjects     int   `json:"bigObjects"`
	EncObjects     int   `json:"encryptionObjects"`
	ProfileSeconds int   `json:"profileSeconds"`
	// InterleavedRounds of InterleavedObjects creates, then updates, each, on
	// two systems in turn (interleaved.go).
	InterleavedRounds  int `json:"interleavedRounds"`
	InterleavedObjects int `json:"interleavedObjects"`
	// The propagation workload: ConfigSets, Deployments consuming each, and
	// changes at a steady rate.
	PropagationConfigSets  int `json:"propagationConfigSets"`
	PropagationDeployments int `json:"propagationDeploymentsPerConfigSet"`
	PropagationRate        int `json:"propagationChangesPerSecond"`
	PropagationChanges     int `json:"propagationChanges"`
	// The memory workloads: ConfigSets of ~1 KiB with a number of revisions
	// each, measured at each size; and H1's patches beside one large value.
	MemoryConfigSets []int `json:"memoryConfigSets"`
	MemoryRevisions  int   `json:"memoryRevisions"`
	H1Patches        int   `json:"h1Patches"`
	H1ValueKiB       int   `json:"h1ValueKiB"`
}

var fullSizes = sizes{
	Objects: 10000, Namespaces: 10, CreateConc: []int{1, 8, 32}, MutateOps: 2000, MutateConc: 8,
	ListRepeats: 10, Watchers: 100, WatchRate: 100, WatchSeconds: 10, Informers: 10,
	BigObjects: 2000, EncObjects: 2000, ProfileSeconds: 5, InterleavedRounds: 6, InterleavedObjects: 2000,
	PropagationConfigSets: 100, PropagationDeployments: 10, PropagationRate: 10, PropagationChanges: 300,
	MemoryConfigSets: []int{1000, 10000}, MemoryRevisions: 10, H1Patches: 200, H1ValueKiB: 900,
}

var quickSizes = sizes{
	Objects: 300, Namespaces: 10, CreateConc: []int{8}, MutateOps: 300, MutateConc: 8,
	ListRepeats: 3, Watchers: 10, WatchRate: 50, WatchSeconds: 2, Informers: 3,
	BigObjects: 100, EncObjects: 150, ProfileSeconds: 2, InterleavedRounds: 2, InterleavedObjects: 100,
	PropagationConfigSets: 5, PropagationDeployments: 4, PropagationRate: 5, PropagationChanges: 20,
	MemoryConfigSets: []int{100, 300}, MemoryRevisions: 10, H1Patches: 30, H1ValueKiB: 900,
}

// Measurement is one workload on one system.
type Measurement struct {
	System     string `json:"system"`
	Workload   string `json:"workload"`
	Ops        int    `json:"ops"`
	Errors     int    `json:"errors,omitempty"`
	FirstError string `json:"firstError,omitempty"`
	Skipped    string `json:"skipped,omitempty"`
	// Seconds is the wall time of the workload.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	P50ms     float64 `json:"p50ms"`
	P99ms     float64 `json:"p99ms"`
	// ServerCPU is the CPU seconds of the API server processes (for E,
	// etcd), per role in ServerCPUByRole.
	ServerCPU       float64            `json:"serverCPUSeconds"`
	ServerCPUByRole map[string]float64 `json:"serverCPUByRole,omitempty"`
	EtcdCPU         float64            `json:"etcdCPUSeconds"`
	ClientCPU       float64            `json:"clientCPUSeconds"`
	// ServerCPUPerOpMs is ServerCPU per operation in milliseconds, which is
	// also CPU seconds per 1,000 operations.
	ServerCPUPerOpMs float64 `json:"serverCPUmsPerOp"`
	EtcdCPUPerOpMs   float64 `json:"etcdCPUmsPerOp"`
	// EtcdPutsPerOp and EtcdDeletesPerOp count etcd's mvcc writes,
	// EtcdRangesPerOp its reads (every client's: the watch cache's and the
	// server's controllers' too).
	EtcdPutsPerOp    float64 `json:"etcdPutsPerOp"`
	EtcdDeletesPerOp float64 `json:"etcdDeletesPerOp"`
	EtcdRangesPerOp  float64 `json:"etcdRangesPerOp"`
	// Extra holds workload-specific figures (RSS, deliveries).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Profile is the top of a CPU profile of one server under one workload, or
// of the heap of the server that holds the objects when a memory figure is
// taken (Kind heapKind). File is the binary profile, in the git-ignored
// -pprof-dir; Top is its `go tool pprof -top` summary (for the heap: of the
// space in use), also written as a .top.txt beside the JSON.
type Profile struct {
	System   string `json:"system"`
	Workload string `json:"workload"`
	Role     string `json:"role"`
	Kind     string `json:"kind,omitempty"`
	File     string `json:"file"`
	Top      string `json:"top"`
}

// heapKind marks heap profiles; CPU profiles have no kind.
const heapKind = "heap"

// runner runs the workloads and collects results.
type runner struct {
	sizes  sizes
	outDir string
	// pprofDir receives the binary CPU profiles (*.pb.gz), which are large and
	// change on every run, so it lies outside what git tracks; the small
	// *.top.txt summaries go to outDir/pprof.
	pprofDir string
	log      func(format string, args ...any)
	mu       sync.Mutex
	results  []Measurement
	profiles []Profile
	// systems are the settings of every system measured, by name.
	systems map[string]Settings
	// versions are those of the programs measured, read when the run starts
	// (the checkout may move on while it runs).
	versions map[string]string
	// only, when set, limits the run to the workloads whose names it
	// matches, to measure one change on its own; the last create run always
	// runs, since the workloads after it read its objects.
	only *regexp.Regexp
}

// wants reports whether the workload is to be measured in this run.
func (r *runner) wants(workload string) bool {
	return r.only == nil || r.only.MatchString(workload)
}

// record keeps the settings sys runs with for the report.
func (r *runner) record(sys system) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.systems == nil {
		r.systems = map[string]Settings{}
	}
	r.systems[sys.name()] = sys.settings()
}

func (r *runner) add(m Measurement) {
	r.mu.Lock()
	r.results = append(r.results, m)
	r.mu.Unlock()
	if m.Skipped != "" {
		return
	}
	msg := fmt.Sprintf("%-6s %-32s ops=%-6d %8.1f/s p50=%7.2fms p99=%7.2fms server=%6.3fms/op etcd=%6.3fms/op puts/op=%.2f ranges/op=%.2f",
		m.System, m.Workload, m.Ops, m.PerSecond, m.P50ms, m.P99ms, m.ServerCPUPerOpMs, m.EtcdCPUPerOpMs, m.EtcdPutsPerOp, m.EtcdRangesPerOp)
	if m.Errors > 0 {
		msg += fmt.Sprintf(" ERRORS=%d (%s)", m.Errors, m.FirstError)
	}
	for k, v := range m.Extra {
		msg += fmt.Sprintf(" %s=%.2f", k, v)
	}
	r.log("%s", msg)
}

// cpuSnapshot is CPU time of the server, etcd and the bench itself, and etcd's counters.
type cpuSnapshot struct {
	byRole   map[string]float64
	etcd     float64
	client   float64
	counters map[string]float64
	at       time.Time
}

func snapshot(ctx context.Context, sys system) cpuSnapshot {
	s := cpuSnapshot{byRole: map[string]float64{}, at: time.Now()}
	switch k := sys.(type) {
	case *kubeSystem:
		for _, ref := range k.servers {
			s.byRole[ref.role] += process.CPUSeconds(ref.pid())
		}
	default:
		for _, pid := range sys.serverPIDs() {
			s.byRole["etcd"] += process.CPUSeconds(pid)
		}
	}
	for _, pid := range sys.etcdPIDs() {
		s.etcd += process.CPUSeconds(pid)
	}
	s.client = process.CPUSeconds(os.Getpid())
	s.counters, _ = sys.etcdCounters(ctx)
	return s
}

// finish fills the CPU and etcd figures of m from two snapshots.
func finish(m *Measurement, before, after cpuSnapshot) {
	m.ServerCPUByRole = map[string]float64{}
	for role, v := range after.byRole {
		d := v - before.byRole[role]
		m.ServerCPUByRole[role] = d
		m.ServerCPU += d
	}
	m.EtcdCPU = after.etcd - before.etcd
	m.ClientCPU = after.client - before.client
	if m.Seconds == 0 {
		m.Seconds = after.at.Sub(before.at).Seconds()
	}
	if m.Ops > 0 {
		m.ServerCPUPerOpMs = 1000 * m.ServerCPU / float64(m.Ops)
		m.EtcdCPUPerOpMs = 1000 * m.EtcdCPU / float64(m.Ops)
		m.EtcdPutsPerOp = (after.counters["put"] - before.counters["put"]) / float64(m.Ops)
		m.EtcdDeletesPerOp = (after.counters["delete"] - before.counters["delete"]) / float64(m.Ops)
		m.EtcdRangesPerOp = (after.counters["range"] - before.counters["range"]) / float64(m.Ops)
		if m.Seconds > 0 {
			m.PerSecond = float64(m.Ops) / m.Seconds
		}
	}
}

// measure runs op n times on conc workers and records the figures, unless
// -workloads leaves the workload out; when profile is set it also profiles
// the servers meanwhile.
func (r *runner) measure(ctx context.Context, sys system, workload string, n, conc int, profile bool, op func(ctx context.Context, i int) error) Measurement {
	if !r.wants(workload) {
		return Measurement{System: sys.name(), Workload: workload}
	}
	m := r.take(ctx, sys, workload, n, conc, profile, op)
	r.add(m)
	return m
}

// take runs op n times on conc workers and returns the figures without
// recording them.
func (r *runner) take(ctx context.Context, sys system, workload string, n, conc int, profile bool, op func(ctx context.Context, i int) error) Measurement {
	r.record(sys)
	settle()
	profiles := r.profileMeanwhile(ctx, sys, profile)
	getsBefore, getsOK := getsServed(ctx, sys)
	before := snapshot(ctx, sys)
	res := runOps(ctx, n, conc, op)
	after := snapshot(ctx, sys)
	getsAfter, getsAfterOK := getsServed(ctx, sys)
	m := Measurement{System: sys.name(), Workload: workload, Ops: res.ops, Errors: res.errors, FirstError: res.firstError,
		Seconds: res.elapsed.Seconds(), P50ms: percentile(res.latencies, 50), P99ms: percentile(res.latencies, 99)}
	if res.ops == 0 && errors.Is(errorFromString(res.firstError), errUnsupported) {
		m = Measurement{System: sys.name(), Workload: workload, Skipped: errUnsupported.Error()}
	} else {
		finish(&m, before, after)
		if getsOK && getsAfterOK && m.Ops > 0 {
			m.Extra = addExtra(m.Extra, getsServedPerOp, (getsAfter-getsBefore)/float64(m.Ops))
		}
	}
	r.saveProfiles(sys.name(), workload, "", profiles())
	return m
}

// profileMeanwhile starts profiling sys's servers for ProfileSeconds when on
// is set; the function it returns waits for the profiles (nil when off).
func (r *runner) profileMeanwhile(ctx context.Context, sys system, on bool) func() map[string][]byte {
	if !on {
		return func() map[string][]byte { return nil }
	}
	done := make(chan map[string][]byte, 1)
	go func() { done <- sys.profile(ctx, r.sizes.ProfileSeconds) }()
	return func() map[string][]byte { return <-done }
}

// getsServedPerOp is the Extra key of the gets the storing server answered
// per operation of a workload, everyone's.
const getsServedPerOp = "getsServedPerOp"

// getsServed is the count of gets the server storing sys's objects has
// answered, read outside the CPU snapshots' window; false where there is no
// API server (E).
func getsServed(ctx context.Context, sys system) (float64, bool) {
	k, ok := sys.(*kubeSystem)
	if !ok {
		return 0, false
	}
	return k.getsServed(ctx)
}

func errorFromString(s string) error {
	if s == errUnsupported.Error() {
		return errUnsupported
	}
	return errors.New(s)
}

// saveProfiles writes each binary profile of a kind ("" for CPU, heapKind)
// into r.pprofDir and the top frames `go tool pprof -top` names into
// outDir/pprof.
func (r *runner) saveProfiles(sysName, workload, kind string, profiles map[string][]byte) {
	for role, data := range profiles {
		name := fmt.Sprintf("%s-%s-%s", sysName, workload, role)
		if kind != "" {
			name += "-" + kind
		}
		base := strings.NewReplacer(" ", "-", "/", "-", "=", "").Replace(name)
		dir := filepath.Join(r.outDir, "pprof")
		_ = os.MkdirAll(dir, 0o755)
		_ = os.MkdirAll(r.pprofDir, 0o755)
		file := filepath.Join(r.pprofDir, base+".pb.gz")
		p := Profile{System: sysName, Workload: workload, Role: role, Kind: kind, File: file}
		if strings.HasPrefix(string(data), "error: ") {
			p.Top = string(data)
		} else if err := os.WriteFile(file, data, 0o644); err != nil {
			p.Top = "error: " + err.Error()
		} else {
			out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", file).CombinedOutput()
			p.Top = string(out)
			if err != nil {
				p.Top = "error: " + err.Error() + "\n" + p.Top
			}
			_ = os.WriteFile(filepath.Join(dir, base+".top.txt"), out, 0o644)
		}
		r.mu.Lock()
		r.profiles = append(r.profiles, p)
		r.mu.Unlock()
	}
}

func (r *runner) skip(sys system, workload, why string) {
	r.add(Measurement{System: sys.name(), Workload: workload, Skipped: why})
}

// ref is the namespace and name of object i of a set.
func (r *runner) ref(prefix string, i int) (string, string) {
	return namespaceName("bench", i%r.sizes.Namespaces), objectName(prefix, i)
}

func (r *runner) namespaces() []string {
	var out []string
	for i := range r.sizes.Namespaces {
		out = append(out, namespaceName("bench", i))
	}
	return append(out, "bench-big")
}

// runAll runs every workload on one system; the objects of the last create
// run stay for the later workloads.
func (r *runner) runAll(ctx context.Context, sys system) error {
	r.record(sys)
	s := r.sizes
	if err := sys.prepare(ctx, r.namespaces()); err != nil {
		return fmt.Errorf("%s: creating namespaces: %w", sys.name(), err)
	}
	time.Sleep(4 * settleTime)
	emptyRSS := rssMiB(sys.memoryPID())
	emptyHeap := r.liveHeap(ctx, sys)
	idleRanges := r.rangesAtRest(ctx, sys)

	var prefix string
	for idx, conc := range s.CreateConc {
		prefix = fmt.Sprintf("c%d", conc)
		last := idx == len(s.CreateConc)-1
		workload := fmt.Sprintf("create c=%d", conc)
		if !last && !r.wants(workload) {
			continue
		}
		// The last create run is measured whatever -workloads says.
		m := r.take(ctx, sys, workload, s.Objects, conc, last, func(ctx context.Context, i int) error {
			ns, name := r.ref(prefix, i)
			return sys.create(ctx, ns, name, i, smallShape)
		})
		r.add(m)
		if m.Errors > 0 && m.Ops == 0 {
			return fmt.Errorf("%s: create fails: %s", sys.name(), m.FirstError)
		}
		if !last {
			for i := range s.Namespaces {
				if err := sys.deleteAll(ctx, namespaceName("bench", i)); err != nil {
					return fmt.Errorf("%s: deleting: %w", sys.name(), err)
				}
			}
		}
		r.waitForQuietStorage(ctx, sys, idleRanges)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	time.Sleep(4 * settleTime)
	r.measureMemory(ctx, sys, "memory", emptyRSS, emptyHeap)

	n := min(s.MutateOps, s.Objects)
	for _, w := range []struct {
		name    string
		profile bool
		op      func(ctx context.Context, i int) error
	}{
		{"get consistent", false, func(ctx context.Context, i int) error { ns, nm := r.ref(prefix, i); return sys.get(ctx, ns, nm, false) }},
		{"get rv=0", false, func(ctx context.Context, i int) error { ns, nm := r.ref(prefix, i); return sys.get(ctx, ns, nm, true) }},
		{"update", true, func(ctx context.Context, i int) error {
			ns, nm := r.ref(prefix, i)
			return sys.update(ctx, ns, nm, i, 1)
		}},
		{"merge patch", false, func(ctx context.Context, i int) error {
			ns, nm := r.ref(prefix, i)
			return sys.patch(ctx, ns, nm, i, 2)
		}},
		{"server-side apply", false, func(ctx context.Context, i int) error {
			ns, nm := r.ref(prefix, i)
			return sys.apply(ctx, ns, nm, i, 3)
		}},
	} {
		r.measure(ctx, sys, w.name, n, s.MutateConc, w.profile, w.op)
	}

	lists := []struct {
		name, ns, selector string
		limit              int64
		profile            bool
	}{
		{fmt.Sprintf("list all %d", s.Objects), "", "", 0, true},
		{"list one namespace", namespaceName("bench", 0), "", 0, false},
		{"list selector 1%", "", bucketLabel + "=7", 0, false},
		{"list paginated 500", "", "", 500, false},
	}
	for _, l := range lists {
		r.measure(ctx, sys, l.name, s.ListRepeats, 1, l.profile, func(ctx context.Context, _ int) error {
			_, err := sys.list(ctx, l.ns, l.selector, l.limit)
			return err
		})
	}

	// What the lists left behind: Capstan keeps list items encoded.
	r.measureMemory(ctx, sys, "memory after lists", emptyRSS, emptyHeap)

	// One rate the machine carries, so that delivery is not queueing, and
	// one that saturates it.
	r.watchWorkload(ctx, sys, prefix, "", max(s.WatchRate/10, 1))
	r.watchWorkload(ctx, sys, prefix, "", s.WatchRate)

	r.measure(ctx, sys, fmt.Sprintf("informers x%d sync", s.Informers), 1, 1, false, func(ctx context.Context, _ int) error {
		return sys.informers(ctx, s.Informers)
	})

	bigNS := "bench-big"
	r.measure(ctx, sys, "create 10KiB c=8", s.BigObjects, 8, false, func(ctx context.Context, i int) error {
		return sys.create(ctx, bigNS, objectName("big", i), i, bigShape)
	})
	r.waitForQuietStorage(ctx, sys, idleRanges)
	r.measure(ctx, sys, fmt.Sprintf("list %d x 10KiB", s.BigObjects), s.ListRepeats, 1, false, func(ctx context.Context, _ int) error {
		_, err := sys.list(ctx, bigNS, "", 0)
		return err
	})
	return ctx.Err()
}

// quietWindow is the window etcd's range requests are counted in to tell
// whether it is at rest: no more than half again the requests it took in a
// window before the workloads (the control plane's own leases and status,
// when the objects share kube-apiserver's etcd), plus quietSlack.
// maxQuietWait bounds the wait: kube-controller-manager's garbage collector
// checks the revisions of 20,000 deleted ConfigSets at its client's 20
// requests a second in about 15 minutes (-quick: a minute).
const (
	quietWindow = 2 * time.Second
	quietSlack  = 2
)

var maxQuietWait = 30 * time.Minute

// rangesAtRest is the number of range requests the etcd holding sys's
// objects takes in a quietWindow before any workload, the mean of three.
func (r *runner) rangesAtRest(ctx context.Context, sys system) float64 {
	before, err := sys.etcdCounters(ctx)
	if err != nil {
		return 0
	}
	const windows = 3
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(windows * quietWindow):
	}
	after, err := sys.etcdCounters(ctx)
	if err != nil {
		return 0
	}
	return (after["range"] - before["range"]) / windows
}

// waitForQuietStorage waits until the etcd holding sys's objects is back at
// rest, so that what creates and deletes leave behind is not measured with
// the next workload. Through the aggregator they leave work that the CRD's
// objects do not, done by kube-controller-manager's garbage collector at its
// client's rate limit, for minutes after a bulk run: it reads every revision
// of a deleted ConfigSet (which Capstan has already deleted, so each read is
// a 404 from etcd), and it reads a new ConfigSet whenever its revision, with
// an owner reference to it, reaches the collector before the ConfigSet does
// (both are written in one transaction; about 6 in 10 creates at the bench's
// rates). That work is a cost of Capstan's writes the create figures leave
// out; the log says how long each wait took.
func (r *runner) waitForQuietStorage(ctx context.Context, sys system, idleRanges float64) {
	started := time.Now()
	before, err := sys.etcdCounters(ctx)
	if err != nil {
		return
	}
	for time.Since(started) < maxQuietWait {
		select {
		case <-ctx.Done():
			return
		case <-time.After(quietWindow):
		}
		after, err := sys.etcdCounters(ctx)
		if err != nil {
			return
		}
		if after["range"]-before["range"] <= 1.5*idleRanges+quietSlack {
			if waited := time.Since(started); waited > 2*quietWindow {
				r.log("%s: waited %s for etcd to be at rest", sys.name(), waited.Round(time.Second))
			}
			return
		}
		before = after
	}
	r.log("%s: etcd still busy after %s; going on", sys.name(), maxQuietWait)
}

// measureMemory records the growth of RSS and of the live heap of the
// process holding the objects since the server was empty, per 1,000 of the
// objects the workloads keep.
func (r *runner) measureMemory(ctx context.Context, sys system, workload string, emptyRSS, emptyHeap float64) {
	if !r.wants(workload) {
		return
	}
	objects := r.sizes.Objects
	loadedRSS := rssMiB(sys.memoryPID())
	extra := map[string]float64{
		"rssEmptyMiB": emptyRSS, "rssLoadedMiB": loadedRSS,
		"rssMiBPer1kObjects": (loadedRSS - emptyRSS) / (float64(objects) / 1000),
	}
	if loadedHeap := r.liveHeap(ctx, sys); emptyHeap > 0 && loadedHeap > 0 {
		extra["heapEmptyMiB"], extra["heapLoadedMiB"] = emptyHeap, loadedHeap
		extra["heapMiBPer1kObjects"] = (loadedHeap - emptyHeap) / (float64(objects) / 1000)
		r.saveHeapProfile(ctx, sys, workload)
	}
	r.add(Measurement{System: sys.name(), Workload: workload, Ops: objects, Extra: extra})
}

// wirePrefix marks the workloads that compare wire formats.
const wirePrefix = "wire "

// runWire lists every object and gets some from the watch cache with a JSON
// and a protobuf client of the same server, for client plus server CPU.
func (r *runner) runWire(ctx context.Context, systems ...system) {
	s := r.sizes
	prefix := fmt.Sprintf("c%d", s.CreateConc[len(s.CreateConc)-1])
	for _, sys := range systems {
		// Every object runAll left: the object set and the 10 KiB ones.
		r.measure(ctx, sys, fmt.Sprintf("%slist all %d + %d x 10KiB", wirePrefix, s.Objects, s.BigObjects), s.ListRepeats, 1, true, func(ctx context.Context, _ int) error {
			_, err := sys.list(ctx, "", "", 0)
			return err
		})
		r.measure(ctx, sys, wirePrefix+"get rv=0", min(s.MutateOps, s.Objects), s.MutateConc, false, func(ctx context.Context, i int) error {
			ns, name := r.ref(prefix, i)
			return sys.get(ctx, ns, name, true)
		})
		r.watchWorkload(ctx, sys, prefix, wirePrefix, s.WatchRate)
	}
}

// clear deletes every object runAll created, for a system that shares its
// server with the next one.
func (r *runner) clear(ctx context.Context, sys system) error {
	for _, ns := range r.namespaces() {
		if err := sys.deleteAll(ctx, ns); err != nil {
			return fmt.Errorf("%s: deleting the objects in %s: %w", sys.name(), ns, err)
		}
	}
	return nil
}

// watchWorkload starts the watchers on one namespace, sends merge patches
// carrying their send time at a fixed rate, and measures delivery.
func (r *runner) watchWorkload(ctx context.Context, sys system, prefix, label string, rate int) {
	s := r.sizes
	workload := fmt.Sprintf("%swatch %d watchers @%d/s", label, s.Watchers, rate)
	if !r.wants(workload) {
		return
	}
	ns := namespaceName("bench", 0)
	var mu sync.Mutex
	var lat []time.Duration
	onEvent := func(sent int64) {
		d := time.Duration(time.Now().UnixNano() - sent)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range s.Watchers {
		if err := sys.watch(wctx, ns, onEvent); err != nil {
			r.add(Measurement{System: sys.name(), Workload: "watch", Errors: 1, FirstError: fmt.Sprintf("watcher %d: %v", w, err)})
			return
		}
	}
	// Objects of namespace 0 are those with i % Namespaces == 0.
	perNS := (s.Objects + s.Namespaces - 1) / s.Namespaces
	total := rate * s.WatchSeconds
	settle()
	// The saturating rate is profiled: where a delivered event's CPU goes.
	profiles := r.profileMeanwhile(ctx, sys, rate == s.WatchRate)
	before := snapshot(ctx, sys)
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	var sent, failed int
	var firstErr string
	var swg sync.WaitGroup
	var smu sync.Mutex
	sem := make(chan struct{}, 8)
	for round := 0; round < total && ctx.Err() == nil; round++ {
		<-tick.C
		i := (round % perNS) * s.Namespaces
		_, name := r.ref(prefix, i)
		sem <- struct{}{}
		swg.Add(1)
		go func() {
			defer swg.Done()
			defer func() { <-sem }()
			err := sys.patch(ctx, ns, name, i, 100+round)
			smu.Lock()
			defer smu.Unlock()
			if err != nil {
				failed++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			sent++
		}()
	}
	tick.Stop()
	swg.Wait()
	// Let the last events arrive.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got >= sent*s.Watchers {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := snapshot(ctx, sys)
	mu.Lock()
	delivered := slicesClone(lat)
	mu.Unlock()
	m := Measurement{System: sys.name(), Workload: workload,
		Ops: len(delivered), Errors: failed, FirstError: firstErr,
		P50ms: percentile(delivered, 50), P99ms: percentile(delivered, 99)}
	finish(&m, before, after)
	m.EtcdPutsPerOp, m.EtcdDeletesPerOp, m.EtcdRangesPerOp = 0, 0, 0
	m.Extra = map[string]float64{"updatesSent": float64(sent), "expectedDeliveries": float64(sent * s.Watchers)}
	r.saveProfiles(sys.name(), workload, "", profiles())
	r.add(m)
}

func slicesClone(s []time.Duration) []time.Duration { return append([]time.Duration(nil), s...) }

// runEncryption measures Capstan's CPU per create and per uncached get with
// each encryption provider, each on a fresh server and etcd.
func (r *runner) runEncryption(ctx context.Context, bins binaries, dir string, providers []string, kmsSocket string) {
	for _, p := range providers {
		if ctx.Err() != nil {
			return
		}
		sys, err := startCapstanLocal(ctx, bins, dir, "capstan-enc-"+p, p, kmsSocket)
		if err != nil {
			r.add(Measurement{System: "O", Workload: "encryption " + p, Errors: 1, FirstError: err.Error()})
			continue
		}
		sys.sysName = "O-" + p
		n := r.sizes.EncObjects
		r.measure(ctx, sys, "enc create c=8", n, 8, false, func(ctx context.Context, i int) error {
			ns, name := r.ref("enc", i)
			return sys.create(ctx, ns, name, i, smallShape)
		})
		r.measure(ctx, sys, "enc get uncached c=8", n, 8, false, func(ctx context.Context, i int) error {
			ns, name := r.ref("enc", i)
			return sys.get(ctx, ns, name, false)
		})
		sys.stop()
	}
}

// variant is one local-mode server of a pair whose difference a table
// prices: the same workloads on a fresh server and etcd each.
type variant struct {
	name string
	args []string
}

// pairs are the variant pairs the bench measures; the first of each pair is
// Capstan as it ships.
var pairs = []struct {
	key, prefix, title string
	variants           [2]variant
}{
	{"hist", "hist", "The cost of history (Capstan in local mode, identity encryption; `--record-history=false` writes no revisions)",
		[2]variant{{"O-history", nil}, {"O-no-history", []string{"--record-history=false"}}}},
	{"store", "store", "Storage encoding (Capstan in local mode, identity encryption; what etcd holds: `--storage-media-type`)",
		[2]variant{{"O-store-protobuf", []string{"--storage-media-type=" + runtime.ContentTypeProtobuf}}, {"O-store-json", []string{"--storage-media-type=" + runtime.ContentTypeJSON}}}},
}

// runVariants measures creates, updates and uncached gets on each variant of
// a pair, each on a fresh server and etcd with identity encryption.
func (r *runner) runVariants(ctx context.Context, bins binaries, dir, prefix string, variants [2]variant) {
	for _, v := range variants {
		if ctx.Err() != nil {
			return
		}
		sys, err := startCapstanLocal(ctx, bins, dir, "capstan-"+v.name, "identity", "", v.args...)
		if err != nil {
			r.add(Measurement{System: v.name, Workload: prefix, Errors: 1, FirstError: err.Error()})
			continue
		}
		sys.sysName = v.name
		if err := sys.prepare(ctx, r.namespaces()); err != nil {
			r.add(Measurement{System: v.name, Workload: prefix, Errors: 1, FirstError: err.Error()})
			sys.stop()
			continue
		}
		n := r.sizes.EncObjects
		r.measure(ctx, sys, prefix+" create c=8", n, 8, false, func(ctx context.Context, i int) error {
			ns, name := r.ref(prefix, i)
			return sys.create(ctx, ns, name, i, smallShape)
		})
		r.measure(ctx, sys, prefix+" update c=8", n, 8, false, func(ctx context.Context, i int) error {
			ns, name := r.ref(prefix, i)
			return sys.update(ctx, ns, name, i, 1)
		})
		r.measure(ctx, sys, prefix+" get uncached c=8", n, 8, false, func(ctx context.Context, i int) error {
			ns, name := r.ref(prefix, i)
			return sys.get(ctx, ns, name, false)
		})
		sys.stop()
	}
}

// liveHeap is the live heap in MiB of a system that can report it (API
// servers, through /debug/pprof), or 0.
// saveHeapProfile keeps the heap profile of sys's server that holds the
// objects, taken after liveHeap: where the live heap a memory figure reports
// is held.
func (r *runner) saveHeapProfile(ctx context.Context, sys system, workload string) {
	h, ok := sys.(interface {
		heapProfile(context.Context) (string, []byte, error)
	})
	if !ok {
		return
	}
	role, data, err := h.heapProfile(ctx)
	if err != nil {
		data = []byte("error: " + err.Error())
	}
	r.saveProfiles(sys.name(), workload, heapKind, map[string][]byte{role: data})
}

func (r *runner) liveHeap(ctx context.Context, sys system) float64 {
	h, ok := sys.(interface {
		liveHeapMiB(context.Context) (float64, error)
	})
	if !ok {
		return 0
	}
	mib, err := h.liveHeapMiB(ctx)
	if err != nil {
		r.log("%s: live heap: %v", sys.name(), err)
		return 0
	}
	return mib
}
