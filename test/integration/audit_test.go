package integration

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"capstan.dev/capstan/cmd/apiserver/app/local"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestAuditPolicyExample: with artifacts/audit/policy.yaml, the audit log
// says who created, changed and rolled back which ConfigSet, and who changed
// a policy, and never holds a secret value.
func TestAuditPolicyExample(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "audit.log")
	// A server of its own: --audit-policy-file and the audit log are per server.
	e := startEnv(t, "--audit-policy-file="+filepath.Join(repoRoot(t), "artifacts", "audit", "policy.yaml"),
		"--audit-log-path="+logFile, "--audit-log-mode=blocking")
	const ns = "audited"
	const secret = "s3cr3t-audit-value"
	sets := e.cs.ConfigV1beta1().ConfigSets(ns)

	e.mustCreate(t, ns, configSet("app", map[string]string{"level": "info"}, map[string][]byte{"token": []byte(secret)}))
	if _, err := sets.Patch(e.ctx, "app", types.MergePatchType,
		[]byte(`{"spec":{"data":{"level":"debug"},"secretData":{"token":"`+b64(secret+"-2")+`"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sets.Rollback(e.ctx, "app", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sets.Get(e.ctx, "app", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := &v1beta1.ConfigPolicy{ObjectMeta: metav1.ObjectMeta{Name: "audited-policy"},
		Spec: v1beta1.ConfigPolicySpec{RequiredKeys: []string{"level"}, Enforcement: v1beta1.EnforcementWarn}}
	if _, err := e.cs.ConfigV1beta1().ConfigPolicies().Create(e.ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret) || strings.Contains(string(data), b64(secret)) {
		t.Error("the audit log holds a secret value")
	}
	type seen struct{ verb, resource, sub, level, user string }
	var events []seen
	var policyBody bool
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if ev.ObjectRef == nil || ev.ObjectRef.APIGroup != "config.capstan.dev" {
			continue
		}
		if ev.Verb == "get" || ev.Verb == "list" || ev.Verb == "watch" {
			t.Errorf("a read was logged: %s %s/%s", ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Name)
		}
		if ev.ObjectRef.Resource == "configsets" && (ev.RequestObject != nil || ev.ResponseObject != nil) {
			t.Errorf("a ConfigSet event carries a body: %s %s", ev.Verb, ev.ObjectRef.Subresource)
		}
		if ev.ObjectRef.Resource == "configpolicies" && ev.Verb == "create" && ev.RequestObject != nil {
			policyBody = true
		}
		events = append(events, seen{ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Subresource, string(ev.Level), ev.User.Username})
	}
	for _, want := range []seen{
		{"create", "configsets", "", "Metadata", local.AdminUser},
		{"patch", "configsets", "", "Metadata", local.AdminUser},
		{"create", "configsets", "rollback", "Metadata", local.AdminUser},
		{"create", "configpolicies", "", "RequestResponse", local.AdminUser},
	} {
		found := false
		for _, ev := range events {
			found = found || ev == want
		}
		if !found {
			t.Errorf("no audit event %+v among %+v", want, events)
		}
	}
	if !policyBody {
		t.Error("the ConfigPolicy create was logged without its body")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
