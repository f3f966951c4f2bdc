package configsetjson

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-base/metrics/testutil"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

func encodeList(t testing.TB, enc *encoder, l *v1beta1.ConfigSetList) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := enc.Encode(l, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestItemCacheKnowsVersions: an item is taken from the cache only while
// its namespace, name, uid, resourceVersion, kind and apiVersion are those
// it was kept with; anything else is encoded afresh, and items without a
// resourceVersion or uid are not kept.
func TestItemCacheKnowsVersions(t *testing.T) {
	enc := newEncoder(jsonSerializer(), newItemCache(defaultItemCacheBudget))
	l := benchList(3)
	encodeList(t, enc, l)
	if n, _ := enc.items.size(); n != 3 {
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
		l := benchList(3)
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
		enc := newEncoder(jsonSerializer(), newItemCache(defaultItemCacheBudget))
		l := benchList(2)
		change(&l.Items[0])
		encodeList(t, enc, l)
		if n, _ := enc.items.size(); n != 1 {
			t.Errorf("%s: kept %d items, want only the other one", name, n)
		}
		l.Items[0].Spec.Data["setting.000"] = "changed in place"
		if got, want := encodeList(t, enc, l), stdJSON(t, l); !bytes.Equal(got, want) {
			t.Errorf("%s: got %.200s, want %.200s", name, got, want)
		}
	}
}

// TestItemCacheBudget: the cache holds at most two generations of its
// budget, keeps what lists still ask for, and lets the rest go.
func TestItemCacheBudget(t *testing.T) {
	l := benchList(100)
	one := len(bytes.TrimSuffix(stdJSON(t, &l.Items[0]), []byte("\n")))
	budget := 30*one + one/2 // 30 items a generation
	enc := newEncoder(jsonSerializer(), newItemCache(budget))
	for range 3 {
		if got, want := encodeList(t, enc, l), stdJSON(t, l); !bytes.Equal(got, want) {
			t.Fatalf("got %.200s, want %.200s", got, want)
		}
		if _, b := enc.items.size(); b > 2*budget {
			t.Fatalf("holds %d bytes, want at most %d", b, 2*budget)
		}
	}

	// A list of 20 that fits a generation: asked for again and again while
	// other lists come and go, its items stay.
	small := benchList(20)
	for i := range small.Items {
		small.Items[i].Namespace = "small"
	}
	encodeList(t, enc, small)
	for round := range 10 {
		other := benchList(12)
		for i := range other.Items {
			other.Items[i].Namespace = fmt.Sprintf("other-%d", round)
		}
		encodeList(t, enc, other)
		encodeList(t, enc, small)
	}
	for i := range small.Items {
		if _, ok := enc.items.get(&small.Items[i]); !ok {
			t.Errorf("item %d of the list asked for every round is gone", i)
		}
	}
	if _, ok := enc.items.get(&benchList(1).Items[0]); ok {
		t.Error("an item not asked for since the first lists is still kept")
	}

	huge := newEncoder(jsonSerializer(), newItemCache(one-1))
	encodeList(t, huge, benchList(2))
	if n, _ := huge.items.size(); n != 0 {
		t.Errorf("kept %d items larger than the budget", n)
	}
}

// TestItemCacheConcurrentLists: lists encoded at once, of the same items,
// each get the bytes encoding/json writes (run with -race).
func TestItemCacheConcurrentLists(t *testing.T) {
	enc := newEncoder(jsonSerializer(), newItemCache(40*1024))
	lists := []*v1beta1.ConfigSetList{benchList(50), benchList(80)}
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

// TestItemCacheMetrics: lists count their items as hits or misses, and the
// bytes gauge follows what the cache holds as generations turn over.
func TestItemCacheMetrics(t *testing.T) {
	registerMetrics()
	value := func(result string) float64 {
		t.Helper()
		v, err := testutil.GetCounterMetricValue(itemLookups.WithLabelValues(result))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	held := func(c *itemCache) float64 {
		t.Helper()
		v, err := testutil.GetGaugeMetricValue(itemBytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, b := c.size(); float64(b) != v {
			t.Fatalf("capstan_list_item_cache_bytes is %v, the cache holds %d bytes", v, b)
		}
		return v
	}

	l := benchList(10)
	one := len(bytes.TrimSuffix(stdJSON(t, &l.Items[0]), []byte("\n")))
	enc := newEncoder(jsonSerializer(), newItemCache(6*one+one/2)) // 6 items a generation
	hits, misses := value("hit"), value("miss")

	encodeList(t, enc, benchList(4))
	if got := value("miss") - misses; got != 4 {
		t.Errorf("first list of 4: %v misses counted, want 4", got)
	}
	if held(enc.items) == 0 {
		t.Error("nothing held after a first list")
	}
	encodeList(t, enc, benchList(4))
	if got := value("hit") - hits; got != 4 {
		t.Errorf("second list of the same 4: %v hits counted, want 4", got)
	}
	// Ten items: the generation of six turns over, then the items of the
	// previous generation move to the current one as lists find them.
	for range 3 {
		encodeList(t, enc, l)
		held(enc.items)
	}
	if got := value("hit") + value("miss") - hits - misses; got != 38 {
		t.Errorf("%v lookups counted for 38 items listed", got)
	}
}
