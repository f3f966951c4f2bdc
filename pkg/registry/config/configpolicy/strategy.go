// Package configpolicy holds the strategies of ConfigPolicies, the cluster-wide
// guardrails checked on every ConfigSet change.
package configpolicy

import (
	"context"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/validation"
	"capstan.dev/capstan/pkg/registry/resetfields"
)

// Strategy is the create, update and delete strategy of the main ConfigPolicy endpoint.
type Strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

// NewStrategy returns the strategy of the main ConfigPolicy endpoint.
func NewStrategy(typer runtime.ObjectTyper) Strategy {
	return Strategy{ObjectTyper: typer, NameGenerator: names.SimpleNameGenerator}
}

var (
	_ rest.RESTCreateStrategy  = Strategy{}
	_ rest.RESTUpdateStrategy  = Strategy{}
	_ rest.RESTDeleteStrategy  = Strategy{}
	_ rest.ResetFieldsStrategy = Strategy{}
)

// NamespaceScoped is false: a policy applies across the cluster.
func (Strategy) NamespaceScoped() bool { return false }

// GetResetFields names the status, which PrepareForCreate and PrepareForUpdate overwrite.
func (Strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetfields.ForAllVersions(fieldpath.MakePathOrDie("status"))
}

// PrepareForCreate clears the status and starts at generation 1.
func (Strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	p := obj.(*config.ConfigPolicy)
	p.Generation = 1
	p.Status = config.ConfigPolicyStatus{}
}

// PrepareForUpdate keeps the stored status and bumps the generation when the spec changed.
func (Strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newP := obj.(*config.ConfigPolicy)
	oldP := old.(*config.ConfigPolicy)
	newP.Status = oldP.Status
	if !apiequality.Semantic.DeepEqual(newP.Spec, oldP.Spec) {
		newP.Generation = oldP.Generation + 1
	}
}

// Validate validates a new policy, compiling its key pattern and CEL rules.
func (Strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateConfigPolicy(obj.(*config.ConfigPolicy))
}

// WarningsOnCreate returns no warnings.
func (Strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

// Canonicalize leaves the object as it is.
func (Strategy) Canonicalize(runtime.Object) {}

// AllowCreateOnUpdate is false.
func (Strategy) AllowCreateOnUpdate(context.Context) bool { return false }

// AllowUnconditionalUpdate is true, as for built-in kinds.
func (Strategy) AllowUnconditionalUpdate(context.Context) bool { return true }

// ValidateUpdate validates the new policy.
func (Strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateConfigPolicyUpdate(obj.(*config.ConfigPolicy), old.(*config.ConfigPolicy))
}

// WarningsOnUpdate returns no warnings.
func (Strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// StatusStrategy is the update strategy of the status subresource.
type StatusStrategy struct {
	Strategy
}

// NewStatusStrategy returns the strategy of the status subresource.
func NewStatusStrategy(s Strategy) StatusStrategy {
	return StatusStrategy{Strategy: s}
}

// GetResetFields names the spec and labels, which PrepareForUpdate keeps as stored.
func (StatusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetfields.ForAllVersions(fieldpath.MakePathOrDie("spec"), fieldpath.MakePathOrDie("metadata", "labels"))
}

// PrepareForUpdate keeps the stored spec and labels.
func (StatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newP := obj.(*config.ConfigPolicy)
	oldP := old.(*config.ConfigPolicy)
	newP.Spec = oldP.Spec
	newP.Labels = oldP.Labels
}

// ValidateUpdate validates a status update.
func (StatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateConfigPolicyStatusUpdate(obj.(*config.ConfigPolicy), old.(*config.ConfigPolicy))
}

// WarningsOnUpdate returns no warnings.
func (StatusStrategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// GetAttrs returns the labels and selectable fields of a ConfigPolicy.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	p, ok := obj.(*config.ConfigPolicy)
	if !ok {
		return nil, nil, fmt.Errorf("not a ConfigPolicy: %T", obj)
	}
	return p.Labels, SelectableFields(p), nil
}

// SelectableFields returns the fields a field selector can name.
func SelectableFields(p *config.ConfigPolicy) fields.Set {
	return generic.AddObjectMetaFieldsSet(fields.Set{
		config.ConfigPolicyEnforcementField: string(p.Spec.Enforcement),
	}, &p.ObjectMeta, false)
}

// MatchConfigPolicy returns the predicate a list or watch filters with.
func MatchConfigPolicy(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}
