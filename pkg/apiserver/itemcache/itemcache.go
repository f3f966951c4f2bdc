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
// Memory is bounded by two generations of at most budget bytes of encoded
// items each: an item is added to the current generation; when that is full
// it becomes the previous one and the one before is dropped. An item found
// in the previous generation moves to the current one, so what lists keep
// asking for stays and what changed or was deleted ages out.
package itemcache

import (
	"sync"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// DefaultBudget is the size of one generation: the JSON of about 15,000
// ConfigSets of the bench's shape (16 entries, 1 KiB of values), or the
// protobuf of about 18,000.
const DefaultBudget = 32 << 20

// Cache is the encoded items of one wire format.
type Cache struct {
	format string
	budget int

	mu        sync.Mutex
	current   map[key]item
	previous  map[key]item
	usedBytes int // of current
	prevBytes int // of previous
}

type key struct {
	namespace, name string
}

type item struct {
	uid, resourceVersion, kind, apiVersion string
	encoded                                []byte
}

// New returns an empty Cache of format (the label of its metrics) with
// generations of budget bytes, and registers the metrics.
func New(format string, budget int) *Cache {
	registerMetrics()
	return &Cache{format: format, budget: budget, current: map[key]item{}}
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
	k := key{cs.Namespace, cs.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.current[k]; ok && it.is(cs) {
		return it.encoded, true
	}
	if it, ok := c.previous[k]; ok && it.is(cs) {
		delete(c.previous, k)
		c.prevBytes -= len(it.encoded)
		c.addLocked(k, it)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(key{cs.Namespace, cs.Name}, it)
}

func (c *Cache) addLocked(k key, it item) {
	if old, ok := c.current[k]; ok {
		c.usedBytes -= len(old.encoded)
	}
	if c.usedBytes+len(it.encoded) > c.budget {
		c.previous, c.current = c.current, make(map[key]item, len(c.current))
		c.prevBytes, c.usedBytes = c.usedBytes, 0
	}
	c.current[k] = it
	c.usedBytes += len(it.encoded)
	itemBytes.WithLabelValues(c.format).Set(float64(c.usedBytes + c.prevBytes))
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
	for _, it := range c.previous {
		bytes += len(it.encoded)
	}
	for _, it := range c.current {
		bytes += len(it.encoded)
	}
	return len(c.current) + len(c.previous), bytes
}
