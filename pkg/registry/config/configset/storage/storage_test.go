package storage

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	genericregistrytest "k8s.io/apiserver/pkg/registry/generic/testing"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	configrevisionstorage "capstan.dev/capstan/pkg/registry/config/configrevision/storage"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

func newStorage(t *testing.T, cached bool) ConfigSetStorage {
	t.Helper()
	optsGetter := registrytest.NewRESTOptionsGetter(t, cached)
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, optsGetter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	s, err := NewStorage(registrytest.Scheme, optsGetter, registrytest.NewHistory(t, revisions, history.Options{}), Options{})
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
