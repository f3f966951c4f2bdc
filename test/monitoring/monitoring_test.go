// Package monitoring checks artifacts/monitoring with Prometheus' own code:
// the alerting rules parse and validate with its rule parser, every
// expression of the rules and of the Grafana dashboard parses with its PromQL
// parser and names only Capstan metrics that docs/design.md lists, and every
// alert has its runbook in docs/operations.md. It is a Go module of its own,
// so that Prometheus' dependencies stay out of Capstan's.
package monitoring

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = "../../artifacts/monitoring/prometheusrule.yaml"
	dashboardFile = "../../artifacts/monitoring/dashboard.json"
	operationsDoc = "../../docs/operations.md"
	designDoc     = "../../docs/design.md"
)

var promql = parser.NewParser(parser.Options{})

// ruleGroups returns the PrometheusRule's spec.groups as a Prometheus rules
// file, which is what the operator hands Prometheus.
func ruleGroups(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	// Only kind and spec.groups are read here; rulefmt below is strict
	// about the groups.
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.Kind != "PrometheusRule" || len(obj.Spec.Groups) == 0 {
		t.Fatalf("%s: kind %q with %d groups, want a PrometheusRule with groups", rulesFile, obj.Kind, len(obj.Spec.Groups))
	}
	out, err := yaml.Marshal(map[string]any{"groups": obj.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// capstanMetrics returns the Capstan metric names an expression selects.
func capstanMetrics(t *testing.T, expr string) []string {
	t.Helper()
	node, err := promql.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q does not parse: %v", expr, err)
	}
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && strings.HasPrefix(vs.Name, "capstan_") {
			names = append(names, strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(vs.Name, "_bucket"), "_sum"), "_count"))
		}
		return nil
	})
	return names
}

// documented returns the metric names docs/design.md lists in backquotes.
func documented(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(designDoc)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("`(capstan_[a-z_]+)(\\{[^`]*\\})?`").FindAllStringSubmatch(string(data), -1) {
		names[m[1]] = true
	}
	return names
}

// anchors returns the GitHub anchors of docs/operations.md's headings.
func anchors(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		anchor := strings.ToLower(heading)
		anchor = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(anchor, "")
		out[strings.ReplaceAll(anchor, " ", "-")] = true
	}
	return out
}

func TestRulesParseWithPrometheus(t *testing.T) {
	groups, errs := rulefmt.Parse(ruleGroups(t), false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if groups == nil {
		t.FailNow()
	}
	docs, heads := documented(t), anchors(t)
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.Labels["severity"] != "critical" && r.Labels["severity"] != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", r.Alert)
			}
			want := "docs/operations.md#" + strings.ToLower(r.Alert)
			if got := r.Annotations["runbook_url"]; got != want {
				t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, got, want)
			} else if !heads[strings.ToLower(r.Alert)] {
				t.Errorf("alert %s: docs/operations.md has no heading %q for its runbook", r.Alert, r.Alert)
			}
			for _, m := range capstanMetrics(t, r.Expr) {
				if !docs[m] {
					t.Errorf("alert %s uses %s, which docs/design.md does not list", r.Alert, m)
				}
			}
		}
	}
	if alerts < 8 {
		t.Errorf("%d alerts, fewer than the failures the rules cover", alerts)
	}
}

func TestDashboardQueriesParse(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", filepath.Base(dashboardFile), err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatal("the dashboard has no uid or no panels")
	}
	docs := documented(t)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			for _, m := range capstanMetrics(t, target.Expr) {
				if !docs[m] {
					t.Errorf("panel %q uses %s, which docs/design.md does not list", p.Title, m)
				}
			}
		}
	}
}
