package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
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

// wrapped gives stores whose storage wrap wraps, to inject faults.
type wrapped struct {
	generic.RESTOptionsGetter
	wrap func(storage.Interface) storage.Interface
}

func (g wrapped) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	inner := opts.Decorator
	opts.Decorator = func(cfg *storagebackend.ConfigForResource, prefix string, keyFunc func(runtime.Object) (string, error),
		newFunc, newListFunc func() runtime.Object, attrs storage.AttrFunc, trigger storage.IndexerFuncs, indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
		s, destroy, err := inner(cfg, prefix, keyFunc, newFunc, newListFunc, attrs, trigger, indexers)
		return g.wrap(s), destroy, err
	}
	return opts, err
}

// failingCreates gives stores whose creates fail, as etcd would when a write
// after the ConfigSet's is lost.
func failingCreates(g generic.RESTOptionsGetter) generic.RESTOptionsGetter {
	return wrapped{g, func(s storage.Interface) storage.Interface { return failingCreate{s} }}
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
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, failingCreates(optsGetter))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	s, err := NewStorage(registrytest.Scheme, optsGetter, registrytest.NewHistory(t, revisions, history.Options{}), Options{})
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

// heldRepairs records what the history hands to its repairer.
type heldRepairs struct {
	mu   sync.Mutex
	held []*config.ConfigSet
}

func (r *heldRepairs) RestoreLater(prev *config.ConfigSet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = append(r.held, prev)
}

func (r *heldRepairs) get() []*config.ConfigSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*config.ConfigSet(nil), r.held...)
}

// newHistoryStorage returns ConfigSet storage over revisions served from etcd
// without a watch cache, as the server has them, and the history behind it,
// which writes each change and its revision in one etcd transaction.
func newHistoryStorage(t *testing.T, opts history.Options) (ConfigSetStorage, *history.History, *genericregistry.Store) {
	t.Helper()
	return newHistoryStorageOver(t, registrytest.NewRESTOptionsGetter(t, false), opts)
}

func newHistoryStorageOver(t *testing.T, optsGetter generic.RESTOptionsGetter, opts history.Options) (ConfigSetStorage, *history.History, *genericregistry.Store) {
	t.Helper()
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, optsGetter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	if opts.RevisionStorage, err = history.RevisionStorageFrom(optsGetter); err != nil {
		t.Fatal(err)
	}
	hist := registrytest.NewHistory(t, revisions, opts)
	s, err := NewStorage(registrytest.Scheme, hist.ConfigSetStorage(optsGetter), hist, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ConfigSet.Store.DestroyFunc)
	return s, hist, revisions
}

// TestNextChangeHandsAnUnrecordedRevisionToTheRepairer: when the request that
// made a change ended before writing its revision (its deadline passed while
// etcd applied the change later, or its server died), the next change of the
// ConfigSet is the last to know what it held, and hands that state to the
// repairer, which restores it with the reconciler as author.
func TestNextChangeHandsAnUnrecordedRevisionToTheRepairer(t *testing.T) {
	s, hist, revisions := newHistoryStorage(t, history.Options{})
	repairs := &heldRepairs{}
	hist.SetRepairer(repairs)
	ctx := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})

	obj, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := obj.(*config.ConfigSet)
	// Revision 1 lost, as if the create's request had ended before writing it.
	if _, _, err := revisions.Delete(ctx, config.RevisionName("foo", 1), rest.ValidateAllObjectFunc, &metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the index to drop revision 1", func() bool { return !hist.Indexed(history.SubjectOf(cs)) })

	cs.Spec.Data = map[string]string{"LOG_LEVEL": "debug"}
	if _, _, err := s.ConfigSet.Update(ctx, cs.Name, rest.DefaultUpdatedObjectInfo(cs), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	held := repairs.get()
	if len(held) != 1 || held[0].Status.CurrentRevision != 1 || held[0].Spec.Data["LOG_LEVEL"] != "info" || held[0].UID != cs.UID {
		t.Fatalf("handed to the repairer: %+v, want the ConfigSet at revision 1 with LOG_LEVEL=info", held)
	}
	rev2, err := revisions.Get(ctx, config.RevisionName("foo", 2), &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := rev2.(*config.ConfigRevision); r.Data["LOG_LEVEL"] != "debug" || r.Author != "alice" {
		t.Errorf("revision 2: data %v author %q, want LOG_LEVEL=debug by alice", r.Data, r.Author)
	}

	if _, err := hist.Restore(ctx, held[0]); err != nil {
		t.Fatal(err)
	}
	restored, err := revisions.Get(ctx, config.RevisionName("foo", 1), &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := restored.(*config.ConfigRevision); r.Data["LOG_LEVEL"] != "info" || r.Author != history.ReconcilerUser {
		t.Errorf("restored revision 1: data %v author %q, want LOG_LEVEL=info by %s", r.Data, r.Author, history.ReconcilerUser)
	}

	// A change whose previous revision is in place hands nothing over.
	waitFor(t, "the index to hold revision 2", func() bool {
		return hist.Indexed(history.Subject{Namespace: "test", Name: "foo", UID: cs.UID, CurrentRevision: 2})
	})
	cur, err := s.ConfigSet.Get(ctx, "foo", &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs = cur.(*config.ConfigSet)
	cs.Spec.Data["LOG_LEVEL"] = "warn"
	if _, _, err := s.ConfigSet.Update(ctx, cs.Name, rest.DefaultUpdatedObjectInfo(cs), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(repairs.get()); n != 1 {
		t.Errorf("%d states handed to the repairer, want still 1", n)
	}
}

// TestHistoryIsPrunedByBytes: beside the count limit, the revisions a
// ConfigSet keeps hold at most the byte budget of entries; the oldest go
// first, the current one always stays, and the client is told.
func TestHistoryIsPrunedByBytes(t *testing.T) {
	s, hist, revisions := newHistoryStorage(t, history.Options{MaxBytes: 3500})
	ctx := genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test")
	value := func(c byte, n int) string { return strings.Repeat(string(c), n) }

	cs := validConfigSet()
	cs.Spec.RevisionHistoryLimit = 100
	cs.Spec.Data = map[string]string{"blob": value('a', 1000)}
	obj, err := s.ConfigSet.Create(ctx, cs, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs = obj.(*config.ConfigSet)
	var got warnings
	for i, c := range []byte("bcdef") {
		// Each change waits for the index to hold the previous revision, as a
		// client a moment later would find it.
		waitFor(t, "the index to hold the current revision", func() bool { return hist.Indexed(history.SubjectOf(cs)) })
		got = nil
		cs.Spec.Data["blob"] = value(c, 1000)
		out, _, err := s.ConfigSet.Update(warning.WithWarningRecorder(ctx, &got), cs.Name, rest.DefaultUpdatedObjectInfo(cs), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cs = out.(*config.ConfigSet)
		// Each revision holds 1,004 bytes: three fit in 3,500.
		wantWarning := i >= 2
		if warned := len(got) == 1 && strings.Contains(got[0], "pruned to keep its history within 3500 bytes"); warned != wantWarning {
			t.Errorf("change %d: warnings %q, want a byte-pruning warning: %v", i+2, got, wantWarning)
		}
	}
	waitFor(t, "revisions 4 to 6 only", func() bool {
		return fmt.Sprint(revisionNumbers(t, revisions, ctx)) == "[4 5 6]"
	})

	// A revision larger than the budget on its own is still kept, alone.
	waitFor(t, "the index to hold the current revision", func() bool { return hist.Indexed(history.SubjectOf(cs)) })
	cs.Spec.Data = map[string]string{"blob": value('z', 5000)}
	if _, _, err := s.ConfigSet.Update(ctx, cs.Name, rest.DefaultUpdatedObjectInfo(cs), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision 7 only", func() bool {
		return fmt.Sprint(revisionNumbers(t, revisions, ctx)) == "[7]"
	})
}

// TestRevisionIsWrittenWhenTheRequestEnds: once the ConfigSet is stored, the
// client going away or its deadline passing does not stop the request from
// writing the revision with its author.
func TestRevisionIsWrittenWhenTheRequestEnds(t *testing.T) {
	optsGetter := registrytest.NewRESTOptionsGetter(t, false)
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, optsGetter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	ending := &cancelAfterWrite{}
	s, err := NewStorage(registrytest.Scheme, ending.wrap(optsGetter), registrytest.NewHistory(t, revisions, history.Options{}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ConfigSet.Store.DestroyFunc)

	base := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})
	ctx, cancel := context.WithCancel(base)
	ending.cancel = cancel
	if _, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == nil {
		t.Fatal("the request's context did not end after the ConfigSet was stored")
	}
	rev, err := revisions.Get(base, config.RevisionName("foo", 1), &metav1.GetOptions{})
	if err != nil {
		t.Fatalf("revision 1 was not written after the request ended: %v", err)
	}
	if a := rev.(*config.ConfigRevision).Author; a != "alice" {
		t.Errorf("author = %q, want alice", a)
	}
}

// cancelAfterWrite gives ConfigSet storage that ends the request's context
// right after a create is stored, as a client's deadline passing would.
type cancelAfterWrite struct {
	cancel context.CancelFunc
}

func (c *cancelAfterWrite) wrap(g generic.RESTOptionsGetter) generic.RESTOptionsGetter {
	return wrapped{g, func(s storage.Interface) storage.Interface { return cancellingCreate{s, c} }}
}

type cancellingCreate struct {
	storage.Interface
	c *cancelAfterWrite
}

func (s cancellingCreate) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	err := s.Interface.Create(ctx, key, obj, out, ttl)
	if s.c.cancel != nil {
		s.c.cancel()
	}
	return err
}

// TestRollbackWithoutHistory: a server that records no history has no
// revision to restore, and says so with a 404.
func TestRollbackWithoutHistory(t *testing.T) {
	optsGetter := registrytest.NewRESTOptionsGetter(t, false)
	s, err := NewStorage(registrytest.Scheme, optsGetter, history.Disabled{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ConfigSet.Store.DestroyFunc)
	ctx := genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test")
	if _, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Rollback.Create(ctx, "foo", &config.ConfigSetRollback{Revision: 1}, nil, &metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("rollback without history: %v, want NotFound", err)
	}
}

func revisionNumbers(t *testing.T, revisions *genericregistry.Store, ctx context.Context) []int64 {
	t.Helper()
	obj, err := revisions.List(ctx, &metainternalversion.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, r := range obj.(*config.ConfigRevisionList).Items {
		out = append(out, r.Revision)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
