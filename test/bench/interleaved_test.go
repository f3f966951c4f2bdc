package main

import "testing"

func TestMedianOfRounds(t *testing.T) {
	rounds := []Measurement{
		{System: "O-agg", Workload: "w", Ops: 10, Seconds: 1, PerSecond: 300, ServerCPUPerOpMs: 4, P99ms: 90,
			ServerCPUByRole: map[string]float64{"capstan": 0.03, "kube-apiserver": 0.01}},
		{System: "O-agg", Workload: "w", Ops: 10, Seconds: 2, PerSecond: 100, ServerCPUPerOpMs: 6, P99ms: 70,
			ServerCPUByRole: map[string]float64{"capstan": 0.04, "kube-apiserver": 0.02}},
		{System: "O-agg", Workload: "w", Ops: 10, Seconds: 1, PerSecond: 200, ServerCPUPerOpMs: 5, P99ms: 80, Errors: 1, FirstError: "boom"},
	}
	m := medianOfRounds(rounds)
	if m.System != "O-agg" || m.Workload != "w" || m.Ops != 30 || m.Seconds != 4 || m.Errors != 1 || m.FirstError != "boom" {
		t.Errorf("sums: %+v", m)
	}
	if c, k := m.ServerCPUByRole["capstan"], m.ServerCPUByRole["kube-apiserver"]; c < 0.0699 || c > 0.0701 || k < 0.0299 || k > 0.0301 {
		t.Errorf("CPU by role: %v, want the rounds' sums, capstan 0.07 and kube-apiserver 0.03", m.ServerCPUByRole)
	}
	if m.PerSecond != 200 || m.ServerCPUPerOpMs != 5 || m.P99ms != 80 {
		t.Errorf("medians: %v/s, %v ms/op, p99 %v; want 200, 5, 80", m.PerSecond, m.ServerCPUPerOpMs, m.P99ms)
	}
	if m.Extra["perSecondMin"] != 100 || m.Extra["perSecondMax"] != 300 || m.Extra["rounds"] != 3 {
		t.Errorf("spread: %v", m.Extra)
	}
	if even := medianOfRounds(rounds[:2]); even.PerSecond != 200 {
		t.Errorf("median of two rounds: %v, want their mean 200", even.PerSecond)
	}
}
