// Package configset holds the strategies that shape every write of a ConfigSet.
package configset

import (
	"context"
	"fmt"
	"strconv"

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

// Strategy is the create, update and delete strategy of the main ConfigSet endpoint.
type Strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

// NewStrategy returns the strategy of the main ConfigSet endpoint.
func NewStrategy(typer runtime.ObjectTyper) Strategy {
	return Strategy{ObjectTyper: typer, NameGenerator: names.SimpleNameGenerator}
}

var (
	_ rest.RESTCreateStrategy  = Strategy{}
	_ rest.RESTUpdateStrategy  = Strategy{}
	_ rest.RESTDeleteStrategy  = Strategy{}
	_ rest.ResetFieldsStrategy = Strategy{}
)

// NamespaceScoped is true: ConfigSets live in namespaces.
func (Strategy) NamespaceScoped() bool { return true }

// GetResetFields names what PrepareForCreate and PrepareForUpdate overwrite:
// the whole status, which only the server and the status endpoint write.
func (Strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetfields.ForAllVersions(fieldpath.MakePathOrDie("status"))
}

// PrepareForCreate starts the object at generation 1 and revision 1 with a
// status only the server has written.
func (Strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	cs := obj.(*config.ConfigSet)
	cs.Generation = 1
	cs.Status = config.ConfigSetStatus{CurrentRevision: 1, ObservedGeneration: 1}
}

// PrepareForUpdate keeps the stored status, bumps the generation when the spec
// changed and the revision when the entries changed. It runs inside the storage
// layer's compare-and-swap loop, so the new revision is written in the same etcd
// transaction as the entries it describes.
func (Strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newCS := obj.(*config.ConfigSet)
	oldCS := old.(*config.ConfigSet)
	newCS.Status = oldCS.Status
	if !apiequality.Semantic.DeepEqual(newCS.Spec, oldCS.Spec) {
		newCS.Generation = oldCS.Generation + 1
	}
	if EntriesChanged(&newCS.Spec, &oldCS.Spec) {
		newCS.Status.CurrentRevision = oldCS.Status.CurrentRevision + 1
	}
	newCS.Status.ObservedGeneration = newCS.Generation
}

// EntriesChanged reports whether data or secretData differ; an empty map and
// an absent one are the same entries.
func EntriesChanged(a, b *config.ConfigSetSpec) bool {
	return !apiequality.Semantic.DeepEqual(a.Data, b.Data) || !apiequality.Semantic.DeepEqual(a.SecretData, b.SecretData)
}

// Validate validates a new ConfigSet.
func (Strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateConfigSet(obj.(*config.ConfigSet))
}

// WarningsOnCreate returns no warnings.
func (Strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

// Canonicalize leaves the object as it is.
func (Strategy) Canonicalize(runtime.Object) {}

// AllowCreateOnUpdate is false: a PUT to a missing ConfigSet is a 404, as for Deployments.
func (Strategy) AllowCreateOnUpdate(context.Context) bool { return false }

// AllowUnconditionalUpdate is true, so that `kubectl replace` without a
// resourceVersion works as it does for built-in kinds.
func (Strategy) AllowUnconditionalUpdate(context.Context) bool { return true }

// ValidateUpdate validates the new object and the transition from the old one.
func (Strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateConfigSetUpdate(obj.(*config.ConfigSet), old.(*config.ConfigSet))
}

// WarningsOnUpdate returns no warnings.
func (Strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// StatusStrategy is the update strategy of the status subresource: it keeps the
// spec, the labels and the fields the server owns.
type StatusStrategy struct {
	Strategy
}

// NewStatusStrategy returns the strategy of the status subresource.
func NewStatusStrategy(s Strategy) StatusStrategy {
	return StatusStrategy{Strategy: s}
}

var _ rest.ResetFieldsStrategy = StatusStrategy{}

// GetResetFields names what PrepareForUpdate overwrites on the status endpoint.
func (StatusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetfields.ForAllVersions(
		fieldpath.MakePathOrDie("spec"),
		fieldpath.MakePathOrDie("metadata", "labels"),
		fieldpath.MakePathOrDie("status", "currentRevision"),
		fieldpath.MakePathOrDie("status", "observedGeneration"),
	)
}

// PrepareForUpdate lets consumers write conditions and nothing else: the spec,
// labels, revision and observed generation stay as stored.
func (StatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newCS := obj.(*config.ConfigSet)
	oldCS := old.(*config.ConfigSet)
	newCS.Spec = oldCS.Spec
	newCS.Labels = oldCS.Labels
	newCS.Status.CurrentRevision = oldCS.Status.CurrentRevision
	newCS.Status.ObservedGeneration = oldCS.Status.ObservedGeneration
}

// ValidateUpdate validates a status update.
func (StatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateConfigSetStatusUpdate(obj.(*config.ConfigSet), old.(*config.ConfigSet))
}

// WarningsOnUpdate returns no warnings.
func (StatusStrategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// GetAttrs returns the labels and selectable fields of a ConfigSet.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	cs, ok := obj.(*config.ConfigSet)
	if !ok {
		return nil, nil, fmt.Errorf("not a ConfigSet: %T", obj)
	}
	return cs.Labels, SelectableFields(cs), nil
}

// SelectableFields returns the fields a field selector can name.
func SelectableFields(cs *config.ConfigSet) fields.Set {
	return generic.AddObjectMetaFieldsSet(fields.Set{
		config.ConfigSetImmutableField: strconv.FormatBool(cs.Spec.Immutable),
	}, &cs.ObjectMeta, true)
}

// MatchConfigSet returns the predicate a list or watch filters with.
func MatchConfigSet(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}
