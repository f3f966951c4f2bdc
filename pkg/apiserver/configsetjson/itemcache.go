package configsetjson

import (
	"sync"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// itemCache keeps the encoded form of list items between lists, so that a
// ConfigSet that has not changed since the last list is copied rather than
// encoded again: informers relisting, controllers and kubectl listing the
// same objects over and over. It trades memory for CPU, within a budget.
//
// An item is known by its namespace, name, uid and resourceVersion, and by
// the kind and apiVersion it is written with. Within one etcd a key has one
// value at a revision, so a stored ConfigSet with the same identity has the
// same content, and the encoding is a function of the content. Lists carry
// only stored objects: the watch cache's or etcd's, never a dry run's (a
// dry-run update answers with the old resourceVersion and new content, which
// is why single objects do not use the cache). An object without a
// resourceVersion or uid is not cached.
//
// Memory is bounded by two generations of at most budget bytes of encoded
// items each: an item is added to the current generation; when that is full
// it becomes the previous one and the one before is dropped. An item found
// in the previous generation moves to the current one, so what lists keep
// asking for stays and what changed or was deleted ages out.
type itemCache struct {
	budget int

	mu        sync.Mutex
	current   map[itemKey]cachedItem
	previous  map[itemKey]cachedItem
	usedBytes int // of current
	prevBytes int // of previous
}

type itemKey struct {
	namespace, name string
}

type cachedItem struct {
	uid, resourceVersion, kind, apiVersion string
	encoded                                []byte
}

// defaultItemCacheBudget is the size of one generation: the encoded items of
// about 25,000 ConfigSets of the bench's shape (16 entries, 1 KiB of values).
const defaultItemCacheBudget = 32 << 20

func newItemCache(budget int) *itemCache {
	return &itemCache{budget: budget, current: map[itemKey]cachedItem{}}
}

func (c cachedItem) is(cs *v1beta1.ConfigSet) bool {
	return c.resourceVersion == cs.ResourceVersion && c.uid == string(cs.UID) &&
		c.kind == cs.Kind && c.apiVersion == cs.APIVersion
}

func cacheable(cs *v1beta1.ConfigSet) bool {
	return cs.ResourceVersion != "" && cs.UID != ""
}

// get returns the encoded cs if the cache holds this version of it. The
// bytes are shared: callers copy them and never write to them.
func (c *itemCache) get(cs *v1beta1.ConfigSet) ([]byte, bool) {
	if !cacheable(cs) {
		return nil, false
	}
	key := itemKey{cs.Namespace, cs.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.current[key]; ok && it.is(cs) {
		return it.encoded, true
	}
	if it, ok := c.previous[key]; ok && it.is(cs) {
		delete(c.previous, key)
		c.prevBytes -= len(it.encoded)
		c.addLocked(key, it)
		return it.encoded, true
	}
	return nil, false
}

// put records encoded as the encoding of cs; it copies encoded.
func (c *itemCache) put(cs *v1beta1.ConfigSet, encoded []byte) {
	if !cacheable(cs) || len(encoded) > c.budget {
		return
	}
	it := cachedItem{uid: string(cs.UID), resourceVersion: cs.ResourceVersion, kind: cs.Kind, apiVersion: cs.APIVersion,
		encoded: append([]byte(nil), encoded...)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(itemKey{cs.Namespace, cs.Name}, it)
}

func (c *itemCache) addLocked(key itemKey, it cachedItem) {
	if old, ok := c.current[key]; ok {
		c.usedBytes -= len(old.encoded)
	}
	if c.usedBytes+len(it.encoded) > c.budget {
		c.previous, c.current = c.current, make(map[itemKey]cachedItem, len(c.current))
		c.prevBytes, c.usedBytes = c.usedBytes, 0
	}
	c.current[key] = it
	c.usedBytes += len(it.encoded)
	itemBytes.Set(float64(c.usedBytes + c.prevBytes))
}

// size returns the number of items and encoded bytes held, for tests.
func (c *itemCache) size() (items, bytes int) {
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
