// Package registrytest gives storage tests the same storage wiring the server
// uses, over a real embedded etcd.
package registrytest

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	etcd3testing "k8s.io/apiserver/pkg/storage/etcd3/testing"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/tools/cache"

	"capstan.dev/capstan/pkg/apis/config/install"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
)

// Scheme holds every version of config.capstan.dev, as the server's does. It
// is built here because the server's package imports the registry.
var Scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	install.Install(s)
	return s
}

// NewRESTOptionsGetter returns options that store every resource as v1beta1
// JSON under <prefix>/config.capstan.dev/<resource> in a fresh embedded etcd,
// behind the watch cache when cached is true. The etcd stops when the test ends.
func NewRESTOptionsGetter(t *testing.T, cached bool) generic.RESTOptionsGetter {
	t.Helper()
	_, etcd := etcd3testing.NewUnsecuredEtcd3TestClientServer(t)
	cfg := storagebackend.NewDefaultConfig(etcd.Prefix, serializer.NewCodecFactory(Scheme).LegacyCodec(v1beta1.SchemeGroupVersion))
	cfg.Transport = etcd.Transport
	decorator := generic.UndecoratedStorage
	if cached {
		decorator = genericregistry.StorageWithCacher()
	}
	return restOptionsGetter{config: *cfg, decorator: decorator}
}

type restOptionsGetter struct {
	config    storagebackend.Config
	decorator generic.StorageDecorator
}

func (g restOptionsGetter) GetRESTOptions(resource schema.GroupResource, _ runtime.Object) (generic.RESTOptions, error) {
	return generic.RESTOptions{
		StorageConfig:           g.config.ForResource(resource),
		Decorator:               g.decorator,
		DeleteCollectionWorkers: 1,
		ResourcePrefix:          resource.Group + "/" + resource.Resource,
	}, nil
}

// WaitReady waits until the store's storage serves requests: a watch cache
// answers only after its initial list.
func WaitReady(t *testing.T, store *genericregistry.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := store.ReadinessCheck()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage of %s not ready: %v", store.DefaultQualifiedResource, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NewHistory returns the history of revisions over the revision store, with
// its index of summaries running and synced, as the server runs it.
func NewHistory(t *testing.T, revisions *genericregistry.Store, opts history.Options) *history.History {
	t.Helper()
	h := history.New(revisions, opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go h.Run(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), h.HasSynced) {
		t.Fatal("the history index did not sync")
	}
	return h
}
