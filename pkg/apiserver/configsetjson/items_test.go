package configsetjson

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
	"capstan.dev/capstan/test/utils/configsets"
)

func encodeList(t testing.TB, enc *encoder, l *v1beta1.ConfigSetList) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := enc.Encode(l, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestItemCacheKnowsVersions: a list's item is taken from the cache only while
// its namespace, name, uid, resourceVersion, kind and apiVersion are those
// it was kept with; anything else is encoded afresh, and items without a
// resourceVersion or uid are not kept.
func TestItemCacheKnowsVersions(t *testing.T) {
	enc := newEncoder(jsonSerializer(), itemcache.New("json", itemcache.DefaultBudget))
	l := configsets.BenchList(3)
	encodeList(t, enc, l)
	if n, _ := enc.items.Size(); n != 3 {
		t.Fatalf("kept %d items, want 3", n)
	}

	// Changed in memory under the same identity, an item is the kept one:
	// this is what shows the cache is read.
	kept := stdJSON(t, l)
	l.Items[0].Spec.Data["setting.000"] = "changed in place"
	if got := encodeList(t, enc, l); !bytes.Equal(got, kept) {
		t.Fatalf("same identity: encoded afresh, want the kept bytes")
	}

	for name, change := range map[string]func(*v1beta1.ConfigSet){
		"resourceVersion": func(cs *v1beta1.ConfigSet) { cs.ResourceVersion = "123999" },
		"uid":             func(cs *v1beta1.ConfigSet) { cs.UID = types.UID("5f3c9a10-0000-4000-8000-00000000ffff") },
		"namespace":       func(cs *v1beta1.ConfigSet) { cs.Namespace = "bench-2" },
		"name":            func(cs *v1beta1.ConfigSet) { cs.Name = "other" },
		"kind":            func(cs *v1beta1.ConfigSet) { cs.Kind = "" },
		"apiVersion":      func(cs *v1beta1.ConfigSet) { cs.APIVersion = "" },
	} {
		l := configsets.BenchList(3)
		encodeList(t, enc, l)
		change(&l.Items[1])
		l.Items[1].Spec.Data["setting.000"] = "new value of " + name
		if got, want := encodeList(t, enc, l), stdJSON(t, l); !bytes.Equal(got, want) {
			t.Errorf("another %s: got %.200s, want %.200s", name, got, want)
		}
	}

	for name, change := range map[string]func(*v1beta1.ConfigSet){
		"no resourceVersion": func(cs *v1beta1.ConfigSet) { cs.ResourceVersion = "" },
		"no uid":             func(cs *v1beta1.ConfigSet) { cs.UID = "" },
	} {
		enc := newEncoder(jsonSerializer(), itemcache.New("json", itemcache.DefaultBudget))
		l := configsets.BenchList(2)
		change(&l.Items[0])
		encodeList(t, enc, l)
		if n, _ := enc.items.Size(); n != 1 {
			t.Errorf("%s: kept %d items, want only the other one", name, n)
		}
		l.Items[0].Spec.Data["setting.000"] = "changed in place"
		if got, want := encodeList(t, enc, l), stdJSON(t, l); !bytes.Equal(got, want) {
			t.Errorf("%s: got %.200s, want %.200s", name, got, want)
		}
	}
}

// TestItemCacheConcurrentLists: lists encoded at once, of the same items,
// each get the bytes encoding/json writes (run with -race).
func TestItemCacheConcurrentLists(t *testing.T) {
	enc := newEncoder(jsonSerializer(), itemcache.New("json", 40*1024))
	lists := []*v1beta1.ConfigSetList{configsets.BenchList(50), configsets.BenchList(80)}
	lists[1].Items[3].ResourceVersion = "200000"
	lists[1].Items[3].Spec.Data["setting.001"] = "a later version"
	want := [][]byte{stdJSON(t, lists[0]), stdJSON(t, lists[1])}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				var buf bytes.Buffer
				if err := enc.Encode(lists[g%2], &buf); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf.Bytes(), want[g%2]) {
					errs <- fmt.Errorf("list %d: got other bytes", g%2)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
