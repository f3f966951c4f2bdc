package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
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

// TestNextChangeRestoresAnUnrecordedRevision: when the request that made a
// change ended before writing its revision (its deadline passed while etcd
// applied the change later, or its server died), the next change of the
// ConfigSet is the last to know what it held, and restores that revision after
// the grace period instead of leaving a gap in the history.
func TestNextChangeRestoresAnUnrecordedRevision(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(map[bool]string{false: "etcd", true: "watch cache"}[cached], func(t *testing.T) {
			optsGetter := registrytest.NewRESTOptionsGetter(t, cached)
			revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, optsGetter)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(revisions.DestroyFunc)
			hist := history.New(revisions)
			hist.SetRepairGrace(300 * time.Millisecond)
			s, err := NewStorage(registrytest.Scheme, optsGetter, hist, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.ConfigSet.Store.DestroyFunc)
			ctx := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})

			obj, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Revision 1 lost, as if the create's request had ended before writing it.
			if _, _, err := revisions.Delete(ctx, history.Name("foo", 1), rest.ValidateAllObjectFunc, &metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			cs := obj.(*config.ConfigSet)
			cs.Spec.Data = map[string]string{"LOG_LEVEL": "debug"}
			if _, _, err := s.ConfigSet.Update(ctx, cs.Name, rest.DefaultUpdatedObjectInfo(cs), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}

			var restored *config.ConfigRevision
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if obj, err := revisions.Get(ctx, history.Name("foo", 1), &metav1.GetOptions{}); err == nil {
					restored = obj.(*config.ConfigRevision)
					break
				}
			}
			if restored == nil {
				t.Fatal("revision 1 was not restored")
			}
			if restored.Data["LOG_LEVEL"] != "info" || restored.Author != history.ReconcilerUser {
				t.Errorf("restored revision 1: data %v author %q, want LOG_LEVEL=info by %s", restored.Data, restored.Author, history.ReconcilerUser)
			}
			rev2, err := revisions.Get(ctx, history.Name("foo", 2), &metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r := rev2.(*config.ConfigRevision); r.Data["LOG_LEVEL"] != "debug" || r.Author != "alice" {
				t.Errorf("revision 2: data %v author %q, want LOG_LEVEL=debug by alice", r.Data, r.Author)
			}
		})
	}
}
