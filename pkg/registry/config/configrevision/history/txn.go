package history

import (
	"context"
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/klog/v2"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/txnstorage"
)

// RevisionStorageFrom returns the storage configuration (codec, transformer,
// key prefix) of the revision store of optsGetter, for Options.RevisionStorage.
func RevisionStorageFrom(optsGetter generic.RESTOptionsGetter) (*storagebackend.ConfigForResource, error) {
	opts, err := optsGetter.GetRESTOptions(config.Resource("configrevisions"), &config.ConfigRevision{})
	if err != nil {
		return nil, err
	}
	return opts.StorageConfig, nil
}

// ConfigSetStorage returns the options of the ConfigSet store: with
// Options.RevisionStorage, its storage writes a change and its revision in one etcd
// transaction (txnstorage), over the same etcd as the revision store, whose
// compaction it follows.
func (h *History) ConfigSetStorage(optsGetter generic.RESTOptionsGetter) generic.RESTOptionsGetter {
	if h.revisionStorage == nil {
		return optsGetter
	}
	return txnstorage.RESTOptionsGetter{RESTOptionsGetter: optsGetter, Compactor: h.store.Storage.Storage}
}

// pendingKey finds a request's pending revision in its context.
type pendingKey struct{}

// pending is the revision of the change one ConfigSet request is writing,
// prepared for that write's etcd transaction.
type pending struct {
	h      *History
	change Change
	rev    *config.ConfigRevision
	extra  *txnstorage.Extra
}

// Begin returns the context a ConfigSet write by change runs on: when the
// write changes the entries, its etcd transaction also creates the change's
// revision (provided the revision's name is free and both fit in one etcd
// request), so that the change and its revision are durable together. Changed
// then finds the revision written. Without Begin, or when the revision could
// not join the transaction, Changed writes it in a second transaction.
func (h *History) Begin(ctx context.Context, change Change) context.Context {
	if h.revisionStorage == nil {
		return ctx
	}
	p := &pending{h: h, change: change}
	return txnstorage.WithExtra(context.WithValue(ctx, pendingKey{}, p), p.prepare)
}

// prepare returns the revision write of storing obj over old, when the
// entries changed: see txnstorage.Preparer.
func (p *pending) prepare(ctx context.Context, oldObj, obj runtime.Object) *txnstorage.Extra {
	p.rev, p.extra = nil, nil
	cur, ok := obj.(*config.ConfigSet)
	if !ok || cur.Status.CurrentRevision < 1 {
		return nil
	}
	if old, ok := oldObj.(*config.ConfigSet); ok && old.UID == cur.UID && old.Status.CurrentRevision == cur.Status.CurrentRevision {
		return nil
	}
	rev := Snapshot(cur, p.change)
	key, val, err := p.h.encode(ctx, rev)
	if err != nil {
		// The revision is written after the change instead, as when its
		// name is taken.
		klog.FromContext(ctx).Error(err, "Preparing a revision for its change's transaction",
			"configset", cur.Namespace+"/"+cur.Name, "revision", cur.Status.CurrentRevision)
		return nil
	}
	p.rev, p.extra = rev, &txnstorage.Extra{Key: key, Value: val}
	return p.extra
}

// writtenWith returns the revision the transaction of cur's write created, or
// nil when it created none.
func writtenWith(ctx context.Context, cur *config.ConfigSet) *config.ConfigRevision {
	p, _ := ctx.Value(pendingKey{}).(*pending)
	if p == nil || p.extra == nil || !p.extra.Written || p.rev.Revision != cur.Status.CurrentRevision || !OwnedBy(p.rev, cur.UID) {
		return nil
	}
	if err := (storage.APIObjectVersioner{}).UpdateObject(p.rev, uint64(p.extra.Revision)); err != nil {
		return nil
	}
	return p.rev
}

// encode prepares rev as the revision store's Create would (UID, creation
// time, generation, validation) and returns its etcd key and the value etcd stores:
// encoded with the revision store's codec and transformed (encrypted) with
// its transformer, under that key.
func (h *History) encode(ctx context.Context, rev *config.ConfigRevision) (string, []byte, error) {
	ctx = genericapirequest.WithNamespace(ctx, rev.Namespace)
	rest.FillObjectMetaSystemFields(rev)
	if err := rest.BeforeCreate(h.store.CreateStrategy, ctx, rev); err != nil {
		return "", nil, err
	}
	key, err := h.store.KeyFunc(ctx, rev.Name)
	if err != nil {
		return "", nil, err
	}
	if key, err = storage.PrepareKey(h.store.KeyRootFunc(ctx), key, false); err != nil {
		return "", nil, err
	}
	cfg := h.revisionStorage
	etcdKey := etcdPrefix(cfg.Prefix) + strings.TrimPrefix(key, "/")
	if err := (storage.APIObjectVersioner{}).PrepareObjectForStorage(rev); err != nil {
		return "", nil, err
	}
	data, err := runtime.Encode(cfg.Codec, rev)
	if err != nil {
		return "", nil, fmt.Errorf("encoding revision %s: %w", rev.Name, err)
	}
	if cfg.Transformer == nil {
		return etcdKey, data, nil
	}
	out, err := cfg.Transformer.TransformToStorage(ctx, data, value.DefaultContext(etcdKey))
	if err != nil {
		return "", nil, fmt.Errorf("encrypting revision %s: %w", rev.Name, err)
	}
	return etcdKey, out, nil
}

// etcdPrefix is the etcd3 store's path prefix for a storage prefix: rooted,
// ending in a slash.
func etcdPrefix(prefix string) string {
	p := path.Join("/", prefix)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}
