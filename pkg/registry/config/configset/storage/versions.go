package storage

import (
	"bytes"
	"runtime"
	"sync"
	"weak"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/registry/generic"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/intern"
)

// sharedVersions gives the ConfigSet store a storage codec whose decoded
// objects share the memory of every entry, label, annotation, name,
// managed-fields entry and condition string that did not change with the
// version of the same ConfigSet decoded before, and their large values with
// every equal value in memory.
//
// The watch cache keeps every version of a ConfigSet for at least 75 seconds,
// and until newer events overwrite it, so that watchers can resume. Without
// sharing, a user who changes one small key beside a 900 KB value a hundred
// times in a minute holds a hundred copies of the value in every replica's
// heap, and ten versions of a 1 KiB ConfigSet hold ten copies of each of its
// entries. Only immutable strings and byte slices that nothing modifies are
// shared, never maps or structs, so an object decoded for a request can be
// changed freely as before.
type sharedVersions struct {
	generic.RESTOptionsGetter
}

func (g sharedVersions) GetRESTOptions(resource schema.GroupResource, example k8sruntime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	if err != nil || opts.StorageConfig == nil {
		return opts, err
	}
	cfg := *opts.StorageConfig
	cfg.Codec = sharingCodec{Codec: cfg.Codec, versions: lastDecoded}
	opts.StorageConfig = &cfg
	return opts, nil
}

// sharingCodec shares the unchanged values of the ConfigSets it decodes with
// the ConfigSet of the same UID it decoded last.
type sharingCodec struct {
	k8sruntime.Codec
	versions *versionTable
}

func (c sharingCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into k8sruntime.Object) (k8sruntime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := c.Codec.Decode(data, defaults, into)
	if err != nil {
		return obj, gvk, err
	}
	if cs, ok := obj.(*config.ConfigSet); ok {
		internLargeValues(&cs.Spec)
		c.versions.share(cs)
	}
	return obj, gvk, nil
}

// internMinSize is the smallest entry value interned by its contents.
const internMinSize = 1024

// largeValues is shared by every ConfigSet store of the process.
var largeValues = intern.New(internMinSize)

// internLargeValues makes the large entry values of spec share one copy with
// every equal value decoded before that is still in memory. Sharing with the
// previous version alone is not enough for them: when that version was a
// request's, freed since, the next one would bring a copy of its own, and a
// tenant's writes decide how many such copies the watch cache holds.
func internLargeValues(spec *config.ConfigSetSpec) {
	for k, v := range spec.Data {
		spec.Data[k] = largeValues.String(v)
	}
	for k, v := range spec.SecretData {
		spec.SecretData[k] = largeValues.Bytes(v)
	}
}

// lastDecoded is shared by every ConfigSet store of the process.
var lastDecoded = newVersionTable()

// recentVersions is how many decoded versions of one ConfigSet the table
// remembers. The version decoded last is often a request's, dropped and freed
// soon after; the watch cache's version is decoded just before or after it.
// Remembering a few lets the next decode share with whichever is still in
// memory, rather than start a copy of its own once the request's is gone.
const recentVersions = 8

// versionTable remembers, by UID, the ConfigSets decoded last. It holds weak
// pointers only: a version stays in memory exactly as long as the watch cache
// or a request refers to it, and its pointer goes when it is freed.
type versionTable struct {
	mu     sync.Mutex
	latest map[types.UID]*versionRing
}

// versionRing holds the recent versions of one ConfigSet, newest first.
type versionRing [recentVersions]weak.Pointer[config.ConfigSet]

func newVersionTable() *versionTable {
	return &versionTable{latest: map[types.UID]*versionRing{}}
}

// share points cs's unchanged values at those of the newest version decoded
// before it that is still in memory, then makes cs the newest. cs is not
// visible to any other decode until it is complete.
func (t *versionTable) share(cs *config.ConfigSet) {
	if cs.UID == "" {
		return
	}
	var prev *config.ConfigSet
	t.mu.Lock()
	if ring := t.latest[cs.UID]; ring != nil {
		for _, wp := range ring {
			if prev = wp.Value(); prev != nil {
				break
			}
		}
	}
	t.mu.Unlock()
	if prev != nil && prev != cs {
		shareUnchanged(prev, cs)
	}
	wp := weak.Make(cs)
	t.mu.Lock()
	ring := t.latest[cs.UID]
	if ring == nil {
		ring = &versionRing{}
		t.latest[cs.UID] = ring
	}
	copy(ring[1:], ring[:recentVersions-1])
	ring[0] = wp
	t.mu.Unlock()
	runtime.AddCleanup(cs, t.forget, versionRef{uid: cs.UID, ptr: wp})
}

type versionRef struct {
	uid types.UID
	ptr weak.Pointer[config.ConfigSet]
}

// forget drops the pointer to a freed version, and the ConfigSet's entry once
// none of its versions is remembered.
func (t *versionTable) forget(ref versionRef) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ring := t.latest[ref.uid]
	if ring == nil {
		return
	}
	empty := true
	for i, wp := range ring {
		if wp == ref.ptr {
			ring[i] = weak.Pointer[config.ConfigSet]{}
		} else if wp != (weak.Pointer[config.ConfigSet]{}) {
			empty = false
		}
	}
	if empty {
		delete(t.latest, ref.uid)
	}
}

// remembered is the number of versions of uid the table remembers, for tests.
func (t *versionTable) remembered(uid types.UID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	if ring := t.latest[uid]; ring != nil {
		for _, wp := range ring {
			if wp != (weak.Pointer[config.ConfigSet]{}) {
				n++
			}
		}
	}
	return n
}

// len is the number of ConfigSets the table remembers, for tests.
func (t *versionTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.latest)
}

func shareUnchanged(prev, cs *config.ConfigSet) {
	cs.Name, cs.Namespace, cs.UID = same(prev.Name, cs.Name), same(prev.Namespace, cs.Namespace), same(prev.UID, cs.UID)
	cs.Labels = shareMap(prev.Labels, cs.Labels, func(a, b string) bool { return a == b })
	cs.Annotations = shareMap(prev.Annotations, cs.Annotations, func(a, b string) bool { return a == b })
	cs.Spec.Data = shareMap(prev.Spec.Data, cs.Spec.Data, func(a, b string) bool { return a == b })
	cs.Spec.SecretData = shareMap(prev.Spec.SecretData, cs.Spec.SecretData, func(a, b []byte) bool {
		return bytes.Equal(a, b)
	})
	for i := range min(len(cs.ManagedFields), len(prev.ManagedFields)) {
		p, c := &prev.ManagedFields[i], &cs.ManagedFields[i]
		c.Manager, c.Operation, c.APIVersion = same(p.Manager, c.Manager), same(p.Operation, c.Operation), same(p.APIVersion, c.APIVersion)
		c.FieldsType, c.Subresource = same(p.FieldsType, c.FieldsType), same(p.Subresource, c.Subresource)
		if p.FieldsV1 != nil && c.FieldsV1 != nil && bytes.Equal(p.FieldsV1.Raw, c.FieldsV1.Raw) {
			c.FieldsV1 = &metav1.FieldsV1{Raw: p.FieldsV1.Raw}
		}
	}
	for i := range min(len(cs.Status.Conditions), len(prev.Status.Conditions)) {
		p, c := &prev.Status.Conditions[i], &cs.Status.Conditions[i]
		c.Type, c.Status, c.Reason, c.Message = same(p.Type, c.Type), same(p.Status, c.Status), same(p.Reason, c.Reason), same(p.Message, c.Message)
	}
}

// same returns prev when it equals cur, so that cur's copy can be freed.
func same[S ~string](prev, cur S) S {
	if prev == cur {
		return prev
	}
	return cur
}

// shareMap returns a map equal to cur whose keys, and whose values equal to
// prev's, are prev's. It returns a new map rather than changing cur, whose
// keys cannot be replaced in place.
func shareMap[V any](prev, cur map[string]V, equal func(a, b V) bool) map[string]V {
	if len(prev) == 0 || len(cur) == 0 {
		return cur
	}
	out := make(map[string]V, len(cur))
	for k, pv := range prev {
		if v, ok := cur[k]; ok {
			if equal(pv, v) {
				v = pv
			}
			out[k] = v
		}
	}
	if len(out) < len(cur) {
		for k, v := range cur {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	return out
}
