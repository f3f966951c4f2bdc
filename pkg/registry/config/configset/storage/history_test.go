package storage

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistrytest "k8s.io/apiserver/pkg/registry/generic/testing"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/tools/cache"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	configrevisionstorage "capstan.dev/capstan/pkg/registry/config/configrevision/storage"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

// failingCreates gives stores whose creates fail, as etcd would when a write
// after the ConfigSet's is lost.
type failingCreates struct {
	generic.RESTOptionsGetter
}

func (g failingCreates) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	inner := opts.Decorator
	opts.Decorator = func(cfg *storagebackend.ConfigForResource, prefix string, keyFunc func(runtime.Object) (string, error),
		newFunc, newListFunc func() runtime.Object, attrs storage.AttrFunc, trigger storage.IndexerFuncs, indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
		s, destroy, err := inner(cfg, prefix, keyFunc, newFunc, newListFunc, attrs, trigger, indexers)
		return failingCreate{s}, destroy, err
	}
	return opts, err
}

type failingCreate struct{ storage.Interface }

func (failingCreate) Create(context.Context, string, runtime.Object, runtime.Object, uint64) error {
	return errors.New("etcd went away")
}

type warnings []string

func (w *warnings) AddWarning(_, text string) { *w = append(*w, text) }

// TestChangeSucceedsWithWarningWhenHistoryFails: the ConfigSet write is the
// truth. When its revision cannot be written the request still succeeds, tells
// the client, and the reconciler restores the revision later.
func TestChangeSucceedsWithWarningWhenHistoryFails(t *testing.T) {
	optsGetter := registrytest.NewRESTOptionsGetter(t, false)
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, failingCreates{optsGetter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	s, err := NewStorage(registrytest.Scheme, optsGetter, history.New(revisions), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ConfigSet.Store.DestroyFunc)

	var got warnings
	ctx := warning.WithWarningRecorder(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &got)
	obj, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create failed with its history: %v", err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "revision 1") || !strings.Contains(got[0], "etcd went away") {
		t.Errorf("warnings = %q, want one naming revision 1 and the cause", got)
	}
	if _, err := s.ConfigSet.Get(ctx, "foo", &metav1.GetOptions{}); err != nil {
		t.Errorf("the ConfigSet was not stored: %v", err)
	}

	got = nil
	cs := obj.(*config.ConfigSet)
	cs.Spec.Data["LOG_LEVEL"] = "debug"
	updated, _, err := s.ConfigSet.Update(ctx, cs.Name, rest.DefaultUpdatedObjectInfo(cs), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update failed with its history: %v", err)
	}
	if rev := updated.(*config.ConfigSet).Status.CurrentRevision; rev != 2 {
		t.Errorf("currentRevision = %d, want 2", rev)
	}
	if len(got) != 1 || !strings.Contains(got[0], "revision 2") {
		t.Errorf("warnings = %q, want one naming revision 2", got)
	}
}
