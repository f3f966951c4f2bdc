package storage

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	genericregistrytest "k8s.io/apiserver/pkg/registry/generic/testing"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

func newStore(t *testing.T, cached bool) *genericregistry.Store {
	t.Helper()
	s, err := NewStore(registrytest.Scheme, registrytest.NewRESTOptionsGetter(t, cached))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DestroyFunc)
	registrytest.WaitReady(t, s)
	return s
}

func validRevision() *config.ConfigRevision {
	return &config.ConfigRevision{
		ObjectMeta:    metav1.ObjectMeta{Name: "foo", Namespace: "test", Labels: map[string]string{"app": "foo"}},
		ConfigSetName: "foo",
		Revision:      1,
		Data:          map[string]string{"LOG_LEVEL": "info"},
		SecretData:    map[string][]byte{"TOKEN": []byte("s3cr3t")},
		Author:        "alice",
		ChangeCause:   "initial",
	}
}

func forEachStore(t *testing.T, f func(t *testing.T, s *genericregistry.Store)) {
	for _, cached := range []bool{false, true} {
		name := "etcd"
		if cached {
			name = "cacher"
		}
		t.Run(name, func(t *testing.T) { f(t, newStore(t, cached)) })
	}
}

func TestCreate(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		test := genericregistrytest.New(t, s)
		zeroRevision := validRevision()
		zeroRevision.Revision = 0
		badKey := validRevision()
		badKey.Data = map[string]string{"not a key": "x"}
		noConfigSet := validRevision()
		noConfigSet.ConfigSetName = ""
		badConfigSet := validRevision()
		badConfigSet.ConfigSetName = "Not_A_Name"
		duplicate := validRevision()
		duplicate.SecretData = map[string][]byte{"LOG_LEVEL": []byte("x")}
		negativeRollback := validRevision()
		negativeRollback.RollbackOf = -1
		test.TestCreate(validRevision(), zeroRevision, badKey, noConfigSet, badConfigSet, duplicate, negativeRollback)
	})
}

func TestUpdate(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		test := genericregistrytest.New(t, s)
		test.TestUpdate(validRevision(),
			func(obj runtime.Object) runtime.Object {
				rev := obj.(*config.ConfigRevision)
				rev.Labels["tier"] = "backend"
				return rev
			},
			func(obj runtime.Object) runtime.Object {
				rev := obj.(*config.ConfigRevision)
				rev.Labels["app"] = "not a valid label value!"
				return rev
			},
		)
	})
}

// TestUpdateValidatesMetadata sends an invalid update that carries its
// resourceVersion. The Tester's own invalid updates carry none, which a store
// that refuses unconditional updates rejects as Invalid before validation runs.
func TestUpdateValidatesMetadata(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		ctx := genericregistrytest.NewNamespaceScopeContext(s, "test")
		created, err := s.Create(ctx, validRevision(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		update := created.(*config.ConfigRevision).DeepCopy()
		update.Labels["app"] = "not a valid label value!"
		_, _, err = s.Update(ctx, update.Name, rest.DefaultUpdatedObjectInfo(update), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("got %v, want Invalid", err)
		}
		causes := err.(apierrors.APIStatus).Status().Details.Causes
		if len(causes) == 0 || causes[0].Field != "metadata.labels" {
			t.Errorf("causes = %+v, want one on metadata.labels", causes)
		}

		unconditional := created.(*config.ConfigRevision).DeepCopy()
		unconditional.ResourceVersion = ""
		unconditional.Labels["tier"] = "backend"
		_, _, err = s.Update(ctx, unconditional.Name, rest.DefaultUpdatedObjectInfo(unconditional), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("update without resourceVersion: got %v, want Invalid", err)
		}
	})
}

// TestUpdateKeepsContent checks that the server's own metadata updates (the
// store is not reachable by users for update) cannot rewrite history.
func TestUpdateKeepsContent(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		ctx := genericregistrytest.NewNamespaceScopeContext(s, "test")
		created, err := s.Create(ctx, validRevision(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		update := created.(*config.ConfigRevision).DeepCopy()
		update.Finalizers = []string{"capstan.dev/keep"}
		update.Data = map[string]string{"LOG_LEVEL": "debug"}
		update.SecretData = nil
		update.Revision = 0 // would be invalid if it were kept
		update.Author = "mallory"
		update.ChangeCause = "forged"
		update.RollbackOf = 7
		got, _, err := s.Update(ctx, update.Name, rest.DefaultUpdatedObjectInfo(update), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rev := got.(*config.ConfigRevision)
		want := validRevision()
		if rev.ConfigSetName != want.ConfigSetName || rev.Revision != want.Revision || rev.Author != want.Author ||
			rev.ChangeCause != want.ChangeCause || rev.RollbackOf != want.RollbackOf ||
			rev.Data["LOG_LEVEL"] != "info" || string(rev.SecretData["TOKEN"]) != "s3cr3t" {
			t.Errorf("update rewrote the revision: %+v", rev)
		}
		if len(rev.Finalizers) != 1 || rev.Generation != 1 {
			t.Errorf("finalizers = %v, generation = %d; want the finalizer and generation 1", rev.Finalizers, rev.Generation)
		}

		// Let the object go: the finalizer would keep it around.
		rev.Finalizers = nil
		if _, _, err := s.Update(ctx, rev.Name, rest.DefaultUpdatedObjectInfo(rev), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDelete(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		genericregistrytest.New(t, s).ReturnDeletedObject().TestDelete(validRevision())
	})
}

func TestGet(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		genericregistrytest.New(t, s).TestGet(validRevision())
	})
}

func TestList(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		genericregistrytest.New(t, s).TestList(validRevision())
	})
}

func TestWatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *genericregistry.Store) {
		genericregistrytest.New(t, s).TestWatch(
			validRevision(),
			[]labels.Set{{"app": "foo"}},
			[]labels.Set{{"app": "bar"}},
			[]fields.Set{
				{"metadata.name": "foo"},
				{config.ConfigRevisionConfigSetNameField: "foo"},
				{config.ConfigRevisionRevisionField: "1"},
				{config.ConfigRevisionConfigSetNameField: "foo", config.ConfigRevisionRevisionField: "1"},
			},
			[]fields.Set{
				{"metadata.name": "bar"},
				{config.ConfigRevisionConfigSetNameField: "bar"},
				{config.ConfigRevisionRevisionField: "2"},
				{config.ConfigRevisionConfigSetNameField: "foo", config.ConfigRevisionRevisionField: "2"},
			},
		)
	})
}

func TestRESTVerbs(t *testing.T) {
	var storage rest.Storage = NewREST(newStore(t, false))
	for name, ok := range map[string]bool{
		"rest.Creater":      implements[rest.Creater](storage),
		"rest.NamedCreater": implements[rest.NamedCreater](storage),
	} {
		if ok {
			t.Errorf("REST implements %s: users must not write revisions", name)
		}
	}
	for name, ok := range map[string]bool{
		// Update (and so patch) only rewrites a revision unchanged, for
		// re-encryption; test/integration covers what it refuses.
		"rest.Updater":              implements[rest.Updater](storage),
		"rest.Patcher":              implements[rest.Patcher](storage),
		"rest.Scoper":               implements[rest.Scoper](storage),
		"rest.Getter":               implements[rest.Getter](storage),
		"rest.Lister":               implements[rest.Lister](storage),
		"rest.Watcher":              implements[rest.Watcher](storage),
		"rest.GracefulDeleter":      implements[rest.GracefulDeleter](storage),
		"rest.CollectionDeleter":    implements[rest.CollectionDeleter](storage),
		"rest.TableConvertor":       implements[rest.TableConvertor](storage),
		"rest.SingularNameProvider": implements[rest.SingularNameProvider](storage),
		"rest.ShortNamesProvider":   implements[rest.ShortNamesProvider](storage),
		"rest.CategoriesProvider":   implements[rest.CategoriesProvider](storage),
	} {
		if !ok {
			t.Errorf("REST does not implement %s", name)
		}
	}
	if !storage.(rest.Scoper).NamespaceScoped() {
		t.Error("ConfigRevisions must be namespaced")
	}
	if got := storage.(rest.ShortNamesProvider).ShortNames(); len(got) != 1 || got[0] != "cfgrev" {
		t.Errorf("short names = %v, want [cfgrev]", got)
	}
	if got := storage.(rest.CategoriesProvider).Categories(); len(got) != 1 || got[0] != "capstan" {
		t.Errorf("categories = %v, want [capstan]", got)
	}
}

func implements[I any](obj any) bool {
	_, ok := obj.(I)
	return ok
}

// TestRESTReadsAndDeletes checks that the user-facing endpoint serves what the
// server's store wrote.
func TestRESTReadsAndDeletes(t *testing.T) {
	store := newStore(t, false)
	r := NewREST(store)
	ctx := genericregistrytest.NewNamespaceScopeContext(store, "test")
	if _, err := store.Create(ctx, validRevision(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, "foo", &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rev := got.(*config.ConfigRevision); rev.ConfigSetName != "foo" || rev.Revision != 1 {
		t.Errorf("get = %+v", rev)
	}
	if _, _, err := r.Delete(ctx, "foo", rest.ValidateAllObjectFunc, &metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "foo", &metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: got %v, want NotFound", err)
	}
}
