// Package storageerr turns storage errors that a client's request caused into
// the 4xx answers Kubernetes clients expect, where k8s.io/apiserver would
// otherwise answer 500: an object too large for etcd is a 413, a malformed
// resourceVersion on get or watch is a 400.
package storageerr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// RESTOptionsGetter decorates the storage of every resource it returns options for.
type RESTOptionsGetter struct {
	generic.RESTOptionsGetter
}

// GetRESTOptions returns the delegate's options with the storage decorated.
func (g RESTOptionsGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	opts.Decorator = Decorate(opts.Decorator, resource)
	return opts, nil
}

// Decorate wraps the storage a decorator builds.
func Decorate(inner generic.StorageDecorator, resource schema.GroupResource) generic.StorageDecorator {
	return func(config *storagebackend.ConfigForResource, resourcePrefix string, keyFunc func(obj runtime.Object) (string, error),
		newFunc func() runtime.Object, newListFunc func() runtime.Object, getAttrs storage.AttrFunc,
		trigger storage.IndexerFuncs, indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
		s, destroy, err := inner(config, resourcePrefix, keyFunc, newFunc, newListFunc, getAttrs, trigger, indexers)
		if err != nil {
			return nil, destroy, err
		}
		return &translating{Interface: s, resource: resource}, destroy, nil
	}
}

type translating struct {
	storage.Interface
	resource schema.GroupResource
}

func (t *translating) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	return t.translate(t.Interface.Create(ctx, key, obj, out, ttl))
}

func (t *translating) GuaranteedUpdate(ctx context.Context, key string, destination runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExistingObject runtime.Object) error {
	return t.translate(t.Interface.GuaranteedUpdate(ctx, key, destination, ignoreNotFound, preconditions, tryUpdate, cachedExistingObject))
}

func (t *translating) Get(ctx context.Context, key string, opts storage.GetOptions, objPtr runtime.Object) error {
	return t.translate(t.Interface.Get(ctx, key, opts, objPtr))
}

func (t *translating) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	return t.translate(t.Interface.GetList(ctx, key, opts, listObj))
}

func (t *translating) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	w, err := t.Interface.Watch(ctx, key, opts)
	return w, t.translate(err)
}

func (t *translating) translate(err error) error {
	switch {
	case err == nil:
		return nil
	case IsTooLarge(err):
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf(
			"the %s object is too large to store: %v; make the entries or metadata smaller", t.resource, err))
	case storage.IsInvalidError(err):
		return apierrors.NewBadRequest(err.Error())
	default:
		return err
	}
}

// IsTooLarge reports whether err is etcd or its client refusing a request for its size.
func IsTooLarge(err error) bool {
	var status interface{ GRPCStatus() *grpcstatus.Status }
	if errors.As(err, &status) {
		s := status.GRPCStatus()
		switch {
		case s.Code() == codes.InvalidArgument && strings.Contains(s.Message(), "request is too large"):
			return true
		case s.Code() == codes.ResourceExhausted && strings.Contains(s.Message(), "larger than max"):
			return true
		}
	}
	return strings.Contains(err.Error(), "etcdserver: request is too large")
}
