package controlplane

import (
	"encoding/json"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAggregatedRules pins the rules of kube-controller-manager's
// clusterrole-aggregation controller: matching roles in name order, the
// aggregating role itself left out, duplicates dropped.
func TestAggregatedRules(t *testing.T) {
	rule := func(resource string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{Group}, Resources: []string{resource}, Verbs: []string{"get"}}
	}
	label := map[string]string{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}
	edit := rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "edit", Labels: label},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
			{MatchLabels: label},
		}},
		Rules: []rbacv1.PolicyRule{rule("stale")},
	}
	all := []rbacv1.ClusterRole{
		edit,
		{ObjectMeta: metav1.ObjectMeta{Name: "z-role", Labels: label}, Rules: []rbacv1.PolicyRule{rule("configsets"), rule("configpolicies")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "a-role", Labels: label}, Rules: []rbacv1.PolicyRule{rule("configpolicies")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}, Rules: []rbacv1.PolicyRule{rule("secrets")}},
	}
	got, err := aggregatedRules(&edit, all)
	if err != nil {
		t.Fatal(err)
	}
	var resources []string
	for _, r := range got {
		resources = append(resources, r.Resources...)
	}
	if want := "configpolicies,configsets"; strings.Join(resources, ",") != want {
		t.Fatalf("aggregated resources %v, want %s", resources, want)
	}
}

// TestProcessStateFields pins the JSON of a recorded process, so that state
// files written before still load.
func TestProcessStateFields(t *testing.T) {
	const recorded = `{"name":"capstan","pid":42,"startTicks":7,"args":["bin/capstan-apiserver","--v=2"],"logFile":"logs/capstan.log","url":"https://127.0.0.1:1"}`
	var p Process
	if err := json.Unmarshal([]byte(recorded), &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "capstan" || p.PID != 42 || p.StartTicks != 7 || strings.Join(p.Args, " ") != "bin/capstan-apiserver --v=2" ||
		p.LogFile != "logs/capstan.log" || p.URL != "https://127.0.0.1:1" {
		t.Fatalf("loaded %+v from %s", p, recorded)
	}
	data, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != recorded {
		t.Fatalf("recorded as\n%s\nwant\n%s", data, recorded)
	}
}
