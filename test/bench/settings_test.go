package main

import (
	"strings"
	"testing"
)

func TestComparisonsRefuseDifferentSettings(t *testing.T) {
	agg := Settings{Path: "through kube-apiserver", Server: "capstan", Admission: "capstan's", PriorityAndFairness: true,
		Encryption: "secretbox", WireFormat: wireJSON, Objects: objectsShape, Client: benchClient, Authentication: benchUserAuth}
	crd := agg
	crd.Path, crd.Server, crd.Admission = "kube-apiserver", "apiextensions", "kube-apiserver's"

	byName := func(cs []Comparison, name string) Comparison {
		t.Helper()
		c, ok := findComparison(cs, name)
		if !ok {
			t.Fatalf("no comparison %s", name)
		}
		return c
	}
	if c := byName(checkComparisons(map[string]Settings{"O-agg": agg, "C": crd}), "O-agg/C"); c.Refused != "" {
		t.Errorf("O-agg/C differs only in what it varies and was refused: %s", c.Refused)
	}

	crd.Encryption = "identity"
	crd.PriorityAndFairness = false
	c := byName(checkComparisons(map[string]Settings{"O-agg": agg, "C": crd}), "O-agg/C")
	if !strings.Contains(c.Refused, "encryption (secretbox against identity)") || !strings.Contains(c.Refused, "priorityAndFairness (true against false)") {
		t.Errorf("O-agg/C with other encryption and priority and fairness: refused %q", c.Refused)
	}

	res := Results{
		Systems:     map[string]Settings{"O-agg": agg, "C": crd},
		Comparisons: checkComparisons(map[string]Settings{"O-agg": agg, "C": crd}),
		Results: []Measurement{
			{System: "O-agg", Workload: "create c=8", Ops: 10, PerSecond: 100},
			{System: "C", Workload: "create c=8", Ops: 10, PerSecond: 200},
		},
	}
	res.Ratios = buildRatios(res.Results, res.Comparisons)
	for _, r := range res.Ratios {
		if _, ok := r.Ratios["O-agg/C"]; ok {
			t.Errorf("%s %s has an O-agg/C ratio although the comparison was refused", r.Workload, r.Metric)
		}
	}
	if h := headlineTable(res); !strings.Contains(h, "**Not compared**") {
		t.Errorf("the headline of a refused comparison does not say so:\n%s", h)
	}
}

func TestHeadlineSaysWhereCapstanIsAheadAndBehind(t *testing.T) {
	s := Settings{Path: "p", PriorityAndFairness: true, Encryption: "secretbox", WireFormat: wireJSON, Objects: objectsShape, Client: benchClient}
	systems := map[string]Settings{"O-agg": s, "C": s}
	res := Results{Systems: systems, Comparisons: checkComparisons(systems), Results: []Measurement{
		{System: "O-agg", Workload: "create c=8", Ops: 10, PerSecond: 120, P50ms: 5, P99ms: 20, ServerCPUPerOpMs: 1},
		{System: "C", Workload: "create c=8", Ops: 10, PerSecond: 100, P50ms: 5, P99ms: 10, ServerCPUPerOpMs: 1},
	}}
	res.Ratios = buildRatios(res.Results, res.Comparisons)
	h := headlineTable(res)
	for _, want := range []string{"| create c=8 | ops/s | 120 | 100 | 1.20× | ahead |", "| create c=8 | p99 ms | 20.0 | 10.0 | 2.00× | behind |", "| create c=8 | p50 ms | 5 | 5 | 1.00× | even |"} {
		if !strings.Contains(h, want) {
			t.Errorf("headline lacks %q:\n%s", want, h)
		}
	}
}
