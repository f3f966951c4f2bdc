package storage

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
)

// Every version of a ConfigSet read from storage, and so every version its
// watch cache keeps, shares one copy of a large value that did not change.
func TestVersionsShareLargeValues(t *testing.T) {
	forEachStorage(t, func(t *testing.T, s ConfigSetStorage) {
		ctx := genericapirequest.WithNamespace(genericapirequest.NewContext(), "test")
		cs := validConfigSet()
		cs.Spec.Data["BIG"] = strings.Repeat("b", 8<<10)
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
			if unsafe.StringData(v.Spec.Data["BIG"]) != unsafe.StringData(versions[0].Spec.Data["BIG"]) {
				t.Errorf("version %d holds a copy of its own of the unchanged data value", i+1)
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
