package validation

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
)

// want is one expected error: its type and exact field path.
type want struct {
	Type  field.ErrorType
	Field string
}

func (w want) String() string { return fmt.Sprintf("%s %s", w.Type, w.Field) }

// expectErrors compares errs with wanted errors, ignoring their order.
func expectErrors(t *testing.T, errs field.ErrorList, wanted ...want) {
	t.Helper()
	got := make([]string, 0, len(errs))
	for _, err := range errs {
		got = append(got, want{Type: err.Type, Field: err.Field}.String())
	}
	expected := make([]string, 0, len(wanted))
	for _, w := range wanted {
		expected = append(expected, w.String())
	}
	slices.Sort(got)
	slices.Sort(expected)
	if !slices.Equal(got, expected) {
		t.Errorf("got errors\n\t%s\nwant\n\t%s\nfull errors: %v",
			strings.Join(got, "\n\t"), strings.Join(expected, "\n\t"), errs)
	}
}

func invalid(path string) want   { return want{field.ErrorTypeInvalid, path} }
func required(path string) want  { return want{field.ErrorTypeRequired, path} }
func forbidden(path string) want { return want{field.ErrorTypeForbidden, path} }
func duplicate(path string) want { return want{field.ErrorTypeDuplicate, path} }

func condition(conditionType string) metav1.Condition {
	return metav1.Condition{
		Type:               conditionType,
		Status:             metav1.ConditionTrue,
		Reason:             "Applied",
		Message:            "revision 3 applied",
		LastTransitionTime: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
	}
}

func validConfigSet() *config.ConfigSet {
	return &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default", ResourceVersion: "1"},
		Spec: config.ConfigSetSpec{
			Data:                 map[string]string{"env": "prod", "log.level": "info", "EMPTY_VALUE": ""},
			SecretData:           map[string][]byte{"token": {0, 1, 2, 0xff}, "empty-secret": {}},
			RevisionHistoryLimit: config.DefaultRevisionHistoryLimit,
		},
		Status: config.ConfigSetStatus{
			CurrentRevision:    3,
			ObservedGeneration: 2,
			Conditions:         []metav1.Condition{condition("Applied")},
		},
	}
}

func TestValidateConfigSet(t *testing.T) {
	longKey := strings.Repeat("k", 254)
	tests := []struct {
		name   string
		mutate func(*config.ConfigSet)
		want   []want
	}{
		{name: "valid", mutate: func(*config.ConfigSet) {}},
		{name: "no entries", mutate: func(cs *config.ConfigSet) { cs.Spec.Data, cs.Spec.SecretData = nil, nil }},
		{name: "longest key", mutate: func(cs *config.ConfigSet) { cs.Spec.Data[strings.Repeat("k", 253)] = "v" }},
		{name: "missing name", mutate: func(cs *config.ConfigSet) { cs.Name = "" }, want: []want{required("metadata.name")}},
		{name: "invalid name", mutate: func(cs *config.ConfigSet) { cs.Name = "App_1" }, want: []want{invalid("metadata.name")}},
		{name: "missing namespace", mutate: func(cs *config.ConfigSet) { cs.Namespace = "" }, want: []want{required("metadata.namespace")}},
		{
			name:   "data key with a space",
			mutate: func(cs *config.ConfigSet) { cs.Spec.Data["a b"] = "v" },
			want:   []want{invalid("spec.data[a b]")},
		},
		{
			name:   "empty data key",
			mutate: func(cs *config.ConfigSet) { cs.Spec.Data[""] = "v" },
			want:   []want{invalid("spec.data[]")},
		},
		{
			name:   "data key too long",
			mutate: func(cs *config.ConfigSet) { cs.Spec.Data[longKey] = "v" },
			want:   []want{invalid("spec.data[" + longKey + "]")},
		},
		{
			name:   "dot-dot data key",
			mutate: func(cs *config.ConfigSet) { cs.Spec.Data[".."] = "v" },
			want:   []want{invalid("spec.data[..]")},
		},
		{
			name:   "secretData key with a slash",
			mutate: func(cs *config.ConfigSet) { cs.Spec.SecretData["a/b"] = []byte("v") },
			want:   []want{invalid("spec.secretData[a/b]")},
		},
		{
			name:   "key in data and secretData",
			mutate: func(cs *config.ConfigSet) { cs.Spec.SecretData["env"] = []byte("prod") },
			want:   []want{duplicate("spec.secretData[env]")},
		},
		{
			name: "entries exactly at the limit",
			mutate: func(cs *config.ConfigSet) {
				cs.Spec.Data = map[string]string{"a": strings.Repeat("x", config.MaxEntriesBytes/2-1)}
				cs.Spec.SecretData = map[string][]byte{"b": make([]byte, config.MaxEntriesBytes/2-1)}
			},
		},
		{
			name: "entries one byte over the limit, counted across both maps",
			mutate: func(cs *config.ConfigSet) {
				cs.Spec.Data = map[string]string{"a": strings.Repeat("x", config.MaxEntriesBytes/2-1)}
				cs.Spec.SecretData = map[string][]byte{"bb": make([]byte, config.MaxEntriesBytes/2-1)}
			},
			want: []want{{field.ErrorTypeTooLong, "spec"}},
		},
		{
			name: "keys count towards the limit",
			mutate: func(cs *config.ConfigSet) {
				cs.Spec.Data = map[string]string{"abc": strings.Repeat("x", config.MaxEntriesBytes-2)}
				cs.Spec.SecretData = nil
			},
			want: []want{{field.ErrorTypeTooLong, "spec"}},
		},
		{name: "revisionHistoryLimit 1", mutate: func(cs *config.ConfigSet) { cs.Spec.RevisionHistoryLimit = 1 }},
		{name: "revisionHistoryLimit 1000", mutate: func(cs *config.ConfigSet) { cs.Spec.RevisionHistoryLimit = 1000 }},
		{
			name:   "revisionHistoryLimit 0",
			mutate: func(cs *config.ConfigSet) { cs.Spec.RevisionHistoryLimit = 0 },
			want:   []want{invalid("spec.revisionHistoryLimit")},
		},
		{
			name:   "revisionHistoryLimit 1001",
			mutate: func(cs *config.ConfigSet) { cs.Spec.RevisionHistoryLimit = 1001 },
			want:   []want{invalid("spec.revisionHistoryLimit")},
		},
		{
			name:   "negative revisionHistoryLimit",
			mutate: func(cs *config.ConfigSet) { cs.Spec.RevisionHistoryLimit = -1 },
			want:   []want{invalid("spec.revisionHistoryLimit")},
		},
		{
			name:   "condition without type",
			mutate: func(cs *config.ConfigSet) { cs.Status.Conditions[0].Type = "" },
			want:   []want{required("status.conditions[0].type")},
		},
		{
			name: "duplicate condition type",
			mutate: func(cs *config.ConfigSet) {
				cs.Status.Conditions = append(cs.Status.Conditions, condition("Applied"))
			},
			want: []want{duplicate("status.conditions[1]")},
		},
		{
			name:   "condition with unknown status",
			mutate: func(cs *config.ConfigSet) { cs.Status.Conditions[0].Status = "Maybe" },
			want:   []want{{field.ErrorTypeNotSupported, "status.conditions[0].status"}},
		},
		{
			name:   "condition without reason",
			mutate: func(cs *config.ConfigSet) { cs.Status.Conditions[0].Reason = "" },
			want:   []want{required("status.conditions[0].reason")},
		},
		{
			name:   "negative currentRevision",
			mutate: func(cs *config.ConfigSet) { cs.Status.CurrentRevision = -1 },
			want:   []want{invalid("status.currentRevision")},
		},
		{
			name: "several errors at once",
			mutate: func(cs *config.ConfigSet) {
				cs.Spec.Data["bad key"] = "v"
				cs.Spec.SecretData["bad key!"] = nil
				cs.Spec.RevisionHistoryLimit = 0
			},
			want: []want{invalid("spec.data[bad key]"), invalid("spec.secretData[bad key!]"), invalid("spec.revisionHistoryLimit")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := validConfigSet()
			tc.mutate(cs)
			expectErrors(t, ValidateConfigSet(cs), tc.want...)
		})
	}
}

func TestValidateConfigSetTooLargeMessage(t *testing.T) {
	cs := validConfigSet()
	cs.Spec.Data = map[string]string{"a": strings.Repeat("x", config.MaxEntriesBytes)}
	cs.Spec.SecretData = nil
	errs := ValidateConfigSet(cs)
	if len(errs) != 1 {
		t.Fatalf("got %v, want one error", errs)
	}
	detail := errs[0].Detail
	for _, s := range []string{fmt.Sprint(config.MaxEntriesBytes + 1), fmt.Sprint(config.MaxEntriesBytes), "bytes"} {
		if !strings.Contains(detail, s) {
			t.Errorf("detail %q does not mention %q", detail, s)
		}
	}
	if strings.Contains(errs[0].Error(), "xxxx") {
		t.Error("the error echoes the entries")
	}
}

func TestValidateConfigSetDuplicateMessage(t *testing.T) {
	cs := validConfigSet()
	cs.Spec.SecretData["env"] = []byte("prod")
	errs := ValidateConfigSet(cs)
	if len(errs) != 1 || !strings.Contains(errs[0].Detail, "unique across data and secretData") {
		t.Errorf("got %v, want one error saying keys must be unique across data and secretData", errs)
	}
}

func TestEntriesSize(t *testing.T) {
	got := EntriesSize(map[string]string{"ab": "cde", "f": ""}, map[string][]byte{"gh": {1, 2}, "i": nil})
	if want := int64(2 + 3 + 1 + 2 + 2 + 1); got != want {
		t.Errorf("EntriesSize = %d, want %d", got, want)
	}
	if got := EntriesSize(nil, nil); got != 0 {
		t.Errorf("EntriesSize(nil, nil) = %d, want 0", got)
	}
}

func TestValidateConfigSetUpdate(t *testing.T) {
	tests := []struct {
		name   string
		old    func(*config.ConfigSet)
		update func(*config.ConfigSet)
		want   []want
	}{
		{name: "no change", old: func(*config.ConfigSet) {}, update: func(*config.ConfigSet) {}},
		{
			name:   "mutable: entries change and become immutable",
			old:    func(*config.ConfigSet) {},
			update: func(cs *config.ConfigSet) { cs.Spec.Data["env"] = "dev"; cs.Spec.Immutable = true },
		},
		{
			name:   "immutable: unchanged",
			old:    func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
		},
		{
			name: "immutable: other fields may change",
			old:  func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) {
				cs.Spec.Immutable = true
				cs.Spec.RevisionHistoryLimit = 3
				cs.Labels = map[string]string{"a": "b"}
			},
		},
		{
			name: "immutable: nil and empty maps are no change",
			old: func(cs *config.ConfigSet) {
				cs.Spec.Immutable = true
				cs.Spec.Data, cs.Spec.SecretData = nil, map[string][]byte{"empty": nil}
			},
			update: func(cs *config.ConfigSet) {
				cs.Spec.Immutable = true
				cs.Spec.Data, cs.Spec.SecretData = map[string]string{}, map[string][]byte{"empty": {}}
			},
		},
		{
			name:   "immutable: set back to false",
			old:    func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) { cs.Spec.Immutable = false },
			want:   []want{forbidden("spec.immutable")},
		},
		{
			name:   "immutable: data changed",
			old:    func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) { cs.Spec.Immutable = true; cs.Spec.Data["env"] = "dev" },
			want:   []want{forbidden("spec.data")},
		},
		{
			name:   "immutable: data key added",
			old:    func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) { cs.Spec.Immutable = true; cs.Spec.Data["new"] = "" },
			want:   []want{forbidden("spec.data")},
		},
		{
			name:   "immutable: secretData changed",
			old:    func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) { cs.Spec.Immutable = true; cs.Spec.SecretData["token"] = []byte("other") },
			want:   []want{forbidden("spec.secretData")},
		},
		{
			name:   "immutable: secretData removed",
			old:    func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) { cs.Spec.Immutable = true; cs.Spec.SecretData = nil },
			want:   []want{forbidden("spec.secretData")},
		},
		{
			name: "immutable: everything at once",
			old:  func(cs *config.ConfigSet) { cs.Spec.Immutable = true },
			update: func(cs *config.ConfigSet) {
				cs.Spec.Immutable = false
				cs.Spec.Data = nil
				cs.Spec.SecretData = nil
			},
			want: []want{forbidden("spec.immutable"), forbidden("spec.data"), forbidden("spec.secretData")},
		},
		{
			name:   "the new object is validated",
			old:    func(*config.ConfigSet) {},
			update: func(cs *config.ConfigSet) { cs.Spec.Data["bad key"] = "v" },
			want:   []want{invalid("spec.data[bad key]")},
		},
		{
			name:   "name cannot change",
			old:    func(*config.ConfigSet) {},
			update: func(cs *config.ConfigSet) { cs.Name = "other" },
			want:   []want{invalid("metadata.name")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldCS := validConfigSet()
			tc.old(oldCS)
			newCS := oldCS.DeepCopy()
			tc.update(newCS)
			expectErrors(t, ValidateConfigSetUpdate(newCS, oldCS), tc.want...)
		})
	}
}

func TestValidateConfigSetStatusUpdate(t *testing.T) {
	tests := []struct {
		name   string
		update func(*config.ConfigSet)
		want   []want
	}{
		{name: "no change", update: func(*config.ConfigSet) {}},
		{
			name:   "condition added",
			update: func(cs *config.ConfigSet) { cs.Status.Conditions = append(cs.Status.Conditions, condition("Ready")) },
		},
		{
			name:   "invalid condition",
			update: func(cs *config.ConfigSet) { cs.Status.Conditions[0].LastTransitionTime = metav1.Time{} },
			want:   []want{required("status.conditions[0].lastTransitionTime")},
		},
		{
			name:   "negative observedGeneration",
			update: func(cs *config.ConfigSet) { cs.Status.ObservedGeneration = -1 },
			want:   []want{invalid("status.observedGeneration")},
		},
		{
			// The status strategy keeps the old spec; it is not validated here.
			name:   "spec is not validated",
			update: func(cs *config.ConfigSet) { cs.Spec.Data["bad key"] = "v" },
		},
		{
			name:   "name cannot change",
			update: func(cs *config.ConfigSet) { cs.Name = "other" },
			want:   []want{invalid("metadata.name")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldCS := validConfigSet()
			newCS := oldCS.DeepCopy()
			tc.update(newCS)
			expectErrors(t, ValidateConfigSetStatusUpdate(newCS, oldCS), tc.want...)
		})
	}
}

func TestValidateConfigSetRollback(t *testing.T) {
	tests := []struct {
		revision int64
		want     []want
	}{
		{revision: 1},
		{revision: 42},
		{revision: 0, want: []want{invalid("revision")}},
		{revision: -3, want: []want{invalid("revision")}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.revision), func(t *testing.T) {
			r := &config.ConfigSetRollback{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Revision: tc.revision}
			expectErrors(t, ValidateConfigSetRollback(r), tc.want...)
		})
	}
}

func validConfigRevision() *config.ConfigRevision {
	return &config.ConfigRevision{
		ObjectMeta:    metav1.ObjectMeta{Name: "app-3", Namespace: "default"},
		ConfigSetName: "app",
		Revision:      3,
		Data:          map[string]string{"env": "prod"},
		SecretData:    map[string][]byte{"token": {0xff}},
		Author:        "system:admin",
		ChangeCause:   "roll back the log level",
		RollbackOf:    1,
	}
}

func TestValidateConfigRevision(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.ConfigRevision)
		want   []want
	}{
		{name: "valid", mutate: func(*config.ConfigRevision) {}},
		{name: "not a rollback", mutate: func(r *config.ConfigRevision) { r.RollbackOf = 0 }},
		{name: "no entries", mutate: func(r *config.ConfigRevision) { r.Data, r.SecretData = nil, nil }},
		{name: "missing name", mutate: func(r *config.ConfigRevision) { r.Name = "" }, want: []want{required("metadata.name")}},
		{name: "missing namespace", mutate: func(r *config.ConfigRevision) { r.Namespace = "" }, want: []want{required("metadata.namespace")}},
		{
			name:   "missing configSetName",
			mutate: func(r *config.ConfigRevision) { r.ConfigSetName = "" },
			want:   []want{required("configSetName")},
		},
		{
			name:   "invalid configSetName",
			mutate: func(r *config.ConfigRevision) { r.ConfigSetName = "App_1" },
			want:   []want{invalid("configSetName")},
		},
		{name: "revision 0", mutate: func(r *config.ConfigRevision) { r.Revision = 0 }, want: []want{invalid("revision")}},
		{name: "negative revision", mutate: func(r *config.ConfigRevision) { r.Revision = -1 }, want: []want{invalid("revision")}},
		{
			name:   "invalid data key",
			mutate: func(r *config.ConfigRevision) { r.Data["a:b"] = "v" },
			want:   []want{invalid("data[a:b]")},
		},
		{
			name:   "invalid secretData key",
			mutate: func(r *config.ConfigRevision) { r.SecretData["."] = nil },
			want:   []want{invalid("secretData[.]")},
		},
		{
			name:   "key in data and secretData",
			mutate: func(r *config.ConfigRevision) { r.SecretData["env"] = nil },
			want:   []want{duplicate("secretData[env]")},
		},
		{
			name:   "negative rollbackOf",
			mutate: func(r *config.ConfigRevision) { r.RollbackOf = -1 },
			want:   []want{invalid("rollbackOf")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validConfigRevision()
			tc.mutate(r)
			expectErrors(t, ValidateConfigRevision(r), tc.want...)
		})
	}
}

func validConfigPolicy() *config.ConfigPolicy {
	return &config.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "prod-guardrails", ResourceVersion: "1"},
		Spec: config.ConfigPolicySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}},
			}},
			RequiredKeys:     []string{"env", "owner"},
			ForbiddenKeys:    []string{"password"},
			KeyPattern:       `^[a-z][a-z0-9._-]*$`,
			MaxKeys:          ptr.To[int32](100),
			MaxBytes:         ptr.To[int64](64 << 10),
			RequireImmutable: true,
			Rules: []config.ConfigPolicyRule{
				{Expression: "'env' in data && data.env in ['prod','dev']", Message: "env must be prod or dev"},
				{Expression: "secretData.all(k, size(secretData[k]) < 64)"},
			},
			Enforcement: config.EnforcementDeny,
		},
		Status: config.ConfigPolicyStatus{
			ObservedGeneration: 1,
			Conditions:         []metav1.Condition{condition("Ready")},
		},
	}
}

func TestValidateConfigPolicy(t *testing.T) {
	manyRules := func(n int) []config.ConfigPolicyRule {
		rules := make([]config.ConfigPolicyRule, n)
		for i := range rules {
			rules[i] = config.ConfigPolicyRule{Expression: fmt.Sprintf("size(data) < %d", i+1000)}
		}
		return rules
	}
	tests := []struct {
		name   string
		mutate func(*config.ConfigPolicy)
		want   []want
	}{
		{name: "valid", mutate: func(*config.ConfigPolicy) {}},
		{name: "Warn", mutate: func(p *config.ConfigPolicy) { p.Spec.Enforcement = config.EnforcementWarn }},
		{
			name:   "minimal",
			mutate: func(p *config.ConfigPolicy) { p.Spec = config.ConfigPolicySpec{Enforcement: config.EnforcementDeny} },
		},
		{name: "zero limits", mutate: func(p *config.ConfigPolicy) { p.Spec.MaxKeys = ptr.To[int32](0); p.Spec.MaxBytes = ptr.To[int64](0) }},
		{name: "missing name", mutate: func(p *config.ConfigPolicy) { p.Name = "" }, want: []want{required("metadata.name")}},
		{
			name:   "namespace on a cluster-scoped object",
			mutate: func(p *config.ConfigPolicy) { p.Namespace = "default" },
			want:   []want{forbidden("metadata.namespace")},
		},
		{
			name:   "invalid selector label value",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Selector.MatchLabels["tier"] = "not valid!" },
			want:   []want{invalid("spec.selector.matchLabels")},
		},
		{
			name: "invalid selector operator",
			mutate: func(p *config.ConfigPolicy) {
				p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}
			},
			want: []want{invalid("spec.selector.matchExpressions[0].operator")},
		},
		{
			name:   "namespaceSelector In without values",
			mutate: func(p *config.ConfigPolicy) { p.Spec.NamespaceSelector.MatchExpressions[0].Values = nil },
			want:   []want{required("spec.namespaceSelector.matchExpressions[0].values")},
		},
		{
			name:   "invalid namespaceSelector key",
			mutate: func(p *config.ConfigPolicy) { p.Spec.NamespaceSelector.MatchExpressions[0].Key = "-bad" },
			want:   []want{invalid("spec.namespaceSelector.matchExpressions[0].key")},
		},
		{
			name:   "invalid required key",
			mutate: func(p *config.ConfigPolicy) { p.Spec.RequiredKeys = append(p.Spec.RequiredKeys, "a b") },
			want:   []want{invalid("spec.requiredKeys[2]")},
		},
		{
			name:   "duplicate required key",
			mutate: func(p *config.ConfigPolicy) { p.Spec.RequiredKeys = append(p.Spec.RequiredKeys, "env") },
			want:   []want{duplicate("spec.requiredKeys[2]")},
		},
		{
			name:   "invalid forbidden key",
			mutate: func(p *config.ConfigPolicy) { p.Spec.ForbiddenKeys = []string{""} },
			want:   []want{invalid("spec.forbiddenKeys[0]")},
		},
		{
			name:   "duplicate forbidden key",
			mutate: func(p *config.ConfigPolicy) { p.Spec.ForbiddenKeys = []string{"a", "b", "a"} },
			want:   []want{duplicate("spec.forbiddenKeys[2]")},
		},
		{
			name:   "key both required and forbidden",
			mutate: func(p *config.ConfigPolicy) { p.Spec.ForbiddenKeys = []string{"password", "owner"} },
			want:   []want{invalid("spec.forbiddenKeys[1]")},
		},
		{
			name:   "keyPattern does not compile",
			mutate: func(p *config.ConfigPolicy) { p.Spec.KeyPattern = "^[a-z" },
			want:   []want{invalid("spec.keyPattern")},
		},
		{
			name:   "keyPattern is not RE2",
			mutate: func(p *config.ConfigPolicy) { p.Spec.KeyPattern = `^(?!tmp)` },
			want:   []want{invalid("spec.keyPattern")},
		},
		{
			name:   "negative maxKeys",
			mutate: func(p *config.ConfigPolicy) { p.Spec.MaxKeys = ptr.To[int32](-1) },
			want:   []want{invalid("spec.maxKeys")},
		},
		{
			name:   "negative maxBytes",
			mutate: func(p *config.ConfigPolicy) { p.Spec.MaxBytes = ptr.To[int64](-1) },
			want:   []want{invalid("spec.maxBytes")},
		},
		{
			name:   "empty enforcement",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Enforcement = "" },
			want:   []want{{field.ErrorTypeNotSupported, "spec.enforcement"}},
		},
		{
			name:   "unknown enforcement",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Enforcement = "Audit" },
			want:   []want{{field.ErrorTypeNotSupported, "spec.enforcement"}},
		},
		{
			name:   "empty expression",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[1].Expression = "" },
			want:   []want{required("spec.rules[1].expression")},
		},
		{
			name:   "blank expression",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[0].Expression = " \n" },
			want:   []want{required("spec.rules[0].expression")},
		},
		{
			name:   "expression does not parse",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[1].Expression = "data.env ==" },
			want:   []want{invalid("spec.rules[1].expression")},
		},
		{
			name:   "expression is not a bool",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[0].Expression = "size(data)" },
			want:   []want{invalid("spec.rules[0].expression")},
		},
		{
			name:   "expression uses an unknown variable",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[0].Expression = "object.spec.immutable" },
			want:   []want{invalid("spec.rules[0].expression")},
		},
		{
			name:   "expression too expensive",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[0].Expression = "data.all(a, data.all(b, a != b))" },
			want:   []want{invalid("spec.rules[0].expression")},
		},
		{
			name:   "longest message, in characters",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[0].Message = strings.Repeat("é", MaxRuleMessageLength) },
		},
		{
			name:   "message too long",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[0].Message = strings.Repeat("m", MaxRuleMessageLength+1) },
			want:   []want{{field.ErrorTypeTooLong, "spec.rules[0].message"}},
		},
		{
			name:   "message with a line break",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules[1].Message = "first\nsecond" },
			want:   []want{invalid("spec.rules[1].message")},
		},
		{name: "most rules", mutate: func(p *config.ConfigPolicy) { p.Spec.Rules = manyRules(MaxPolicyRules) }},
		{
			name:   "too many rules",
			mutate: func(p *config.ConfigPolicy) { p.Spec.Rules = manyRules(MaxPolicyRules + 1) },
			want:   []want{{field.ErrorTypeTooMany, "spec.rules"}},
		},
		{
			name:   "negative observedGeneration",
			mutate: func(p *config.ConfigPolicy) { p.Status.ObservedGeneration = -1 },
			want:   []want{invalid("status.observedGeneration")},
		},
		{
			name:   "invalid condition",
			mutate: func(p *config.ConfigPolicy) { p.Status.Conditions[0].Reason = "not a reason" },
			want:   []want{invalid("status.conditions[0].reason")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validConfigPolicy()
			tc.mutate(p)
			expectErrors(t, ValidateConfigPolicy(p), tc.want...)
		})
	}
}

func TestValidateConfigPolicyDetails(t *testing.T) {
	p := validConfigPolicy()
	p.Spec.KeyPattern = "^[a-z"
	p.Spec.Rules[0].Expression = "size(data)"
	errs := ValidateConfigPolicy(p)
	details := map[string]string{}
	for _, err := range errs {
		details[err.Field] = err.Detail
	}
	if d := details["spec.keyPattern"]; !strings.Contains(d, "missing closing ]") {
		t.Errorf("spec.keyPattern detail %q does not carry the regexp error", d)
	}
	if d := details["spec.rules[0].expression"]; !strings.Contains(d, "must evaluate to bool") {
		t.Errorf("spec.rules[0].expression detail %q does not carry the compile error", d)
	}
}

func TestValidateConfigPolicyUpdate(t *testing.T) {
	tests := []struct {
		name   string
		old    func(*config.ConfigPolicy)
		update func(*config.ConfigPolicy)
		want   []want
	}{
		{name: "no change", old: func(*config.ConfigPolicy) {}, update: func(*config.ConfigPolicy) {}},
		{
			name: "rule added",
			old:  func(*config.ConfigPolicy) {},
			update: func(p *config.ConfigPolicy) {
				p.Spec.Rules = append(p.Spec.Rules, config.ConfigPolicyRule{Expression: "size(data) < 5"})
			},
		},
		{
			name: "invalid rule added",
			old:  func(*config.ConfigPolicy) {},
			update: func(p *config.ConfigPolicy) {
				p.Spec.Rules = append(p.Spec.Rules, config.ConfigPolicyRule{Expression: "size(data)"})
			},
			want: []want{invalid("spec.rules[2].expression")},
		},
		{
			// A rule stored by a server whose CEL environment accepted it does
			// not block other edits.
			name:   "stored rule is not compiled again",
			old:    func(p *config.ConfigPolicy) { p.Spec.Rules[0].Expression = "size(data)" },
			update: func(p *config.ConfigPolicy) { p.Labels = map[string]string{"edited": "true"} },
		},
		{
			name:   "the new object is validated",
			old:    func(*config.ConfigPolicy) {},
			update: func(p *config.ConfigPolicy) { p.Spec.Enforcement = "Audit" },
			want:   []want{{field.ErrorTypeNotSupported, "spec.enforcement"}},
		},
		{
			name:   "name cannot change",
			old:    func(*config.ConfigPolicy) {},
			update: func(p *config.ConfigPolicy) { p.Name = "other" },
			want:   []want{invalid("metadata.name")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldP := validConfigPolicy()
			tc.old(oldP)
			newP := oldP.DeepCopy()
			tc.update(newP)
			expectErrors(t, ValidateConfigPolicyUpdate(newP, oldP), tc.want...)
		})
	}
}

func TestValidateConfigPolicyStatusUpdate(t *testing.T) {
	tests := []struct {
		name   string
		update func(*config.ConfigPolicy)
		want   []want
	}{
		{name: "no change", update: func(*config.ConfigPolicy) {}},
		{name: "observedGeneration", update: func(p *config.ConfigPolicy) { p.Status.ObservedGeneration = 2 }},
		{
			name:   "invalid condition",
			update: func(p *config.ConfigPolicy) { p.Status.Conditions[0].Status = "" },
			want:   []want{required("status.conditions[0].status")},
		},
		{
			name:   "negative observedGeneration",
			update: func(p *config.ConfigPolicy) { p.Status.ObservedGeneration = -1 },
			want:   []want{invalid("status.observedGeneration")},
		},
		{
			// The status strategy keeps the old spec; it is not validated here.
			name:   "spec is not validated",
			update: func(p *config.ConfigPolicy) { p.Spec.Enforcement = "Audit" },
		},
		{
			name:   "name cannot change",
			update: func(p *config.ConfigPolicy) { p.Name = "other" },
			want:   []want{invalid("metadata.name")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldP := validConfigPolicy()
			newP := oldP.DeepCopy()
			tc.update(newP)
			expectErrors(t, ValidateConfigPolicyStatusUpdate(newP, oldP), tc.want...)
		})
	}
}
