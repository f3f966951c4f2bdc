// Package policyrule compiles and evaluates the CEL rules of ConfigPolicies.
//
// Rules see two variables, `data` (map(string, string)) and `secretData`
// (map(string, bytes)), and run in the Kubernetes base CEL environment, so the
// libraries a Kubernetes user knows from ValidatingAdmissionPolicy (strings,
// lists, sets, regex, quantity, semver...) behave the same way here. A rule is
// checked twice for cost: its estimated worst case when it is compiled, so that
// a hopeless rule is refused when the policy is written, and its actual cost
// when it runs, so that no rule can hold up an admission request.
package policyrule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
	"k8s.io/utils/lru"

	"capstan.dev/capstan/pkg/apis/config"
)

const (
	// DataVariable is the name under which a rule sees a ConfigSet's plain entries.
	DataVariable = "data"
	// SecretDataVariable is the name under which a rule sees a ConfigSet's sensitive entries.
	SecretDataVariable = "secretData"

	// RuntimeCostLimit bounds the actual cost of one evaluation of one rule. It
	// is the per-expression limit Kubernetes gives ValidatingAdmissionPolicy and
	// CRD validation rules, which Kubernetes sizes at a tenth of a second of
	// CPU; EvalTimeout says why that does not hold for long comprehensions.
	RuntimeCostLimit = celconfig.PerCallLimit

	// MaxEstimatedCost bounds the worst-case cost a rule may be estimated at
	// when it is compiled. It is the limit Kubernetes puts on the estimated cost
	// of a single CRD validation rule (apiextensions' StaticEstimatedCostLimit):
	// ten times the runtime limit, because the estimate assumes the largest
	// ConfigSet the server accepts, which real ConfigSets rarely come near. A
	// rule between the two limits is accepted and fails with
	// ErrCostLimitExceeded only on inputs too large for it.
	MaxEstimatedCost = 10 * celconfig.PerCallLimit

	// maxKeyLength is the longest key a ConfigSet accepts (validation.IsConfigMapKey).
	maxKeyLength = int64(validation.DNS1123SubdomainMaxLength)
	// keyAlphabet is the number of characters a key may consist of: [-._a-zA-Z0-9].
	keyAlphabet = 3 + 26 + 26 + 10
	// cacheSize bounds the compiled rules kept; policies are few, and the bound
	// keeps a stream of distinct (or rejected) expressions from growing memory.
	cacheSize = 1024
)

// EvalTimeout bounds the time one evaluation of one rule may take. The cost
// limit alone does not bound it: cel-go's runtime cost tracker (v0.29) spends
// time quadratic in the number of comprehension iterations, so a rule such as
// data.all(k, ...) over tens of thousands of entries takes seconds while still
// under RuntimeCostLimit. The timeout is far above what any rule over a
// realistic ConfigSet takes, so that a loaded server does not flip results.
const EvalTimeout = time.Second

// ErrCostLimitExceeded is wrapped by the error Eval returns when a rule is too
// expensive for its input (it runs over RuntimeCostLimit or EvalTimeout), so
// that callers can tell it (with errors.Is) from a rule that failed for
// another reason.
var ErrCostLimitExceeded = errors.New("CEL rule exceeded its runtime cost limit")

// errEvalTimeout is the cause of the context Eval gives a rule, so that the
// rule's own timeout can be told from the end of the caller's context.
var errEvalTimeout = errors.New("CEL rule evaluation timed out")

// runtimeCostLimit and evalTimeout are RuntimeCostLimit and EvalTimeout, as
// variables so that tests can make a cheap rule run over them.
var (
	runtimeCostLimit uint64 = RuntimeCostLimit
	evalTimeout             = EvalTimeout
)

// maxEntries is the largest number of entries one ConfigSet can hold: keys are
// distinct, non-empty, drawn from a 65-character alphabet, and keys and values
// together fit in config.MaxEntriesBytes. Using it as the maps' size in the cost
// estimate, instead of "one entry per byte", keeps the estimate of a rule that
// iterates over the entries three times closer to what can really happen.
var maxEntries = distinctKeysWithin(config.MaxEntriesBytes)

// distinctKeysWithin counts the most distinct keys whose lengths add up to at
// most budget bytes: all the shortest keys first.
func distinctKeysWithin(budget int64) int64 {
	var count int64
	// available is the number of keys of the current length, keyAlphabet^length.
	// It stops growing once it exceeds the budget, which then bounds n on its
	// own, so that it cannot overflow.
	available := int64(1)
	for length := int64(1); length <= maxKeyLength && budget >= length; length++ {
		if available <= budget {
			available *= keyAlphabet
		}
		n := min(available, budget/length)
		count += n
		budget -= n * length
	}
	return count
}

// Rule is a compiled ConfigPolicy rule. It is safe for concurrent use.
type Rule struct {
	expression    string
	program       cel.Program
	estimatedCost uint64
}

// Expression returns the CEL source the rule was compiled from.
func (r *Rule) Expression() string {
	return r.expression
}

// EstimatedCost returns the worst-case cost estimated for the rule at compile time.
func (r *Rule) EstimatedCost() uint64 {
	return r.estimatedCost
}

var (
	cacheMu sync.Mutex
	cache   = lru.New(cacheSize)
)

// Compile parses and type-checks expression as a ConfigPolicy rule. It fails
// when the expression is not valid CEL over data and secretData, does not
// evaluate to a bool, or is estimated to cost more than MaxEstimatedCost. The
// error's message is written for the user who wrote the rule, so that it can
// be the detail of a field.Invalid. Results are cached by expression.
func Compile(expression string) (*Rule, error) {
	cacheMu.Lock()
	cached, ok := cache.Get(expression)
	cacheMu.Unlock()
	if ok {
		return cached.(*Rule), nil
	}
	rule, err := compile(expression)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	cache.Add(expression, rule)
	cacheMu.Unlock()
	return rule, nil
}

func compile(expression string) (*Rule, error) {
	env, err := ruleEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment misconfigured: %w", err)
	}
	ast, issues := env.Compile(expression)
	if issues != nil && issues.Err() != nil {
		return nil, fmt.Errorf("compilation failed: %s", issues.String())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must evaluate to bool but got %v", ast.OutputType())
	}
	estimate, err := env.EstimateCost(ast, &library.CostEstimator{SizeEstimator: sizeEstimator{}})
	if err != nil {
		return nil, fmt.Errorf("cost estimation failed: %w", err)
	}
	if estimate.Max > MaxEstimatedCost {
		return nil, fmt.Errorf("estimated rule cost exceeds budget by factor of %.1fx (try simplifying the rule: "+
			"the estimate assumes the largest ConfigSet the server accepts, %d entries or %d bytes)",
			float64(estimate.Max)/float64(MaxEstimatedCost), maxEntries, config.MaxEntriesBytes)
	}
	program, err := env.Program(ast,
		cel.CostLimit(runtimeCostLimit),
		cel.InterruptCheckFrequency(celconfig.CheckFrequency),
	)
	if err != nil {
		return nil, fmt.Errorf("program instantiation failed: %w", err)
	}
	return &Rule{expression: expression, program: program, estimatedCost: estimate.Max}, nil
}

// Eval runs the rule over a ConfigSet's entries and returns its result. It
// fails with an error wrapping ErrCostLimitExceeded when the rule runs over
// RuntimeCostLimit or EvalTimeout, with one wrapping ctx's error when ctx ends
// first, and with another error when the evaluation fails (for example a
// missing key, or string() of bytes that are not UTF-8). That last error
// wraps cel-go's, whose text can quote the entries the rule ran over (the
// string ip() could not parse, the missing key), secret ones included: it is
// for errors.Is and errors.As, never for a message a client or a log sees.
func (r *Rule) Eval(ctx context.Context, data map[string]string, secretData map[string][]byte) (bool, error) {
	ok, _, err := r.EvalCost(ctx, data, secretData)
	return ok, err
}

// EvalCost is Eval that also returns the evaluation's actual CEL cost, for
// metrics; the cost is 0 when the evaluation did not finish.
func (r *Rule) EvalCost(ctx context.Context, data map[string]string, secretData map[string][]byte) (bool, uint64, error) {
	ok, details, err := r.eval(ctx, data, secretData)
	var cost uint64
	if details != nil && details.ActualCost() != nil {
		cost = *details.ActualCost()
	}
	return ok, cost, err
}

func (r *Rule) eval(ctx context.Context, data map[string]string, secretData map[string][]byte) (bool, *cel.EvalDetails, error) {
	evalCtx, cancel := context.WithTimeoutCause(ctx, evalTimeout, errEvalTimeout)
	defer cancel()
	out, details, err := r.program.ContextEval(evalCtx, map[string]any{
		DataVariable:       data,
		SecretDataVariable: secretData,
	})
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		switch {
		case errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded:
			return false, details, fmt.Errorf("%w: the cost limit is %d", ErrCostLimitExceeded, runtimeCostLimit)
		case ctx.Err() != nil:
			return false, details, fmt.Errorf("CEL rule evaluation interrupted: %w", context.Cause(ctx))
		case errors.Is(err, errEvalTimeout):
			return false, details, fmt.Errorf("%w: it ran for more than %v", ErrCostLimitExceeded, evalTimeout)
		}
		return false, details, fmt.Errorf("CEL rule evaluation failed: %w", err)
	}
	result, ok := out.Value().(bool)
	if !ok {
		// Compile only accepts rules of type bool; this guards against a value
		// that was dyn until it ran.
		return false, details, fmt.Errorf("CEL rule evaluated to %v, not a bool", out.Type())
	}
	return result, details, nil
}

// ruleEnv is built once: extending the base environment is expensive, and its
// declarations never change.
var ruleEnv = sync.OnceValues(func() (*cel.Env, error) {
	base := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	extended, err := base.Extend(environment.VersionedOptions{
		// Rules have always seen these variables: 1.0 puts them in both the
		// NewExpressions and the StoredExpressions environment.
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions: []cel.EnvOption{
			cel.Variable(DataVariable, dataType.CelType()),
			cel.Variable(SecretDataVariable, secretDataType.CelType()),
		},
	})
	if err != nil {
		return nil, err
	}
	// NewExpressions, because Compile guards what is written: a rule must not
	// use a library that the version a cluster may roll back to lacks.
	return extended.Env(environment.NewExpressions)
})

// The declared types carry the bounds the server enforces on a ConfigSet, so
// that the cost estimator sees the largest input a rule can ever get.
var (
	keyType          = boundedType("string", cel.StringType, types.String(""), maxKeyLength)
	stringValueType  = boundedType("string", cel.StringType, types.String(""), config.MaxEntriesBytes)
	bytesValueType   = boundedType("bytes", cel.BytesType, types.Bytes{}, config.MaxEntriesBytes)
	dataType         = apiservercel.NewMapType(keyType, stringValueType, maxEntries)
	secretDataType   = apiservercel.NewMapType(keyType, bytesValueType, maxEntries)
	declaredVariable = map[string]*apiservercel.DeclType{
		DataVariable:       dataType,
		SecretDataVariable: secretDataType,
	}
)

// boundedType is a string or bytes type with a maximum length, which the
// predeclared apiservercel.StringType and BytesType leave unbounded.
func boundedType(name string, celType *cel.Type, zero ref.Val, maxLength int64) *apiservercel.DeclType {
	t := apiservercel.NewSimpleTypeWithMinSize(name, celType, zero, apiservercel.MinStringSize)
	t.MaxElements = maxLength
	return t
}

// sizeEstimator tells the cost estimator how large data, secretData, their
// keys and their values can be, by following the estimator's path (a variable,
// then "@keys", "@values" or a field name) through the declared types.
type sizeEstimator struct{}

var _ checker.CostEstimator = sizeEstimator{}

func (sizeEstimator) EstimateSize(element checker.AstNode) *checker.SizeEstimate {
	path := element.Path()
	if len(path) == 0 {
		return nil
	}
	t, ok := declaredVariable[path[0]]
	if !ok {
		return nil
	}
	for _, step := range path[1:] {
		if !t.IsMap() {
			return nil
		}
		if step == "@keys" {
			t = t.KeyType
		} else {
			// "@values", and a field selection such as data.env, both reach a value.
			t = t.ElemType
		}
	}
	if t.MaxElements < 0 {
		return nil
	}
	return &checker.SizeEstimate{Min: 0, Max: uint64(t.MaxElements)}
}

func (sizeEstimator) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	return nil
}
