package storage

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/status"
)

// readAccess makes the subresources that answer with the whole ConfigSet
// (rollback, status) answer only callers who may read it: the ConfigSet holds
// secretData, and a role with create on configsets/rollback or update on
// configsets/status alone must not learn it. Kubernetes' own Deployment
// rollback answered with a Status for the same reason; Capstan keeps the
// ConfigSet in the answer, which clients and kubectl capstan print, and asks
// for get on configsets beside the subresource's verb.
type readAccess struct {
	authorizer authorizer.Authorizer
}

// check returns Forbidden unless the user of ctx may get the ConfigSet name.
func (a readAccess) check(ctx context.Context, name, subresource string) error {
	// A request without a user is the authorizer's to refuse, as for any request.
	u, _ := genericapirequest.UserFrom(ctx)
	namespace, _ := genericapirequest.NamespaceFrom(ctx)
	attrs := authorizer.AttributesRecord{
		User:            u,
		Verb:            "get",
		Namespace:       namespace,
		APIGroup:        config.GroupName,
		Resource:        "configsets",
		Name:            name,
		ResourceRequest: true,
	}
	if info, ok := genericapirequest.RequestInfoFrom(ctx); ok {
		attrs.APIVersion = info.APIVersion
	}
	decision, reason, err := a.authorizer.Authorize(ctx, attrs)
	if decision == authorizer.DecisionAllow {
		return nil
	}
	why := fmt.Sprintf("the %s subresource answers with the configset, secretData included, so it also needs get on configsets", subresource)
	if reason != "" {
		why += ": " + reason
	}
	if err != nil {
		why += fmt.Sprintf(" (%v)", err)
	}
	return apierrors.NewForbidden(config.Resource("configsets"), name, fmt.Errorf("%s", why))
}

// StatusREST is the ConfigSet status endpoint, for callers who may read the ConfigSet.
type StatusREST struct {
	*status.REST
	access readAccess
}

var (
	_ rest.Patcher = &StatusREST{}
	_ rest.Getter  = &StatusREST{}
)

// Get returns the ConfigSet to a caller who may read it.
func (r *StatusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	if err := r.access.check(ctx, name, "status"); err != nil {
		return nil, err
	}
	return r.REST.Get(ctx, name, options)
}

// Update writes the status for a caller who may read the ConfigSet it returns.
func (r *StatusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	if err := r.access.check(ctx, name, "status"); err != nil {
		return nil, false, err
	}
	return r.REST.Update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options)
}
