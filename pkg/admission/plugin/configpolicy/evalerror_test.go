package configpolicy

import (
	"context"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// Distinctive entry values: a message that contains one of them, or one of
// the markers inside them, echoes an entry.
const (
	secretValue  = "s3cr3t-QX7Z-hunter2"
	secretMarker = "QX7Z"
	plainValue   = "plain-KW9V-value"
	plainMarker  = "KW9V"
	// numberValue is a plain entry that int() parses, for rules that fail on
	// the number it gives (an index out of bounds).
	numberValue = "731946"
)

// TestEvaluationErrorsDoNotEchoValues runs rules that fail to evaluate on
// distinctive entries, under a Deny and a Warn policy at once: the 403 must
// name the Deny policy and the rule's message, the warning the Warn policy
// and the rule's expression, and neither may contain an entry's value, which
// cel-go's error text quotes for most of these rules.
func TestEvaluationErrorsDoNotEchoValues(t *testing.T) {
	secretData := map[string][]byte{
		"token":  []byte(secretValue),
		"binary": append([]byte{0xff, 0xfe}, secretValue...),
	}
	data := map[string]string{
		"plain":  plainValue,
		"number": numberValue,
	}
	values := []string{secretValue, secretMarker, plainValue, plainMarker, numberValue}

	tests := []struct {
		name       string
		expression string
	}{
		{"ip of a secret", "ip(string(secretData.token)).family() == 4"},
		{"cidr of a secret", "cidr(string(secretData.token)).prefixLength() > 0"},
		{"url of a secret", "url(string(secretData.token)).getHost() != ''"},
		{"ip of a plain value", "ip(data.plain).family() == 4"},
		{"quantity of a secret", "quantity(string(secretData.token)).isInteger()"},
		{"semver of a plain value", "semver(data.plain).major() == 1"},
		{"int of a secret", "int(string(secretData.token)) == 1"},
		{"double of a plain value", "double(data.plain) > 0.0"},
		{"duration of a secret", "duration(string(secretData.token)) > duration('1s')"},
		{"timestamp of a plain value", "timestamp(data.plain) > timestamp('2020-01-01T00:00:00Z')"},
		{"regex built from a secret", "'x'.matches(string(secretData.token) + '(')"},
		{"regex built from a plain value", "'x'.matches(data.plain + '[')"},
		{"key taken from a secret", "data[string(secretData.token)] == ''"},
		{"index taken from a plain value", "[0, 1][int(data.number)] == 0"},
		{"type error on a plain value", "dyn(data.plain) + 1 == 2"},
		{"type error on a secret", "dyn(string(secretData.token)) < 1"},
		{"bytes that are not UTF-8", "string(secretData.binary) == ''"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const denyMessage = "the rule over the entries must hold"
			p, _ := startedPlugin(t,
				newPolicy("deny-rule", configv1beta1.ConfigPolicySpec{
					Rules: []configv1beta1.ConfigPolicyRule{
						{Expression: "true", Message: "always holds"},
						{Expression: tc.expression, Message: denyMessage},
					},
				}),
				newPolicy("warn-rule", configv1beta1.ConfigPolicySpec{
					Rules:       []configv1beta1.ConfigPolicyRule{{Expression: tc.expression}},
					Enforcement: configv1beta1.EnforcementWarn,
				}),
			)
			cs := newConfigSet("app", nil, data, secretData)
			warnings, err := validate(p, createAttributes(cs))

			if !apierrors.IsForbidden(err) {
				t.Fatalf("Validate = %v, want 403 from the Deny policy", err)
			}
			for _, want := range []string{`configpolicy "deny-rule"`, "rules[1]", denyMessage, "evaluation error"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("denial %q does not contain %q", err.Error(), want)
				}
			}
			if len(warnings) != 1 {
				t.Fatalf("warnings = %q, want one from the Warn policy", warnings)
			}
			for _, want := range []string{`configpolicy "warn-rule"`, "rules[0]", tc.expression, "evaluation error"} {
				if !strings.Contains(warnings[0], want) {
					t.Errorf("warning %q does not contain %q", warnings[0], want)
				}
			}

			for _, v := range values {
				if strings.Contains(err.Error(), v) {
					t.Errorf("denial %q contains the entry value %q", err.Error(), v)
				}
				if strings.Contains(warnings[0], v) {
					t.Errorf("warning %q contains the entry value %q", warnings[0], v)
				}
			}
		})
	}
}

// TestInterruptedEvaluationDoesNotEchoValues evaluates a failing rule under a
// request context that has ended: the message says so and still quotes no
// entry.
func TestInterruptedEvaluationDoesNotEchoValues(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	spec := configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
		{Expression: "ip(string(secretData.token)).family() == 4", Message: "token must be an IPv4 address"},
	}}
	cs := newConfigSet("app", nil, nil, map[string][]byte{"token": []byte(secretValue)})
	got := NewEvaluator().Evaluate(ctx, &spec, cs)
	want := []string{"rules[0]: evaluation interrupted (context canceled), so the rule is treated as broken: token must be an IPv4 address"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evaluate = %q, want %q", got, want)
	}
}
