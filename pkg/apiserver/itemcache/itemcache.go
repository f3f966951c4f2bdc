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
// resourceVersion replaces its old version.
//
// A deleted ConfigSet's item can never be found again (a ConfigSet created
// later under its name has another uid), so the registry tells the caches of
// each ConfigSet it deletes (Forget), and the item is dropped at once. A
// collection delete answers with the items it deleted, encoded after the
// deletions, so a forgotten uid is also remembered for a while and its items
// are not kept again. Deletions made through another replica are not seen
// here: their items age out as eviction reaches them, within the budget.
package itemcache

import (
	"hash/maphash"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// DefaultBudget is the budget of one format: the JSON of about 30,000
// ConfigSets of the bench's shape (16 entries, 1 KiB of values), or the
// protobuf of about 36,000.
const DefaultBudget = 64 << 20

// goneLimit is how many forgotten uids one generation remembers: two
// generations remember between goneLimit and twice as many, at about 40 bytes
// each, which covers the response of a collection delete of at least
// goneLimit ConfigSets.
const goneLimit = 1 << 16

// Cache is the encoded items of one wire format.
type Cache struct {
	format string
	budget int

	mu    sync.Mutex
	items map[key]item
	used  int // bytes of the items' encodings
	// gone and wasGone are the hashes of forgotten uids, this generation's
	// and the one before; items of those uids are not kept.
	seed          maphash.Seed
	gone, wasGone map[uint64]struct{}
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
	return &Cache{format: format, budget: budget, items: map[key]item{}, seed: maphash.MakeSeed(), gone: map[uint64]struct{}{}}
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
	uid := c.hash(cs.UID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgotten(uid) {
		return
	}
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

// Forget drops the item of a ConfigSet that has been deleted and keeps
// items of its uid from being kept again while it is remembered.
func (c *Cache) Forget(namespace, name string, uid types.UID) {
	h := c.hash(uid)
	k := key{namespace, name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[k]; ok && it.uid == string(uid) {
		c.used -= len(it.encoded)
		delete(c.items, k)
		itemBytes.WithLabelValues(c.format).Set(float64(c.used))
	}
	if len(c.gone) >= goneLimit {
		c.wasGone, c.gone = c.gone, make(map[uint64]struct{}, goneLimit)
	}
	c.gone[h] = struct{}{}
}

func (c *Cache) hash(uid types.UID) uint64 { return maphash.String(c.seed, string(uid)) }

// forgotten reports whether the uid of hash h was forgotten recently; c.mu
// is held.
func (c *Cache) forgotten(h uint64) bool {
	_, gone := c.gone[h]
	_, wasGone := c.wasGone[h]
	return gone || wasGone
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
