// Package configrevision holds the strategies of ConfigRevisions, the immutable
// history the server writes for every change of a ConfigSet.
package configrevision

import (
	"context"
	"fmt"
	"strconv"

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
)

// Strategy is the strategy the server's own writes of ConfigRevisions go
// through; users reach only get, list, watch and delete.
type Strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

// NewStrategy returns the ConfigRevision strategy.
func NewStrategy(typer runtime.ObjectTyper) Strategy {
	return Strategy{ObjectTyper: typer, NameGenerator: names.SimpleNameGenerator}
}

var (
	_ rest.RESTCreateStrategy  = Strategy{}
	_ rest.RESTUpdateStrategy  = Strategy{}
	_ rest.RESTDeleteStrategy  = Strategy{}
	_ rest.ResetFieldsStrategy = Strategy{}
)

// NamespaceScoped is true: a revision lives beside its ConfigSet.
func (Strategy) NamespaceScoped() bool { return true }

// GetResetFields names what PrepareForUpdate overwrites: every field but metadata.
func (Strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	set := fieldpath.NewSet(
		fieldpath.MakePathOrDie("configSetName"),
		fieldpath.MakePathOrDie("revision"),
		fieldpath.MakePathOrDie("author"),
		fieldpath.MakePathOrDie("changeCause"),
		fieldpath.MakePathOrDie("rollbackOf"),
	)
	beta := set.Union(fieldpath.NewSet(fieldpath.MakePathOrDie("data"), fieldpath.MakePathOrDie("secretData")))
	alpha := set.Union(fieldpath.NewSet(fieldpath.MakePathOrDie("entries")))
	return map[fieldpath.APIVersion]*fieldpath.Set{
		"config.capstan.dev/v1beta1":  beta,
		"config.capstan.dev/v1alpha1": alpha,
	}
}

// PrepareForCreate sets the generation; the content is the server's.
func (Strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*config.ConfigRevision).Generation = 1
}

// PrepareForUpdate keeps the snapshot as it was written: only metadata
// (finalizers, owner references, labels) may change after creation.
func (Strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newRev := obj.(*config.ConfigRevision)
	oldRev := old.(*config.ConfigRevision)
	meta := newRev.ObjectMeta
	*newRev = *oldRev.DeepCopy()
	newRev.ObjectMeta = meta
}

// Validate validates a revision before the server stores it.
func (Strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateConfigRevision(obj.(*config.ConfigRevision))
}

// WarningsOnCreate returns no warnings.
func (Strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

// Canonicalize leaves the object as it is.
func (Strategy) Canonicalize(runtime.Object) {}

// AllowCreateOnUpdate is false.
func (Strategy) AllowCreateOnUpdate(context.Context) bool { return false }

// AllowUnconditionalUpdate is false: the server's metadata updates always carry
// the resourceVersion they read.
func (Strategy) AllowUnconditionalUpdate(context.Context) bool { return false }

// ValidateUpdate validates the metadata change of a revision.
func (Strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateConfigRevisionUpdate(obj.(*config.ConfigRevision), old.(*config.ConfigRevision))
}

// WarningsOnUpdate returns no warnings.
func (Strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// GetAttrs returns the labels and selectable fields of a ConfigRevision.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	rev, ok := obj.(*config.ConfigRevision)
	if !ok {
		return nil, nil, fmt.Errorf("not a ConfigRevision: %T", obj)
	}
	return rev.Labels, SelectableFields(rev), nil
}

// SelectableFields returns the fields a field selector can name.
func SelectableFields(rev *config.ConfigRevision) fields.Set {
	return generic.AddObjectMetaFieldsSet(fields.Set{
		config.ConfigRevisionConfigSetNameField: rev.ConfigSetName,
		config.ConfigRevisionRevisionField:      strconv.FormatInt(rev.Revision, 10),
	}, &rev.ObjectMeta, true)
}

// MatchConfigRevision returns the predicate a list or watch filters with.
func MatchConfigRevision(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}
