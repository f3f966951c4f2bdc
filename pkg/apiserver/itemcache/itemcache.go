// Package itemcache keeps the encoded form of ConfigSets between list
// responses, so that a ConfigSet that has not changed since the last list is
// copied rather than encoded again: informers relisting, controllers and
// kubectl listing the same objects over and over. It trades memory for CPU,
// within a budget. Each wire format has a Cache of its own (the JSON one of
// pkg/apiserver/configsetjson, the protobuf one of
// pkg/apiserver/configsetproto).
//
// An item is known by its namespace, name, uid and resourceVersion, and by
// the kind and apiVersion it is written with. Within one etcd a key has one
// value at a revision, so a stored ConfigSet with the same identity has the
// same content, and the encoding is a function of the content. Lists carry
// only stored objects: the watch cache's or etcd's, never a dry run's (a
// dry-run update answers with the old resourceVersion and new content, which
// is why single objects do not use a Cache). An object without a
// resourceVersion or uid is not kept.
//
// Memory is bounded by a budget of encoded bytes. When an item does not fit,
// items taken at random make room for it. Random eviction suits what lists
// do, which is to go through the same items in the same order again and
// again: a working set within the budget is kept whole after one list, and
// one larger than the budget still finds a share of its items on each list,
// where a least-recently-used policy would evict each item just before the
// next list asks for it, and find none. An item listed again under a new
// resourceVersion replaces its old version; deleted objects age out as
// eviction reaches them.
package itemcache

import (
	"sync"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// DefaultBudget is the budget of one format: the JSON of about 30,000
// ConfigSets of the bench's shape (16 entries, 1 KiB of values), or the
// protobuf of about 36,000.
const DefaultBudget = 64 << 20

// Cache is the encoded items of one wire format.
type Cache struct {
	format string
	budget int

	mu    sync.Mutex
	items map[key]item
	used  int // bytes of the items' encodings
}

type key struct {
	namespace, name string
}

type item struct {
	uid, resourceVersion, kind, apiVersion string
	encoded                                []byte
}

// New returns an empty Cache of format (the label of its metrics) that
// holds at most budget bytes of encoded items, and registers the metrics.
func New(format string, budget int) *Cache {
	registerMetrics()
	return &Cache{format: format, budget: budget, items: map[key]item{}}
}

func (it item) is(cs *v1beta1.ConfigSet) bool {
	return it.resourceVersion == cs.ResourceVersion && it.uid == string(cs.UID) &&
		it.kind == cs.Kind && it.apiVersion == cs.APIVersion
}

func keepable(cs *v1beta1.ConfigSet) bool {
	return cs.ResourceVersion != "" && cs.UID != ""
}

// Get returns the encoded cs if the cache holds this version of it. The
// bytes are shared: callers copy them and never write to them.
func (c *Cache) Get(cs *v1beta1.ConfigSet) ([]byte, bool) {
	if !keepable(cs) {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[key{cs.Namespace, cs.Name}]; ok && it.is(cs) {
		return it.encoded, true
	}
	return nil, false
}

// Put records encoded as the encoding of cs. The cache keeps encoded itself:
// the caller never writes to it again.
func (c *Cache) Put(cs *v1beta1.ConfigSet, encoded []byte) {
	if !keepable(cs) || len(encoded) > c.budget {
		return
	}
	it := item{uid: string(cs.UID), resourceVersion: cs.ResourceVersion, kind: cs.Kind, apiVersion: cs.APIVersion, encoded: encoded}
	k := key{cs.Namespace, cs.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items[k]; ok {
		c.used -= len(old.encoded)
		delete(c.items, k)
	}
	// Go ranges over a map from a random place: the first items of a range
	// are items taken at random.
	for other, old := range c.items {
		if c.used+len(encoded) <= c.budget {
			break
		}
		c.used -= len(old.encoded)
		delete(c.items, other)
	}
	c.items[k] = it
	c.used += len(encoded)
	itemBytes.WithLabelValues(c.format).Set(float64(c.used))
}

// Record counts one list's lookups: hits copied from the cache, misses
// encoded and put.
func (c *Cache) Record(hits, misses int) {
	if hits > 0 {
		itemLookups.WithLabelValues(c.format, "hit").Add(float64(hits))
	}
	if misses > 0 {
		itemLookups.WithLabelValues(c.format, "miss").Add(float64(misses))
	}
}

// Size returns the number of items and encoded bytes held.
func (c *Cache) Size() (items, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.used
}
