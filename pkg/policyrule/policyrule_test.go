package policyrule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"capstan.dev/capstan/pkg/apis/config"
)

func TestCompile(t *testing.T) {
	tests := []struct {
		name       string
		expression string
		wantErr    string // empty: must compile
	}{
		{name: "literal", expression: "true"},
		{name: "data membership", expression: "'env' in data && data.env in ['prod','dev']"},
		{name: "secretData comprehension", expression: "secretData.all(k, size(secretData[k]) < 64)"},
		{name: "map size", expression: "size(data) + size(secretData) <= 10"},
		{name: "strings library", expression: "!has(data.name) || data.name.lowerAscii() == data.name"},
		{name: "regex", expression: "!has(data.url) || data.url.matches('^https://')"},
		{name: "quantity library", expression: "!has(data.memory) || quantity(data.memory).isLessThan(quantity('1Gi'))"},
		{name: "bytes", expression: "!('token' in secretData) || secretData.token != b''"},
		{name: "syntax error", expression: "data.env ==", wantErr: "compilation failed"},
		{name: "empty", expression: "", wantErr: "compilation failed"},
		{name: "not bool", expression: "size(data)", wantErr: "must evaluate to bool but got int"},
		{name: "string", expression: "data.env", wantErr: "must evaluate to bool but got string"},
		{name: "unknown variable", expression: "object.metadata.name == 'x'", wantErr: "undeclared reference to 'object'"},
		{name: "wrong value type", expression: "secretData.token == 'x'", wantErr: "compilation failed"},
		{
			name:       "estimated cost too high",
			expression: "data.all(k, data.all(j, k == j || data[k] != data[j]))",
			wantErr:    "estimated rule cost exceeds budget",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule, err := Compile(tc.expression)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Compile(%q): %v", tc.expression, err)
				}
				if rule.Expression() != tc.expression {
					t.Errorf("Expression() = %q, want %q", rule.Expression(), tc.expression)
				}
				if rule.EstimatedCost() > MaxEstimatedCost {
					t.Errorf("EstimatedCost() = %d, above MaxEstimatedCost", rule.EstimatedCost())
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile(%q) succeeded, want an error containing %q", tc.expression, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Compile(%q) = %q, want an error containing %q", tc.expression, err, tc.wantErr)
			}
		})
	}
}

func TestCompileCostMessageNamesTheBound(t *testing.T) {
	_, err := Compile("data.all(k, data.all(j, k != j))")
	if err == nil {
		t.Fatal("a nested comprehension over data compiled")
	}
	for _, want := range []string{"factor of", fmt.Sprint(maxEntries), fmt.Sprint(config.MaxEntriesBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestCompileCaches(t *testing.T) {
	const expression = "size(data) == 3"
	first, err := Compile(expression)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Compile(expression)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("compiling the same expression twice built two rules")
	}
}

func TestEval(t *testing.T) {
	tests := []struct {
		name       string
		expression string
		data       map[string]string
		secretData map[string][]byte
		want       bool
	}{
		{
			name:       "data value allowed",
			expression: "'env' in data && data.env in ['prod','dev']",
			data:       map[string]string{"env": "prod"},
			want:       true,
		},
		{
			name:       "data value not allowed",
			expression: "'env' in data && data.env in ['prod','dev']",
			data:       map[string]string{"env": "staging"},
			want:       false,
		},
		{
			name:       "data key missing",
			expression: "'env' in data && data.env in ['prod','dev']",
			data:       map[string]string{"other": "prod"},
			want:       false,
		},
		{
			name:       "nil maps",
			expression: "size(data) == 0 && size(secretData) == 0",
			want:       true,
		},
		{
			name:       "short secrets",
			expression: "secretData.all(k, size(secretData[k]) < 64)",
			secretData: map[string][]byte{"a": []byte("short"), "empty": {}, "nil": nil},
			want:       true,
		},
		{
			name:       "long secret",
			expression: "secretData.all(k, size(secretData[k]) < 64)",
			secretData: map[string][]byte{"a": []byte("short"), "long": []byte(strings.Repeat("x", 64))},
			want:       false,
		},
		{
			name:       "binary secret compared as bytes",
			expression: "secretData.bin == b'\\x00\\xff'",
			secretData: map[string][]byte{"bin": {0x00, 0xff}},
			want:       true,
		},
		{
			name:       "data and secretData together",
			expression: "data.all(k, !(k in secretData))",
			data:       map[string]string{"a": "1"},
			secretData: map[string][]byte{"b": []byte("2")},
			want:       true,
		},
		{
			name:       "kubernetes quantity library",
			expression: "quantity(data.memory).isLessThan(quantity('1Gi'))",
			data:       map[string]string{"memory": "512Mi"},
			want:       true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule, err := Compile(tc.expression)
			if err != nil {
				t.Fatal(err)
			}
			got, err := rule.Eval(context.Background(), tc.data, tc.secretData)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got != tc.want {
				t.Errorf("Eval = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEvalFailure(t *testing.T) {
	tests := []struct {
		name       string
		expression string
		data       map[string]string
		secretData map[string][]byte
	}{
		{name: "missing key", expression: "data.env == 'prod'"},
		{name: "bytes not UTF-8", expression: "string(secretData.bin) == ''", secretData: map[string][]byte{"bin": {0xff}}},
		{name: "not a quantity", expression: "quantity(data.memory).isLessThan(quantity('1Gi'))", data: map[string]string{"memory": "lots"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule, err := Compile(tc.expression)
			if err != nil {
				t.Fatal(err)
			}
			_, err = rule.Eval(context.Background(), tc.data, tc.secretData)
			if err == nil {
				t.Fatal("Eval succeeded, want an error")
			}
			if errors.Is(err, ErrCostLimitExceeded) {
				t.Errorf("Eval = %v, which claims the cost limit was exceeded", err)
			}
		})
	}
}

// manyEntries returns n plain entries, enough for a comprehension to cost
// more than a lowered limit.
func manyEntries(n int) map[string]string {
	data := make(map[string]string, n)
	for i := range n {
		data[fmt.Sprintf("key-%d", i)] = "value"
	}
	return data
}

// The estimator cannot accept a rule that then exceeds RuntimeCostLimit on a
// ConfigSet small enough for a unit test to build and evaluate quickly (the
// estimate assumes the largest ConfigSet, and a rule needs some hundred
// thousand iterations to cost RuntimeCostLimit), so the test lowers the limit.
func TestEvalCostLimitExceeded(t *testing.T) {
	const expression = "data.all(k, data[k].size() < 100)"
	data := manyEntries(1000)

	rule, err := Compile(expression)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := rule.Eval(context.Background(), data, nil); err != nil || !ok {
		t.Fatalf("under the real limit: Eval = %v, %v; want true", ok, err)
	}

	defer func(limit uint64) { runtimeCostLimit = limit }(runtimeCostLimit)
	runtimeCostLimit = 1000
	// compile, not Compile: the cache holds the rule built with the real limit.
	cheap, err := compile(expression)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cheap.Eval(context.Background(), data, nil)
	if !errors.Is(err, ErrCostLimitExceeded) {
		t.Fatalf("Eval = %v, want ErrCostLimitExceeded", err)
	}
	if !strings.Contains(err.Error(), "1000") {
		t.Errorf("error %q does not name the limit", err)
	}
	if ok, err := cheap.Eval(context.Background(), manyEntries(3), nil); err != nil || !ok {
		t.Errorf("on a small input: Eval = %v, %v; want true", ok, err)
	}
}

func TestEvalTimeout(t *testing.T) {
	defer func(timeout time.Duration) { evalTimeout = timeout }(evalTimeout)
	evalTimeout = time.Nanosecond

	rule, err := Compile("data.all(k, k.startsWith('key-'))")
	if err != nil {
		t.Fatal(err)
	}
	// The context is checked every celconfig.CheckFrequency iterations, so
	// the input needs more entries than that.
	_, err = rule.Eval(context.Background(), manyEntries(1000), nil)
	if !errors.Is(err, ErrCostLimitExceeded) {
		t.Fatalf("Eval = %v, want ErrCostLimitExceeded", err)
	}
}

func TestEvalCallerContextEnded(t *testing.T) {
	rule, err := Compile("data.all(k, k.startsWith('key-'))")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = rule.Eval(ctx, manyEntries(1000), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Eval = %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrCostLimitExceeded) {
		t.Errorf("Eval = %v, which blames the rule for the caller's context", err)
	}
}

func TestEvalConcurrently(t *testing.T) {
	rule, err := Compile("data.all(k, k.startsWith('key-'))")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if ok, err := rule.Eval(context.Background(), manyEntries(50), nil); err != nil || !ok {
				t.Errorf("Eval = %v, %v; want true", ok, err)
			}
		})
	}
	wg.Wait()
}

func TestDistinctKeysWithin(t *testing.T) {
	tests := []struct {
		budget int64
		want   int64
	}{
		{budget: 0, want: 0},
		{budget: 1, want: 1},
		{budget: 65, want: 65},
		{budget: 66, want: 65}, // one byte left, every one-byte key used
		{budget: 67, want: 66},
		// 65 one-byte, 4225 two-byte, 274625 three-byte keys, then four-byte keys.
		{budget: config.MaxEntriesBytes, want: 65 + 4225 + 274625 + (config.MaxEntriesBytes-65-2*4225-3*274625)/4},
	}
	for _, tc := range tests {
		if got := distinctKeysWithin(tc.budget); got != tc.want {
			t.Errorf("distinctKeysWithin(%d) = %d, want %d", tc.budget, got, tc.want)
		}
	}
	if maxEntries != distinctKeysWithin(config.MaxEntriesBytes) {
		t.Errorf("maxEntries = %d, not the bound for config.MaxEntriesBytes", maxEntries)
	}
}
