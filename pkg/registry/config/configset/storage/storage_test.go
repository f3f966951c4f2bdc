package storage

import (
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistrytest "k8s.io/apiserver/pkg/registry/generic/testing"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	configrevisionstorage "capstan.dev/capstan/pkg/registry/config/configrevision/storage"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

func newStorage(t *testing.T, cached bool) ConfigSetStorage {
	t.Helper()
	return newStorageWith(t, registrytest.NewRESTOptionsGetter(t, cached), Options{})
}

func newStorageWith(t *testing.T, optsGetter generic.RESTOptionsGetter, opts Options) ConfigSetStorage {
	t.Helper()
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, optsGetter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	s, err := NewStorage(registrytest.Scheme, optsGetter, registrytest.NewHistory(t, revisions, history.Options{}), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ConfigSet.Store.DestroyFunc)
	registrytest.WaitReady(t, s.ConfigSet.Store)
	return s
}

func validConfigSet() *config.ConfigSet {
	return &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: "test", Labels: map[string]string{"app": "foo"}},
		Spec: config.ConfigSetSpec{
			Data:                 map[string]string{"LOG_LEVEL": "info"},
			SecretData:           map[string][]byte{"TOKEN": []byte("s3cr3t")},
			RevisionHistoryLimit: 10,
		},
	}
}

func forEachStorage(t *testing.T, f func(t *testing.T, s ConfigSetStorage)) {
	for _, cached := range []bool{false, true} {
		name := "etcd"
		if cached {
			name = "cacher"
		}
		t.Run(name, func(t *testing.T) { f(t, newStorage(t, cached)) })
	}
}

func TestCreate(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		test := genericregistrytest.New(t, s.ConfigSet.Store)
		invalidKey := validConfigSet()
		invalidKey.Spec.Data = map[string]string{"not a key": "x"}
		duplicate := validConfigSet()
		duplicate.Spec.SecretData = map[string][]byte{"LOG_LEVEL": []byte("x")}
		badLimit := validConfigSet()
		badLimit.Spec.RevisionHistoryLimit = 0
		test.TestCreate(validConfigSet(), invalidKey, duplicate, badLimit)
	})
}

func TestUpdate(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		test := genericregistrytest.New(t, s.ConfigSet.Store)
		test.TestUpdate(validConfigSet(),
			func(obj runtime.Object) runtime.Object {
				cs := obj.(*config.ConfigSet)
				cs.Spec.Data["LOG_LEVEL"] = "debug"
				return cs
			},
			func(obj runtime.Object) runtime.Object {
				cs := obj.(*config.ConfigSet)
				cs.Spec.Data["bad key"] = "x"
				return cs
			},
			func(obj runtime.Object) runtime.Object {
				cs := obj.(*config.ConfigSet)
				cs.Spec.RevisionHistoryLimit = 1001
				return cs
			},
		)
	})
}

func TestDelete(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		genericregistrytest.New(t, s.ConfigSet.Store).ReturnDeletedObject().TestDelete(validConfigSet())
	})
}

// TestDeletedIsTold: Options.Deleted hears of each ConfigSet removed by a
// delete or a collection delete, and not of dry runs or of a ConfigSet a
// finalizer keeps (its own or one foreground deletion adds) until the last
// finalizer goes. The history is told on the same path, and deletes the
// revisions of those it hears of.
func TestDeletedIsTold(t *testing.T) {
	var told []string
	s := newStorageWith(t, collectingGarbage{registrytest.NewRESTOptionsGetter(t, true)}, Options{Deleted: func(cs *config.ConfigSet) { told = append(told, cs.Name+"/"+string(cs.UID)) }})
	ctx := genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test")
	uids := map[string]string{}
	for _, name := range []string{"a", "b", "held", "d"} {
		cs := validConfigSet()
		cs.Name = name
		if name == "held" {
			cs.Finalizers = []string{"example.com/hold"}
		}
		created, err := s.ConfigSet.Create(ctx, cs, nil, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[name] = string(created.(*config.ConfigSet).UID)
	}
	dryRun := &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	if _, _, err := s.ConfigSet.Delete(ctx, "a", rest.ValidateAllObjectFunc, dryRun); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConfigSet.DeleteCollection(ctx, rest.ValidateAllObjectFunc, dryRun, &metainternalversion.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(told) != 0 {
		t.Fatalf("dry runs told of %v", told)
	}
	if _, _, err := s.ConfigSet.Delete(ctx, "a", rest.ValidateAllObjectFunc, &metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConfigSet.DeleteCollection(ctx, rest.ValidateAllObjectFunc, &metav1.DeleteOptions{}, &metainternalversion.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(told)
	want := []string{"a/" + uids["a"], "b/" + uids["b"], "d/" + uids["d"]}
	if !slices.Equal(told, want) {
		t.Errorf("told of %v, want %v (not of held, which its finalizer keeps)", told, want)
	}

	// Foreground deletion adds a finalizer: the ConfigSet stays until the
	// garbage collector has deleted its dependents.
	told = nil
	fg := validConfigSet()
	fg.Name = "foreground"
	if _, err := s.ConfigSet.Create(ctx, fg, nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	foreground := metav1.DeletePropagationForeground
	if _, err := s.ConfigSet.DeleteCollection(ctx, rest.ValidateAllObjectFunc, &metav1.DeleteOptions{PropagationPolicy: &foreground}, &metainternalversion.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(told) != 0 {
		t.Errorf("a foreground collection delete told of %v, which their finalizers keep", told)
	}

	// Removing the last finalizer of a deleting ConfigSet removes it.
	got, err := s.ConfigSet.Get(ctx, "held", &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held := got.(*config.ConfigSet).DeepCopy()
	held.Finalizers = nil
	if _, _, err := s.ConfigSet.Update(ctx, "held", rest.DefaultUpdatedObjectInfo(held), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"held/" + uids["held"]}; !slices.Equal(told, want) {
		t.Errorf("removing held's finalizer told of %v, want %v", told, want)
	}
}

// collectingGarbage gives stores that honour propagation policies, as a
// server's do.
type collectingGarbage struct {
	generic.RESTOptionsGetter
}

func (g collectingGarbage) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	opts.EnableGarbageCollection = true
	return opts, err
}

func TestGet(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		genericregistrytest.New(t, s.ConfigSet.Store).TestGet(validConfigSet())
	})
}

func TestList(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		genericregistrytest.New(t, s.ConfigSet.Store).TestList(validConfigSet())
	})
}

func TestWatch(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		genericregistrytest.New(t, s.ConfigSet.Store).TestWatch(
			validConfigSet(),
			[]labels.Set{{"app": "foo"}},
			[]labels.Set{{"app": "bar"}},
			[]fields.Set{
				{"metadata.name": "foo"},
				{config.ConfigSetImmutableField: "false"},
			},
			[]fields.Set{
				{"metadata.name": "bar"},
				{config.ConfigSetImmutableField: "true"},
			},
		)
	})
}

func TestStatusUpdateKeepsSpec(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		ctx := genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test")
		created, err := s.ConfigSet.Create(ctx, validConfigSet(), nil, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		update := created.(*config.ConfigSet).DeepCopy()
		update.Spec.Data["LOG_LEVEL"] = "changed-through-status"
		update.Status.Conditions = []metav1.Condition{{Type: "Applied", Status: metav1.ConditionTrue, Reason: "Rolled", Message: "revision 1 applied", LastTransitionTime: metav1.Now()}}
		got, _, err := s.Status.Update(ctx, update.Name, rest.DefaultUpdatedObjectInfo(update), nil, nil, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cs := got.(*config.ConfigSet)
		if cs.Spec.Data["LOG_LEVEL"] != "info" {
			t.Errorf("status update changed spec: %v", cs.Spec.Data)
		}
		if len(cs.Status.Conditions) != 1 || cs.Status.Conditions[0].Reason != "Rolled" {
			t.Errorf("status update lost the conditions: %+v", cs.Status.Conditions)
		}
		if cs.Status.CurrentRevision != 1 {
			t.Errorf("currentRevision = %d, want 1", cs.Status.CurrentRevision)
		}

		// /status never creates.
		missing := validConfigSet()
		missing.Name = "missing"
		if _, _, err := s.Status.Update(ctx, missing.Name, rest.DefaultUpdatedObjectInfo(missing), rest.ValidateAllObjectFunc, nil, true, &metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("status update of a missing object: got %v, want NotFound", err)
		}
	})
}

func TestShortNamesAndCategories(t *testing.T) {
	s := newStorage(t, false)
	if got := s.ConfigSet.ShortNames(); len(got) != 1 || got[0] != "cfgs" {
		t.Errorf("short names = %v", got)
	}
	if got := s.ConfigSet.Categories(); len(got) != 1 || got[0] != "capstan" {
		t.Errorf("categories = %v", got)
	}
}
