package itemcache

import (
	"bytes"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-base/metrics/testutil"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// configSet is a stored ConfigSet's identity; size bytes stand for its
// encoding.
func configSet(ns string, i int) *v1beta1.ConfigSet {
	return &v1beta1.ConfigSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "config.capstan.dev/v1beta1", Kind: "ConfigSet"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cs-%03d", i),
			UID: "5f3c9a10-0000-4000-8000-000000000001", ResourceVersion: "123456"},
	}
}

const size = 100

func encoding(cs *v1beta1.ConfigSet) []byte {
	return bytes.Repeat([]byte(cs.Namespace+"/"+cs.Name+"@"+cs.ResourceVersion+" "), size)[:size]
}

// list looks up n items of namespace ns as an encoder does: a hit is used,
// a miss is put.
func list(c *Cache, ns string, n int) (hits, misses int) {
	for i := range n {
		cs := configSet(ns, i)
		if got, ok := c.Get(cs); ok {
			if !bytes.Equal(got, encoding(cs)) {
				panic(fmt.Sprintf("%s/%s: got another item's bytes", ns, cs.Name))
			}
			hits++
			continue
		}
		misses++
		c.Put(cs, encoding(cs))
	}
	c.Record(hits, misses)
	return hits, misses
}

// TestIdentity: an item is found only under the namespace, name, uid,
// resourceVersion, kind and apiVersion it was put with, and items without a
// resourceVersion or uid are not kept.
func TestIdentity(t *testing.T) {
	c := New("test", DefaultBudget)
	c.Put(configSet("a", 1), encoding(configSet("a", 1)))
	if _, ok := c.Get(configSet("a", 1)); !ok {
		t.Fatal("the item put is not found")
	}
	for name, change := range map[string]func(*v1beta1.ConfigSet){
		"namespace":       func(cs *v1beta1.ConfigSet) { cs.Namespace = "b" },
		"name":            func(cs *v1beta1.ConfigSet) { cs.Name = "other" },
		"uid":             func(cs *v1beta1.ConfigSet) { cs.UID = "5f3c9a10-0000-4000-8000-00000000ffff" },
		"resourceVersion": func(cs *v1beta1.ConfigSet) { cs.ResourceVersion = "123999" },
		"kind":            func(cs *v1beta1.ConfigSet) { cs.Kind = "" },
		"apiVersion":      func(cs *v1beta1.ConfigSet) { cs.APIVersion = "config.capstan.dev/v1alpha1" },
	} {
		cs := configSet("a", 1)
		change(cs)
		if _, ok := c.Get(cs); ok {
			t.Errorf("another %s: found the item put", name)
		}
	}
	for name, change := range map[string]func(*v1beta1.ConfigSet){
		"no resourceVersion": func(cs *v1beta1.ConfigSet) { cs.ResourceVersion = "" },
		"no uid":             func(cs *v1beta1.ConfigSet) { cs.UID = "" },
	} {
		cs := configSet("c", 1)
		change(cs)
		c.Put(cs, encoding(cs))
		if _, ok := c.Get(cs); ok {
			t.Errorf("%s: kept", name)
		}
	}
	if n, b := c.Size(); n != 1 || b != size {
		t.Errorf("holds %d items of %d bytes, want the one put", n, b)
	}
}

// TestBudget: the cache never holds more than its budget; a working set
// within it is kept whole after one list; a larger one (half again as
// large), listed over and over, still finds items each time (a least-recently-used cache would find
// none); a new version replaces the old one.
func TestBudget(t *testing.T) {
	budget := 30*size + size/2 // 30 items
	c := New("test", budget)
	list(c, "fits", 30)
	if hits, misses := list(c, "fits", 30); hits != 30 || misses != 0 {
		t.Errorf("a list of 30 again: %d hits, %d misses, want all kept", hits, misses)
	}

	for pass := range 5 {
		hits, _ := list(c, "loop", 45)
		if n, b := c.Size(); b > budget || n > 30 {
			t.Fatalf("holds %d items of %d bytes, want at most %d bytes", n, b, budget)
		}
		if pass > 0 && hits == 0 {
			t.Errorf("pass %d of a list of 45 over a budget of 30: no item found", pass)
		}
	}

	v1 := configSet("versions", 1)
	c.Put(v1, encoding(v1))
	n, b := c.Size()
	v2 := configSet("versions", 1)
	v2.ResourceVersion = "123999"
	c.Put(v2, encoding(v2))
	if n2, b2 := c.Size(); n2 != n || b2 != b {
		t.Errorf("a new version: %d items of %d bytes, want the %d of %d the old one took", n2, b2, n, b)
	}
	if _, ok := c.Get(v1); ok {
		t.Error("the old version is still found")
	}
	if got, ok := c.Get(v2); !ok || !bytes.Equal(got, encoding(v2)) {
		t.Error("the new version is not found")
	}

	tiny := New("test", size-1)
	list(tiny, "a", 2)
	if n, _ := tiny.Size(); n != 0 {
		t.Errorf("kept %d items larger than the budget", n)
	}
}

// TestMetrics: lists count their items as hits or misses, and the bytes
// gauge follows what the cache holds as items make room for others, by
// format.
func TestMetrics(t *testing.T) {
	const format = "metrics-test"
	value := func(result string) float64 {
		t.Helper()
		v, err := testutil.GetCounterMetricValue(itemLookups.WithLabelValues(format, result))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	held := func(c *Cache) float64 {
		t.Helper()
		v, err := testutil.GetGaugeMetricValue(itemBytes.WithLabelValues(format))
		if err != nil {
			t.Fatal(err)
		}
		if _, b := c.Size(); float64(b) != v {
			t.Fatalf("capstan_list_item_cache_bytes is %v, the cache holds %d bytes", v, b)
		}
		return v
	}

	c := New(format, 6*size+size/2) // 6 items
	hits, misses := value("hit"), value("miss")
	list(c, "a", 4)
	if got := value("miss") - misses; got != 4 {
		t.Errorf("first list of 4: %v misses counted, want 4", got)
	}
	if held(c) == 0 {
		t.Error("nothing held after a first list")
	}
	list(c, "a", 4)
	if got := value("hit") - hits; got != 4 {
		t.Errorf("second list of the same 4: %v hits counted, want 4", got)
	}
	// Ten items over a budget of six: items make room for others.
	for range 3 {
		list(c, "a", 10)
		held(c)
	}
	if got := value("hit") + value("miss") - hits - misses; got != 38 {
		t.Errorf("%v lookups counted for 38 items listed", got)
	}
	other, err := testutil.GetCounterMetricValue(itemLookups.WithLabelValues("other-format", "miss"))
	if err != nil || other != 0 {
		t.Errorf("another format's misses: %v, %v; want none", other, err)
	}
}

// TestForget: a deleted ConfigSet's item is dropped, and the items of its uid
// are not kept again (a collection delete answers with what it deleted), while
// a ConfigSet created later under the same name is; forgetting another uid
// leaves a newer item alone; the forgotten uids remembered stay bounded.
func TestForget(t *testing.T) {
	const format = "forget-test"
	c := New(format, DefaultBudget)
	withUID := func(name string, uid types.UID) *v1beta1.ConfigSet {
		cs := configSet("f", 0)
		cs.Name, cs.UID = name, uid
		return cs
	}
	old := withUID("reused", "uid-old")
	other := withUID("other", "uid-other")
	c.Put(old, encoding(old))
	c.Put(other, encoding(other))

	c.Forget(old.Namespace, old.Name, old.UID)
	if _, ok := c.Get(old); ok {
		t.Error("the deleted ConfigSet's item is still found")
	}
	if n, b := c.Size(); n != 1 || b != size {
		t.Errorf("after one of two is forgotten: %d items of %d bytes, want one of %d", n, b, size)
	}
	if v, err := testutil.GetGaugeMetricValue(itemBytes.WithLabelValues(format)); err != nil || v != size {
		t.Errorf("capstan_list_item_cache_bytes is %v (%v) after a deletion, want %d", v, err, size)
	}
	c.Put(old, encoding(old))
	if _, ok := c.Get(old); ok {
		t.Error("the deleted ConfigSet's item was kept again")
	}

	recreated := withUID("reused", "uid-new")
	c.Put(recreated, encoding(recreated))
	if _, ok := c.Get(recreated); !ok {
		t.Error("a ConfigSet created under a deleted one's name is not kept")
	}
	c.Forget(recreated.Namespace, recreated.Name, old.UID)
	if _, ok := c.Get(recreated); !ok {
		t.Error("forgetting the old uid dropped the new ConfigSet's item")
	}
	if _, ok := c.Get(other); !ok {
		t.Error("forgetting one ConfigSet dropped another")
	}

	for i := range 3 * goneLimit {
		c.Forget("f", "many", types.UID(fmt.Sprintf("uid-%d", i)))
		if remembered := len(c.gone) + len(c.wasGone); remembered > 2*goneLimit {
			t.Fatalf("%d forgotten uids remembered, want at most %d", remembered, 2*goneLimit)
		}
	}
	c.Put(old, encoding(old))
	if _, ok := c.Get(old); !ok {
		t.Errorf("a uid forgotten %d forgettings ago is still refused", 3*goneLimit)
	}
}
