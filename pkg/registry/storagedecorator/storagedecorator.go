// Package storagedecorator wraps the storage.Interface of each of Capstan's
// stores. It does two things k8s.io/apiserver does not: storage errors that a
// client's request caused become the 4xx answers Kubernetes clients expect
// instead of a 500 (an object too large for etcd is a 413, a malformed
// resourceVersion on get or watch is a 400), and each storage call gets a
// deadline shortly before the request's, so that a slow etcd ends in a 504
// the handler writes rather than a stream the timeout filter resets.
package storagedecorator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
	ctx, cancel := beforeHandlerTimeout(ctx)
	defer cancel()
	return t.translateIn(ctx, t.Interface.Create(ctx, key, obj, out, ttl))
}

func (t *translating) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateObjectFunc, cachedExistingObject runtime.Object, opts storage.DeleteOptions) error {
	ctx, cancel := beforeHandlerTimeout(ctx)
	defer cancel()
	return t.translateIn(ctx, t.Interface.Delete(ctx, key, out, preconditions, validateDeletion, cachedExistingObject, opts))
}

func (t *translating) GuaranteedUpdate(ctx context.Context, key string, destination runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExistingObject runtime.Object) error {
	ctx, cancel := beforeHandlerTimeout(ctx)
	defer cancel()
	return t.translateIn(ctx, t.Interface.GuaranteedUpdate(ctx, key, destination, ignoreNotFound, preconditions, tryUpdate, cachedExistingObject))
}

func (t *translating) Get(ctx context.Context, key string, opts storage.GetOptions, objPtr runtime.Object) error {
	ctx, cancel := beforeHandlerTimeout(ctx)
	defer cancel()
	return t.translateIn(ctx, t.Interface.Get(ctx, key, opts, objPtr))
}

func (t *translating) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	ctx, cancel := beforeHandlerTimeout(ctx)
	defer cancel()
	return t.translateIn(ctx, t.Interface.GetList(ctx, key, opts, listObj))
}

func (t *translating) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	w, err := t.Interface.Watch(ctx, key, opts)
	return w, t.translate(err)
}

// handlerMargin is how long before a request's deadline storage calls give
// up (at most a tenth of the time left).
const handlerMargin = time.Second

// beforeHandlerTimeout gives a storage call a deadline shortly before the
// request's. The server's timeout filter fires at the request's deadline; if
// the handler has begun writing an answer by then, the filter can only reset
// the stream, and the client sees a broken connection instead of a status.
// Giving up a little earlier lets the handler answer 504 itself.
func beforeHandlerTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	margin := min(time.Until(deadline)/10, handlerMargin)
	if margin <= 0 {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// translateIn is translate for a call made with ctx: a call that failed
// because its deadline passed is a 504, whatever error etcd's client gave.
func (t *translating) translateIn(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !isClientError(err) {
		return apierrors.NewTimeoutError(fmt.Sprintf("storage did not answer for %s within the request timeout (%v)", t.resource, err), 0)
	}
	return t.translate(err)
}

func isClientError(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code >= 400 && code < 500
	}
	return storage.IsNotFound(err) || storage.IsExist(err) || storage.IsConflict(err) || storage.IsInvalidObj(err)
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
