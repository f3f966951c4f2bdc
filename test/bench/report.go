package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Results is the JSON document a run writes.
type Results struct {
	Date     string            `json:"date"`
	Quick    bool              `json:"quick"`
	Seconds  float64           `json:"seconds"`
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Sizes    sizes             `json:"sizes"`
	Settings []string          `json:"settings"`
	// Systems are the settings each system ran with.
	Systems map[string]Settings `json:"systems"`
	// Comparisons are the ratios computed, each refused when the settings
	// of its two systems differ in what it does not vary.
	Comparisons []Comparison  `json:"comparisons"`
	Results     []Measurement `json:"results"`
	Ratios      []Ratio       `json:"ratios"`
	Profiles    []Profile     `json:"profiles,omitempty"`
	Errors      []string      `json:"errors,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUModel string `json:"cpuModel"`
	NumCPU   int    `json:"nproc"`
	MemTotal string `json:"memTotal"`
	Kernel   string `json:"kernel"`
}

// Ratio is one figure of one workload compared across systems.
type Ratio struct {
	Workload string             `json:"workload"`
	Metric   string             `json:"metric"`
	Values   map[string]float64 `json:"values"`
	// Ratios are by comparison name (O-agg/C, …); a comparison is missing
	// when a side did not run or the comparison was refused.
	Ratios map[string]float64 `json:"ratios"`
	// HigherIsBetter says which way the metric improves.
	HigherIsBetter bool `json:"higherIsBetter"`
}

var systemOrder = []string{"E", "O", "O-direct", "O-agg", "O-agg-pb", "C"}

func machine() Machine {
	m := Machine{NumCPU: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			m.MemTotal = strings.Join(strings.Fields(sc.Text())[1:], " ")
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown: " + err.Error()
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

func versions(root string) map[string]string {
	return map[string]string{
		"go (bench)":     runtime.Version(),
		"etcd":           firstLine(filepath.Join(root, "_output", "bin", "etcd"), "--version"),
		"kube-apiserver": firstLine(filepath.Join(root, "_output", "bin", "kube-apiserver"), "--version"),
		"capstan commit": firstLine("git", "-C", root, "rev-parse", "--short", "HEAD"),
	}
}

// metric is a figure the tables compare.
type metric struct {
	name           string
	get            func(Measurement) float64
	higherIsBetter bool
}

var (
	mThroughput = metric{"ops/s", func(m Measurement) float64 { return m.PerSecond }, true}
	mP50        = metric{"p50 ms", func(m Measurement) float64 { return m.P50ms }, false}
	mP99        = metric{"p99 ms", func(m Measurement) float64 { return m.P99ms }, false}
	mCPU        = metric{"server CPU ms/op", func(m Measurement) float64 { return m.ServerCPUPerOpMs }, false}
	mEtcdCPU    = metric{"etcd CPU ms/op", func(m Measurement) float64 { return m.EtcdCPUPerOpMs }, false}
	mPuts       = metric{"etcd puts/op", func(m Measurement) float64 { return m.EtcdPutsPerOp }, false}
	mSeconds    = metric{"seconds", func(m Measurement) float64 { return m.Seconds }, false}
	mTotalCPU   = metric{"client+server CPU ms/op", func(m Measurement) float64 {
		if m.Ops == 0 {
			return 0
		}
		return 1000 * (m.ServerCPU + m.ClientCPU) / float64(m.Ops)
	}, false}
	mServerSecs = metric{"server CPU s", func(m Measurement) float64 { return m.ServerCPU }, false}
	mRSSPer1k   = metric{"RSS MiB per 1k objects", func(m Measurement) float64 { return m.Extra["rssMiBPer1kObjects"] }, false}
	mRSSLoaded  = metric{"RSS MiB loaded", func(m Measurement) float64 { return m.Extra["rssLoadedMiB"] }, false}
	mHeapPer1k  = metric{"live heap MiB per 1k objects", func(m Measurement) float64 { return m.Extra["heapMiBPer1kObjects"] }, false}
	// mGets is what other clients got while the bench wrote: the garbage
	// collector's owner lookups, for one.
	mGets = metric{"gets served/op", func(m Measurement) float64 { return m.Extra[getsServedPerOp] }, false}
)

func metricsFor(workload string) []metric {
	switch {
	case strings.HasPrefix(workload, wirePrefix+"watch"):
		return []metric{mP50, mP99, mCPU, mTotalCPU}
	case strings.HasPrefix(workload, wirePrefix):
		return []metric{mP50, mCPU, mTotalCPU}
	case strings.HasPrefix(workload, "memory"):
		return []metric{mRSSPer1k, mRSSLoaded, mHeapPer1k}
	case strings.HasPrefix(workload, "informers"):
		return []metric{mSeconds, mServerSecs}
	case strings.HasPrefix(workload, "list"):
		return []metric{mP50, mP99, mCPU, mEtcdCPU}
	case strings.HasPrefix(workload, "watch"):
		return []metric{mP50, mP99, mCPU, mThroughput}
	case strings.HasPrefix(workload, "get"):
		return []metric{mThroughput, mP50, mP99, mCPU}
	default:
		return []metric{mThroughput, mP50, mP99, mCPU, mEtcdCPU, mPuts, mGets}
	}
}

func ratio(a, b float64) float64 {
	if a == 0 || b == 0 {
		return 0
	}
	return a / b
}

func buildRatios(ms []Measurement, comps []Comparison) []Ratio {
	by := map[string]map[string]Measurement{}
	var order []string
	for _, m := range ms {
		// Encryption and history workloads have tables of their own.
		if m.Skipped != "" || strings.HasPrefix(m.Workload, "enc ") || isVariantWorkload(m.Workload) || m.Workload == propagationWorkload ||
			strings.HasPrefix(m.Workload, historyMemoryPrefix) || m.Workload == h1Workload {
			continue
		}
		if by[m.Workload] == nil {
			by[m.Workload] = map[string]Measurement{}
			order = append(order, m.Workload)
		}
		by[m.Workload][m.System] = m
	}
	var out []Ratio
	for _, w := range order {
		for _, mt := range metricsFor(w) {
			r := Ratio{Workload: w, Metric: mt.name, Values: map[string]float64{}, Ratios: map[string]float64{}, HigherIsBetter: mt.higherIsBetter}
			for sys, m := range by[w] {
				r.Values[sys] = mt.get(m)
			}
			for _, c := range comps {
				if v := ratio(r.Values[c.A], r.Values[c.B]); c.Refused == "" && v != 0 {
					r.Ratios[c.Name] = v
				}
			}
			out = append(out, r)
		}
	}
	return out
}

func buildResults(r *runner, quick bool, d time.Duration, errs []string) Results {
	comps := checkComparisons(r.systems)
	return Results{
		Date:     time.Now().UTC().Format(time.RFC3339),
		Quick:    quick,
		Seconds:  d.Seconds(),
		Machine:  machine(),
		Versions: r.versions,
		Sizes:    r.sizes,
		Settings: []string{
			"every process on 127.0.0.1; client, servers and etcd share the machine",
			"each API server has its own etcd: --unsafe-no-fsync, --quota-backend-bytes=" + etcdQuota + " (the control plane's two etcds, kube-apiserver's and Capstan's, are the harness's: TLS with client certificates, each from its own CA, default quota)",
			"O-agg, O-direct and C share one control plane (test/utils/controlplane) whose kube-apiserver and Capstan run with their deployed defaults plus --profiling=true: priority and fairness on, in-flight limits at their defaults; O-direct runs after O-agg on Capstan restarted over its etcd compacted and defragmented; mem has a control plane of its own",
			"local mode (O) has no kube-apiserver to read priority and fairness configuration from and runs with " + strings.Join(localServerFlags, " "),
			"the typed client for C is the generated one on a scheme registering the same Go types under " + benchGroup.Group,
		},
		Systems:     r.systems,
		Comparisons: comps,
		Results:     r.results,
		Ratios:      buildRatios(r.results, comps),
		Profiles:    r.profiles,
		Errors:      errs,
	}
}

func writeJSON(path string, res Results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Markers delimit the generated part of docs/benchmarks.md.
const (
	beginMarker = "<!-- BEGIN GENERATED BY test/bench: do not edit by hand -->"
	endMarker   = "<!-- END GENERATED BY test/bench -->"
)

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

func markdownTables(res Results) string {
	var b strings.Builder
	kind := "full run (`make bench`)"
	if res.Quick {
		kind = "quick run (`make bench-quick`): small sizes, a smoke test, not for comparison"
	}
	fmt.Fprintf(&b, "Generated %s, %s, in %.0f s.\n\n", res.Date, kind, res.Seconds)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs (`nproc`), %s memory, Linux %s.\n\n", res.Machine.CPUModel, res.Machine.NumCPU, res.Machine.MemTotal, res.Machine.Kernel)
	b.WriteString("Versions:")
	for _, k := range []string{"etcd", "kube-apiserver", "capstan commit", "go (bench)"} {
		fmt.Fprintf(&b, " %s `%s`;", k, res.Versions[k])
	}
	b.WriteString("\n\nSettings:\n")
	for _, s := range res.Settings {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	fmt.Fprintf(&b, "\nSizes: %d objects of ~1 KiB in %d namespaces; create at concurrency %v; %d gets/updates/patches/applies at concurrency %d; each list %d times; %d watchers with %d updates/s for %d s; %d informers; %d objects of ~10 KiB.\n\n",
		res.Sizes.Objects, res.Sizes.Namespaces, res.Sizes.CreateConc, res.Sizes.MutateOps, res.Sizes.MutateConc, res.Sizes.ListRepeats,
		res.Sizes.Watchers, res.Sizes.WatchRate, res.Sizes.WatchSeconds, res.Sizes.Informers, res.Sizes.BigObjects)
	b.WriteString("E = raw etcd, O = Capstan in local mode, O-direct = the aggregated Capstan of O-agg called directly, O-agg = Capstan through kube-apiserver's aggregator, C = the CRD on the same kube-apiserver. ")
	b.WriteString("Server CPU is utime+stime from /proc of the API server processes (for O-agg kube-apiserver plus Capstan; for E etcd itself); ms per op equals CPU seconds per 1,000 operations. For lists an op is one full list (all pages); for watch an op is one delivered event.\n\n")
	b.WriteString(headlineTable(res))
	b.WriteString(comparisonTable(res, "O-agg-pb/C", "Each client's default format"))
	b.WriteString(settingsTable(res))
	b.WriteString(allSystemsTable(res))

	// Encryption providers: CPU per operation as a ratio to identity.
	enc := map[string]map[string]Measurement{}
	var providers []string
	for _, m := range res.Results {
		if !strings.HasPrefix(m.Workload, "enc ") || m.Skipped != "" {
			continue
		}
		p := strings.TrimPrefix(m.System, "O-")
		if enc[p] == nil {
			enc[p] = map[string]Measurement{}
			providers = append(providers, p)
		}
		enc[p][m.Workload] = m
	}
	if len(providers) > 0 {
		b.WriteString("\nEncryption at rest (Capstan direct, a fresh server and etcd per provider; get uncached = resourceVersion \"\", read from etcd and decrypted):\n\n")
		b.WriteString("| provider | create ops/s | create server CPU ms/op | ratio to identity | get ops/s | get server CPU ms/op | ratio to identity |\n|---|--:|--:|--:|--:|--:|--:|\n")
		id := enc["identity"]
		for _, p := range providers {
			c, g := enc[p]["enc create c=8"], enc[p]["enc get uncached c=8"]
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", p, fmtNum(c.PerSecond), fmtNum(c.ServerCPUPerOpMs),
				fmtRatio(ratio(c.ServerCPUPerOpMs, id["enc create c=8"].ServerCPUPerOpMs)), fmtNum(g.PerSecond), fmtNum(g.ServerCPUPerOpMs),
				fmtRatio(ratio(g.ServerCPUPerOpMs, id["enc get uncached c=8"].ServerCPUPerOpMs)))
		}
	}

	for _, p := range pairs {
		b.WriteString(variantTable(res, p.prefix, p.title, p.variants))
	}

	b.WriteString(memoryTables(res))

	for _, m := range res.Results {
		if m.Workload != propagationWorkload || m.Skipped != "" {
			continue
		}
		fmt.Fprintf(&b, "\nWorkloads (through kube-apiserver, with kube-controller-manager's deployment controller and capstan-controller-manager): "+
			"%.0f ConfigSets projected per revision, each consumed by %.0f Deployments; %d changes at %d/s, round-robin; time from the change's "+
			"acknowledgement until every consuming Deployment's pod template points at the new revision:\n\n",
			m.Extra["configSets"], m.Extra["deploymentsPerConfigSet"], res.Sizes.PropagationChanges, res.Sizes.PropagationRate)
		b.WriteString("| changes measured | p50 ms | p99 ms | controller manager CPU ms per change | controller manager RSS MiB |\n|--:|--:|--:|--:|--:|\n")
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", m.Ops, fmtNum(m.P50ms), fmtNum(m.P99ms),
			fmtNum(m.Extra["controllerManagerCPUmsPerChange"]), fmtNum(m.Extra["controllerManagerRSSMiB"]))
	}

	var bad []string
	for _, m := range res.Results {
		if m.Errors > 0 {
			bad = append(bad, fmt.Sprintf("- %s %s: %d errors, first: `%s`", m.System, m.Workload, m.Errors, oneLine(m.FirstError)))
		}
	}
	for _, e := range res.Errors {
		bad = append(bad, "- run: `"+oneLine(e)+"`")
	}
	if len(bad) > 0 {
		b.WriteString("\nErrors during the run:\n\n" + strings.Join(bad, "\n") + "\n")
	}

	for _, kind := range []struct{ kind, title string }{
		{"", "CPU profiles (`go tool pprof -top`, flat order, first frames)"},
		{heapKind, "Heap profiles of the server that holds the objects, taken after each memory figure's forced collection (`go tool pprof -top`: the space in use by where it was allocated, first frames)"},
	} {
		title := "\n" + kind.title + ":\n"
		for _, p := range res.Profiles {
			if p.Kind != kind.kind {
				continue
			}
			b.WriteString(title)
			title = ""
			fmt.Fprintf(&b, "\n%s, %s, %s:\n\n```\n%s\n```\n", p.System, p.Workload, p.Role, topFrames(p.Top, 12))
		}
	}
	return b.String()
}

// headlineTable is Capstan as users run it against the CRD: O-agg/C for
// every workload, or why the comparison was refused.
func headlineTable(res Results) string {
	return comparisonTable(res, "O-agg/C", "Headline")
}

// comparisonTable sets the two systems of one comparison side by side for
// every workload both ran, under a heading, or says why the run refused it.
func comparisonTable(res Results, name, heading string) string {
	var b strings.Builder
	c, ok := findComparison(res.Comparisons, name)
	if !ok {
		return ""
	}
	fmt.Fprintf(&b, "### %s: %s\n\n", heading, c.Question)
	if c.Refused != "" {
		fmt.Fprintf(&b, "**Not compared**: %s and %s ran with different settings, so no ratio is given: %s.\n\n", c.A, c.B, c.Refused)
		return b.String()
	}
	rows := 0
	var t strings.Builder
	fmt.Fprintf(&t, "| workload | metric | %[1]s | %[2]s | %[3]s | Capstan is |\n|---|---|--:|--:|--:|---|\n", c.A, c.B, c.Name)
	for _, r := range res.Ratios {
		v, ok := r.Ratios[c.Name]
		if !ok {
			continue
		}
		rows++
		fmt.Fprintf(&t, "| %s | %s | %s | %s | %s | %s |\n", r.Workload, r.Metric, fmtNum(r.Values[c.A]), fmtNum(r.Values[c.B]), fmtRatio(v), verdict(v, r.HigherIsBetter))
	}
	if rows == 0 {
		return ""
	}
	b.WriteString(t.String())
	b.WriteString("\n")
	return b.String()
}

// verdict says whether a ratio of Capstan's figure to the other's puts
// Capstan ahead, within 5%, or behind.
func verdict(v float64, higherIsBetter bool) string {
	if !higherIsBetter {
		v = 1 / v
	}
	switch {
	case v >= 1.05:
		return "ahead"
	case v > 0.95:
		return "even"
	default:
		return "behind"
	}
}

func findComparison(comps []Comparison, name string) (Comparison, bool) {
	for _, c := range comps {
		if c.Name == name {
			return c, true
		}
	}
	return Comparison{}, false
}

// settingsTable prints what every API server system ran with, and which
// comparisons the run refused.
func settingsTable(res Results) string {
	var names []string
	for _, s := range systemOrder {
		if _, ok := res.Systems[s]; ok {
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("What each system ran with:\n\n| setting |")
	for _, n := range names {
		fmt.Fprintf(&b, " %s |", n)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(names)) + "\n")
	rows := []struct {
		name string
		get  func(Settings) string
	}{
		{"path", func(s Settings) string { return s.Path }},
		{"server", func(s Settings) string { return s.Server }},
		{"authentication", func(s Settings) string { return s.Authentication }},
		{"admission", func(s Settings) string { return s.Admission }},
		{"priority and fairness", func(s Settings) string {
			if s.PriorityAndFairness {
				return "on"
			}
			return "off"
		}},
		{"etcd", func(s Settings) string { return s.Etcd }},
		{"encryption at rest", func(s Settings) string { return s.Encryption }},
		{"wire format", func(s Settings) string { return s.WireFormat }},
		{"objects", func(s Settings) string { return s.Objects }},
		{"client", func(s Settings) string { return s.Client }},
	}
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s |", row.name)
		for _, n := range names {
			fmt.Fprintf(&b, " %s |", row.get(res.Systems[n]))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nComparisons:\n")
	for _, c := range res.Comparisons {
		status := "computed"
		if c.Refused != "" {
			status = "**refused**, " + c.Refused
		} else if _, ok := res.Systems[c.A]; !ok {
			status = "not run"
		} else if _, ok := res.Systems[c.B]; !ok {
			status = "not run"
		}
		fmt.Fprintf(&b, "- %s: %s (differ by design: %s): %s\n", c.Name, c.Question, strings.Join(c.Varies, ", "), status)
	}
	b.WriteString("\n")
	return b.String()
}

// allSystemsTable is every workload on every system with every ratio.
func allSystemsTable(res Results) string {
	var b strings.Builder
	b.WriteString("All systems:\n\n| workload | metric |")
	for _, s := range systemOrder {
		fmt.Fprintf(&b, " %s |", s)
	}
	for _, c := range res.Comparisons {
		fmt.Fprintf(&b, " %s |", c.Name)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("--:|", len(systemOrder)+len(res.Comparisons)) + "\n")
	for _, r := range res.Ratios {
		fmt.Fprintf(&b, "| %s | %s |", r.Workload, r.Metric)
		for _, s := range systemOrder {
			v, ok := r.Values[s]
			if !ok {
				b.WriteString(" n/a |")
				continue
			}
			fmt.Fprintf(&b, " %s |", fmtNum(v))
		}
		for _, c := range res.Comparisons {
			fmt.Fprintf(&b, " %s |", fmtRatio(r.Ratios[c.Name]))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func isVariantWorkload(w string) bool {
	for _, p := range pairs {
		if strings.HasPrefix(w, p.prefix+" ") {
			return true
		}
	}
	return false
}

// variantTable sets the two variants of a pair side by side.
func variantTable(res Results, prefix, title string, variants [2]variant) string {
	by := map[string]map[string]Measurement{}
	var workloads []string
	for _, m := range res.Results {
		if !strings.HasPrefix(m.Workload, prefix+" ") || m.Skipped != "" {
			continue
		}
		if by[m.System] == nil {
			by[m.System] = map[string]Measurement{}
		}
		by[m.System][m.Workload] = m
		if m.System == variants[0].name {
			workloads = append(workloads, m.Workload)
		}
	}
	a, z := by[variants[0].name], by[variants[1].name]
	if a == nil || z == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s, a fresh server and etcd each:\n\n", title)
	fmt.Fprintf(&b, "| workload | %[1]s ops/s | %[2]s ops/s | server CPU ms/op %[1]s | %[2]s | ratio | etcd puts/op %[1]s | %[2]s | etcd ranges/op %[1]s | %[2]s |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", variants[0].name, variants[1].name)
	for _, w := range workloads {
		x, y := a[w], z[w]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(w, prefix+" "),
			fmtNum(x.PerSecond), fmtNum(y.PerSecond), fmtNum(x.ServerCPUPerOpMs), fmtNum(y.ServerCPUPerOpMs),
			fmtRatio(ratio(x.ServerCPUPerOpMs, y.ServerCPUPerOpMs)), fmtNum(x.EtcdPutsPerOp), fmtNum(y.EtcdPutsPerOp),
			fmtNum(x.EtcdRangesPerOp), fmtNum(y.EtcdRangesPerOp))
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// topFrames keeps the header's summary line and the first n frames.
func topFrames(top string, n int) string {
	var out []string
	frames := -1
	for _, l := range strings.Split(top, "\n") {
		switch {
		case strings.HasPrefix(l, "Showing nodes") || strings.HasPrefix(l, "Duration:"):
			out = append(out, l)
		case strings.Contains(l, "flat%"):
			out = append(out, l)
			frames = 0
		case frames >= 0 && frames < n && strings.TrimSpace(l) != "":
			out = append(out, l)
			frames++
		case strings.HasPrefix(l, "error"):
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

const markdownSkeleton = `# Benchmarks

` + beginMarker + `
` + endMarker + `

## What the figures say
`

// writeMarkdown replaces the generated section of path, creating the file
// from a skeleton when it does not exist.
func writeMarkdown(path string, res Results) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		data, err = []byte(markdownSkeleton), nil
	}
	if err != nil {
		return err
	}
	s := string(data)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q … %q section", path, beginMarker, endMarker)
	}
	s = s[:i+len(beginMarker)] + "\n" + markdownTables(res) + s[j:]
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// rerender rebuilds the ratios and the markdown tables of an earlier run from
// its raw results, so that a change to the report's layout needs no new run.
func rerender(jsonPath, mdPath string) error {
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("reading %s: %w", jsonPath, err)
	}
	res.Comparisons = checkComparisons(res.Systems)
	res.Ratios = buildRatios(res.Results, res.Comparisons)
	if err := writeJSON(jsonPath, res); err != nil {
		return err
	}
	if mdPath == "" {
		return nil
	}
	return writeMarkdown(mdPath, res)
}
