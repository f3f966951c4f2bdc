package apiserver

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// chainUpdateAdmitter runs the server's validating admission chain on the
// ConfigSet update a rollback makes, as if the client had sent that update:
// ConfigPolicy, validating admission policies and webhooks all see it.
type chainUpdateAdmitter struct {
	chain  admission.ValidationInterface
	scheme *runtime.Scheme
}

func (a chainUpdateAdmitter) AdmitUpdate(ctx context.Context, newObj, oldObj *config.ConfigSet, dryRun bool) error {
	if !a.chain.Handles(admission.Update) {
		return nil
	}
	gv := v1beta1.SchemeGroupVersion
	if info, ok := genericapirequest.RequestInfoFrom(ctx); ok && info.APIVersion != "" {
		gv.Version = info.APIVersion
	}
	userInfo, _ := genericapirequest.UserFrom(ctx)
	options := &metav1.UpdateOptions{}
	if dryRun {
		options.DryRun = []string{metav1.DryRunAll}
	}
	attrs := admission.NewAttributesRecord(newObj, oldObj,
		gv.WithKind("ConfigSet"), newObj.Namespace, newObj.Name,
		gv.WithResource("configsets"), "", admission.Update, options, dryRun, userInfo)
	return a.chain.Validate(ctx, attrs, admission.NewObjectInterfacesFromScheme(a.scheme))
}
