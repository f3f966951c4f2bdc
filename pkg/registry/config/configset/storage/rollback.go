package storage

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/validation"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
)

// UpdateAdmitter validates the ConfigSet update a rollback makes, as the
// admission chain validates any update of a ConfigSet, so that policies apply
// to rollbacks like to every other change.
type UpdateAdmitter interface {
	AdmitUpdate(ctx context.Context, newObj, oldObj *config.ConfigSet, dryRun bool) error
}

// RollbackREST is the rollback subresource: a POST of a ConfigSetRollback
// restores the entries of a kept revision as a new revision.
type RollbackREST struct {
	configSets *REST
	history    history.Recorder
	admit      UpdateAdmitter
	access     readAccess
}

var _ rest.NamedCreater = &RollbackREST{}

func newRollbackREST(configSets *REST, hist history.Recorder, admit UpdateAdmitter, access readAccess) *RollbackREST {
	registerMetrics()
	return &RollbackREST{configSets: configSets, history: hist, admit: admit, access: access}
}

// New returns an empty ConfigSetRollback, the request body.
func (r *RollbackREST) New() runtime.Object { return &config.ConfigSetRollback{} }

// Destroy does nothing: the main store owns the storage.
func (r *RollbackREST) Destroy() {}

// Create rolls the ConfigSet back and returns it as updated. It answers 404
// when the revision is not kept and 409 when the ConfigSet is immutable. The
// update runs the storage compare-and-swap loop against the latest ConfigSet,
// so concurrent writers and rollbacks each apply to what is stored.
func (r *RollbackREST) Create(ctx context.Context, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (out runtime.Object, err error) {
	if len(options.DryRun) == 0 {
		defer func() { recordRollback(err) }()
	}
	rb, ok := obj.(*config.ConfigSetRollback)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a ConfigSetRollback: %T", obj))
	}
	// Checked first, so that not even a dry run or a 404 tells anything to a
	// caller who may not read the ConfigSet.
	if err := r.access.check(ctx, name, "rollback"); err != nil {
		return nil, err
	}
	if rb.Name != "" && rb.Name != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("metadata.name %q does not match the configset %q in the URL", rb.Name, name))
	}
	if errs := validation.ValidateConfigSetRollback(rb); len(errs) > 0 {
		return nil, apierrors.NewInvalid(config.Kind("ConfigSetRollback"), name, errs)
	}
	if createValidation != nil {
		if err := createValidation(ctx, rb.DeepCopyObject()); err != nil {
			return nil, err
		}
	}

	dryRun := len(options.DryRun) > 0
	info := &rollbackInfo{name: name, revision: rb.Revision, history: r.history}
	var admit rest.ValidateObjectUpdateFunc
	if r.admit != nil {
		admit = func(ctx context.Context, obj, old runtime.Object) error {
			return r.admit.AdmitUpdate(ctx, obj.(*config.ConfigSet), old.(*config.ConfigSet), dryRun)
		}
	}
	out, _, err = r.configSets.update(ctx, name, info, nil, admit, false,
		&metav1.UpdateOptions{DryRun: options.DryRun, FieldManager: options.FieldManager}, rb.Revision)
	return out, err
}

// rollbackInfo builds the rolled-back ConfigSet from whatever is stored at
// each attempt of the update.
type rollbackInfo struct {
	name     string
	revision int64
	history  history.Recorder
}

func (i *rollbackInfo) Preconditions() *metav1.Preconditions { return nil }

func (i *rollbackInfo) UpdatedObject(ctx context.Context, oldObj runtime.Object) (runtime.Object, error) {
	cs := oldObj.(*config.ConfigSet).DeepCopy()
	if cs.Spec.Immutable {
		return nil, apierrors.NewConflict(config.Resource("configsets"), i.name,
			fmt.Errorf("configset is immutable: its entries cannot be rolled back"))
	}
	rev, err := i.history.Revision(ctx, cs, i.revision)
	if err != nil {
		return nil, err
	}
	cs.Spec.Data = rev.Data
	cs.Spec.SecretData = rev.SecretData
	return cs, nil
}
