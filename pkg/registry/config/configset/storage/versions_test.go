package storage

import (
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
)

// keyOf returns m's own copy of the key k.
func keyOf(m map[string]string, k string) string {
	for key := range m {
		if key == k {
			return key
		}
	}
	return ""
}

// Every version of a ConfigSet read from storage, and so every version its
// watch cache keeps, shares one copy of each key and value that did not
// change, large or small.
func TestVersionsShareUnchangedValues(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		ctx := genericapirequest.WithNamespace(genericapirequest.NewContext(), "test")
		cs := validConfigSet()
		cs.Spec.Data["BIG"] = strings.Repeat("b", 8<<10)
		cs.Spec.Data["REGION"] = "eu-west-1"
		cs.Spec.SecretData["BIG_SECRET"] = []byte(strings.Repeat("s", 8<<10))
		created, err := s.ConfigSet.Create(ctx, cs, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := s.ConfigSet.Watch(ctx, &metainternalversion.ListOptions{ResourceVersion: created.(*config.ConfigSet).ResourceVersion})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()

		for _, level := range []string{"debug", "warn", "error"} {
			obj, err := s.ConfigSet.Get(ctx, "foo", &metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			next := obj.(*config.ConfigSet).DeepCopy()
			next.Spec.Data["LOG_LEVEL"] = level
			if _, _, err := s.ConfigSet.Update(ctx, "foo", rest.DefaultUpdatedObjectInfo(next), rest.ValidateAllObjectFunc, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}

		var versions []*config.ConfigSet
		secretsCopied := false
		timeout := time.After(wait.ForeverTestTimeout)
		for len(versions) < 3 {
			select {
			case ev := <-w.ResultChan():
				if ev.Type != watch.Modified {
					t.Fatalf("event %s %v", ev.Type, ev.Object)
				}
				obj, cached := ev.Object.(runtime.CacheableObject)
				if cached {
					// A deep copy: its strings still point where the
					// cache's do, its byte slices do not.
					versions = append(versions, obj.GetObject().(*config.ConfigSet))
					secretsCopied = true
					continue
				}
				versions = append(versions, ev.Object.(*config.ConfigSet))
			case <-timeout:
				t.Fatalf("saw %d of 3 updates", len(versions))
			}
		}
		for i, v := range versions[1:] {
			if v.Spec.Data["LOG_LEVEL"] == versions[0].Spec.Data["LOG_LEVEL"] {
				t.Fatalf("version %d did not change LOG_LEVEL", i+1)
			}
			if unsafe.StringData(v.Labels["app"]) != unsafe.StringData(versions[0].Labels["app"]) {
				t.Errorf("version %d holds a copy of its own of the unchanged label", i+1)
			}
			if unsafe.StringData(v.Name) != unsafe.StringData(versions[0].Name) {
				t.Errorf("version %d holds a copy of its own of its name", i+1)
			}
			for _, k := range []string{"BIG", "REGION"} {
				if unsafe.StringData(v.Spec.Data[k]) != unsafe.StringData(versions[0].Spec.Data[k]) {
					t.Errorf("version %d holds a copy of its own of the unchanged value of %s", i+1, k)
				}
				if unsafe.StringData(keyOf(v.Spec.Data, k)) != unsafe.StringData(keyOf(versions[0].Spec.Data, k)) {
					t.Errorf("version %d holds a copy of its own of the key %s", i+1, k)
				}
			}
			if !secretsCopied && unsafe.SliceData(v.Spec.SecretData["BIG_SECRET"]) != unsafe.SliceData(versions[0].Spec.SecretData["BIG_SECRET"]) {
				t.Errorf("version %d holds a copy of its own of the unchanged secret value", i+1)
			}
		}
		if got := versions[2].Spec.Data["BIG"]; got != cs.Spec.Data["BIG"] {
			t.Error("the shared value differs from the one written")
		}
	})
}

func TestShareMapKeepsWhatChanged(t *testing.T) {
	prev := map[string]string{"same": strings.Clone("value"), "changed": "old", "removed": "x"}
	cur := map[string]string{"same": strings.Clone("value"), "changed": "new", "added": "y"}
	got := shareMap(prev, cur, func(a, b string) bool { return a == b })
	want := map[string]string{"same": "value", "changed": "new", "added": "y"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if unsafe.StringData(got["same"]) != unsafe.StringData(prev["same"]) {
		t.Error("the unchanged value is not shared")
	}
}

// The table must not keep versions alive: once nothing refers to a version,
// the garbage collector frees it and the table forgets it.
func TestVersionTableForgetsFreedVersions(t *testing.T) {
	table := newVersionTable()
	for i := range 50 {
		cs := validConfigSet()
		cs.UID = types.UID(fmt.Sprintf("uid-%d", i))
		table.share(cs)
	}
	kept := validConfigSet()
	kept.UID = "kept"
	table.share(kept)
	deadline := time.Now().Add(wait.ForeverTestTimeout)
	for table.len() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the table still holds %d versions after they were dropped", table.len())
		}
		goruntime.GC()
		time.Sleep(time.Millisecond)
	}
	next := validConfigSet()
	next.UID = "kept"
	next.Spec.Data["LOG_LEVEL"] = strings.Clone(kept.Spec.Data["LOG_LEVEL"])
	table.share(next)
	if unsafe.StringData(next.Spec.Data["LOG_LEVEL"]) != unsafe.StringData(kept.Spec.Data["LOG_LEVEL"]) {
		t.Error("a version still referred to was forgotten")
	}
	goruntime.KeepAlive(kept)
}

// A large value is shared even when the version decoded just before was a
// request's and has been freed: the watch cache's versions must not each get
// a copy of their own then.
func TestLargeValuesShareAfterTheVersionBeforeWasFreed(t *testing.T) {
	table := newVersionTable()
	decode := func() *config.ConfigSet {
		cs := validConfigSet()
		cs.UID = "u"
		cs.Spec.Data["BIG"] = strings.Repeat("b", 4<<10)
		internLargeValues(&cs.Spec)
		table.share(cs)
		return cs
	}
	cached := decode()
	func() { _ = decode() }()
	deadline := time.Now().Add(wait.ForeverTestTimeout)
	for table.remembered("u") > 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request's version was not freed")
		}
		goruntime.GC()
		time.Sleep(time.Millisecond)
	}
	next := decode()
	if unsafe.StringData(next.Spec.Data["BIG"]) != unsafe.StringData(cached.Spec.Data["BIG"]) {
		t.Error("the new version holds a copy of its own of the large value")
	}
	goruntime.KeepAlive(cached)
}
