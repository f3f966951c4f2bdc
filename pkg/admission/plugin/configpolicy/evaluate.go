package configpolicy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/lru"

	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apis/config/validation"
	"capstan.dev/capstan/pkg/policyrule"
)

// maxListedKeys bounds how many offending keys one message names.
const maxListedKeys = 5

// Evaluator checks ConfigSets against policy specs, caching compiled key patterns.
type Evaluator struct {
	patterns *lru.Cache
}

// NewEvaluator returns an Evaluator with an empty cache.
func NewEvaluator() *Evaluator {
	return &Evaluator{patterns: lru.New(256)}
}

// Evaluate returns one message per broken rule of spec; none when cs complies.
func (e *Evaluator) Evaluate(ctx context.Context, spec *configv1beta1.ConfigPolicySpec, cs *config.ConfigSet) []string {
	var out []string
	keys := entryKeys(cs)

	var missing []string
	for _, k := range spec.RequiredKeys {
		if !hasKey(cs, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		out = append(out, "requiredKeys: missing "+quoteList(missing))
	}

	var forbidden []string
	for _, k := range spec.ForbiddenKeys {
		if hasKey(cs, k) {
			forbidden = append(forbidden, k)
		}
	}
	if len(forbidden) > 0 {
		out = append(out, "forbiddenKeys: not allowed: "+quoteList(forbidden))
	}

	if spec.KeyPattern != "" {
		re, err := e.pattern(spec.KeyPattern)
		if err != nil {
			out = append(out, fmt.Sprintf("keyPattern: %v", err))
		} else {
			var bad []string
			for _, k := range keys {
				if !re.MatchString(k) {
					bad = append(bad, k)
				}
			}
			if len(bad) > 0 {
				out = append(out, fmt.Sprintf("keyPattern: keys must match %q: %s", spec.KeyPattern, quoteList(bad)))
			}
		}
	}

	if spec.MaxKeys != nil && int64(len(keys)) > int64(*spec.MaxKeys) {
		out = append(out, fmt.Sprintf("maxKeys: %d entries, at most %d allowed", len(keys), *spec.MaxKeys))
	}
	if spec.MaxBytes != nil {
		if size := validation.EntriesSize(cs.Spec.Data, cs.Spec.SecretData); size > *spec.MaxBytes {
			out = append(out, fmt.Sprintf("maxBytes: entries take %d bytes, at most %d allowed", size, *spec.MaxBytes))
		}
	}
	if spec.RequireImmutable && !cs.Spec.Immutable {
		out = append(out, "requireImmutable: spec.immutable must be true")
	}

	for i, rule := range spec.Rules {
		if msg := evalRule(ctx, i, rule, cs); msg != "" {
			out = append(out, msg)
		}
	}
	return out
}

// evalRule returns the message of rule i when cs breaks it, or "". Its
// messages reach the client (as the denial or a warning) and name the rule by
// its index and its message or expression, never by an entry's value: that is
// why an evaluation error is reported without its text. cel-go's error text quotes
// the input it failed on (the string ip() or url() could not parse, the regex
// matches() could not compile, the missing key, the index out of bounds), and
// a rule's input is the ConfigSet's entries, secretData included.
func evalRule(ctx context.Context, i int, rule configv1beta1.ConfigPolicyRule, cs *config.ConfigSet) string {
	prefix := fmt.Sprintf("rules[%d]", i)
	compiled, err := policyrule.Compile(rule.Expression)
	if err != nil {
		// Compiling sees the expression only, so its error quotes no entry.
		return fmt.Sprintf("%s: does not compile: %v", prefix, err)
	}
	what := rule.Message
	if what == "" {
		what = strconv.Quote(rule.Expression)
	}
	ok, cost, err := compiled.EvalCost(ctx, cs.Spec.Data, cs.Spec.SecretData)
	recordEvaluation(ok, cost, err)
	switch {
	case errors.Is(err, policyrule.ErrCostLimitExceeded):
		// policyrule writes this error itself, from its limits alone.
		return fmt.Sprintf("%s: evaluation exceeded its limits (%v), so the rule is treated as broken", prefix, err)
	case err != nil && ctx.Err() != nil:
		return fmt.Sprintf("%s: evaluation interrupted (%v), so the rule is treated as broken: %s", prefix, context.Cause(ctx), what)
	case err != nil:
		return fmt.Sprintf("%s: evaluation error (its details are not shown, as they can quote entry values), so the rule is treated as broken: %s", prefix, what)
	case ok:
		return ""
	case rule.Message != "":
		return fmt.Sprintf("%s: %s", prefix, rule.Message)
	default:
		return fmt.Sprintf("%s: %q is false", prefix, rule.Expression)
	}
}

func (e *Evaluator) pattern(expr string) (*regexp.Regexp, error) {
	if v, ok := e.patterns.Get(expr); ok {
		return v.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	e.patterns.Add(expr, re)
	return re, nil
}

// matches reports whether set satisfies selector; no selector matches all,
// and a selector that does not parse matches nothing.
func matches(selector *metav1.LabelSelector, set map[string]string) bool {
	if selector == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(set))
}

func entryKeys(cs *config.ConfigSet) []string {
	keys := make([]string, 0, len(cs.Spec.Data)+len(cs.Spec.SecretData))
	for k := range cs.Spec.Data {
		keys = append(keys, k)
	}
	for k := range cs.Spec.SecretData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func hasKey(cs *config.ConfigSet, k string) bool {
	if _, ok := cs.Spec.Data[k]; ok {
		return true
	}
	_, ok := cs.Spec.SecretData[k]
	return ok
}

func quoteList(keys []string) string {
	shown := keys
	if len(shown) > maxListedKeys {
		shown = shown[:maxListedKeys]
	}
	quoted := make([]string, len(shown))
	for i, k := range shown {
		quoted[i] = fmt.Sprintf("%q", k)
	}
	s := strings.Join(quoted, ", ")
	if len(keys) > maxListedKeys {
		s += fmt.Sprintf(" and %d more", len(keys)-maxListedKeys)
	}
	return s
}

// recordEvaluation counts a rule evaluation and, when it finished, its cost.
func recordEvaluation(ok bool, cost uint64, err error) {
	switch {
	case errors.Is(err, policyrule.ErrCostLimitExceeded):
		ruleEvaluations.WithLabelValues("limit").Inc()
		return
	case err != nil:
		ruleEvaluations.WithLabelValues("error").Inc()
		return
	case ok:
		ruleEvaluations.WithLabelValues("true").Inc()
	default:
		ruleEvaluations.WithLabelValues("false").Inc()
	}
	ruleCost.Observe(float64(cost))
}
