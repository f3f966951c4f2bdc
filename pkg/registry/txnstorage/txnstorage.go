// Package txnstorage builds a resource's etcd storage, behind the watch cache
// as usual, whose writes of an object can carry a second key in the same etcd
// transaction. The ConfigSet store uses it to write a change and its
// ConfigRevision at once: the one etcd commit makes both durable, and no crash
// can leave the change without its revision.
//
// The storage is k8s.io/apiserver's own etcd3 store and cacher; only the
// client's conditional put is replaced, by one that adds the second key when
// the request's context carries it (see WithExtra).
package txnstorage

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericfeatures "k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	cacherstorage "k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/tracing"
)

// MaxTxnBytes bounds the two values of one transaction together. etcd refuses
// requests above its --max-request-bytes (1.5 MiB by default); a write whose
// object and extra key would not fit goes alone, and its Extra is not written.
const MaxTxnBytes = 1 << 20

// Extra is a second key written in the same transaction as an object, on the
// condition that the key does not exist yet. When it does, the object is
// written alone and Written stays false: the caller writes the key its own way.
type Extra struct {
	// Key is the full etcd key.
	Key string
	// Value is what etcd stores: encoded and transformed (encrypted).
	Value []byte

	// Written reports whether the transaction wrote the key, and Revision at
	// which etcd revision; both are set by the write.
	Written  bool
	Revision int64
}

// Preparer returns the extra key to write with obj, which replaces old (nil
// when obj is created), or nil for none. It must not change either object.
type Preparer func(ctx context.Context, old, obj runtime.Object) *Extra

// WithExtra marks ctx as the context of a write whose storage calls prepare
// may add an extra key to. Writes without it are plain etcd writes.
func WithExtra(ctx context.Context, prepare Preparer) context.Context {
	return context.WithValue(ctx, slotKey{}, &slot{prepare: prepare})
}

type slotKey struct{}

// slot carries, for one request, what the storage layer prepared for the
// client's put: the last attempt of a compare-and-swap loop wins.
type slot struct {
	prepare Preparer
	extra   *Extra
}

func slotFrom(ctx context.Context) *slot {
	s, _ := ctx.Value(slotKey{}).(*slot)
	return s
}

// Compactor reports the etcd revision compacted last; any store on the same
// etcd can answer it.
type Compactor = etcd3.Compactor

// RESTOptionsGetter gives stores built by StorageWithCacher.
type RESTOptionsGetter struct {
	generic.RESTOptionsGetter
	Compactor Compactor
}

// GetRESTOptions returns the delegate's options with StorageWithCacher's storage.
func (g RESTOptionsGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	opts.Decorator = StorageWithCacher(g.Compactor)
	return opts, err
}

// StorageWithCacher returns a decorator like genericregistry.StorageWithCacher,
// over an etcd3 store whose client writes the extra key of WithExtra. The
// compactor is shared with the server's other stores, which run it.
func StorageWithCacher(compactor Compactor) generic.StorageDecorator {
	return func(config *storagebackend.ConfigForResource, resourcePrefix string, keyFunc func(obj runtime.Object) (string, error),
		newFunc func() runtime.Object, newListFunc func() runtime.Object, getAttrs storage.AttrFunc,
		triggerFuncs storage.IndexerFuncs, indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
		s, destroy, err := newRawStorage(*config, newFunc, newListFunc, resourcePrefix, compactor)
		if err != nil {
			return nil, nil, err
		}
		cacher, err := cacherstorage.NewCacherFromConfig(cacherstorage.Config{
			Storage:             s,
			Versioner:           storage.APIObjectVersioner{},
			GroupResource:       config.GroupResource,
			EventsHistoryWindow: config.EventsHistoryWindow,
			ResourcePrefix:      resourcePrefix,
			KeyFunc:             keyFunc,
			NewFunc:             newFunc,
			NewListFunc:         newListFunc,
			GetAttrsFunc:        getAttrs,
			IndexerFuncs:        triggerFuncs,
			Indexers:            indexers,
			Codec:               config.Codec,
		})
		if err != nil {
			destroy()
			return nil, nil, err
		}
		delegator := cacherstorage.NewCacheDelegator(cacher, s)
		var once sync.Once
		return delegator, func() {
			once.Do(func() {
				delegator.Stop()
				cacher.Stop()
				destroy()
			})
		}, nil
	}
}

// newRawStorage is factory.Create for etcd3 with the client's puts replaced.
func newRawStorage(c storagebackend.ConfigForResource, newFunc, newListFunc func() runtime.Object, resourcePrefix string, compactor Compactor) (storage.Interface, factory.DestroyFunc, error) {
	cli, err := newClient(c.Transport)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to etcd: %w", err)
	}
	cli.KV = etcd3.NewETCDLatencyTracker(cli.KV)
	kc := &kubernetes.Client{Client: cli}
	kc.Kubernetes = txnClient{Client: kubernetes.Client{Client: cli}}

	transformer := c.Transformer
	if transformer == nil {
		transformer = identity.NewEncryptCheckTransformer()
	}
	decoder := etcd3.NewDefaultDecoder(c.Codec, versioner)
	// As the storage factory does: with AllowUnsafeMalformedObjectDeletion on,
	// an object that cannot be decrypted or decoded can still be deleted.
	corruptDeletion := utilfeature.DefaultFeatureGate.Enabled(genericfeatures.AllowUnsafeMalformedObjectDeletion)
	if corruptDeletion {
		transformer = etcd3.WithCorruptObjErrorHandlingTransformer(transformer)
		decoder = etcd3.WithCorruptObjErrorHandlingDecoder(decoder)
	}
	s, err := etcd3.New(kc, compactor, c.Codec, newFunc, newListFunc, c.Prefix, resourcePrefix, c.GroupResource,
		transformer, c.LeaseManagerConfig, decoder, versioner)
	if err != nil {
		_ = cli.Close()
		return nil, nil, err
	}
	var inner storage.Interface = s
	if corruptDeletion {
		inner = etcd3.NewStoreWithUnsafeCorruptObjectDeletion(inner, c.GroupResource)
	}
	var once sync.Once
	return &preparing{Interface: inner}, func() {
		once.Do(func() {
			s.Close()
			_ = cli.Close()
		})
	}, nil
}

// newClient connects to etcd as k8s.io/apiserver's storage factory does, over
// TLS when the transport names certificates, and with the server's tracing.
// Unlike the factory's clients it has no gRPC Prometheus interceptors: the
// factory's collectors are not exported, and a second set under the same
// names could not be registered.
func newClient(t storagebackend.TransportConfig) (*clientv3.Client, error) {
	tracingOpts := []otelgrpc.Option{
		otelgrpc.WithMessageEvents(otelgrpc.ReceivedEvents, otelgrpc.SentEvents),
		otelgrpc.WithPropagators(tracing.Propagators()),
	}
	if t.TracerProvider != nil {
		tracingOpts = append(tracingOpts, otelgrpc.WithTracerProvider(t.TracerProvider))
	}
	cfg := clientv3.Config{
		Endpoints:            t.ServerList,
		DialTimeout:          20 * time.Second,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		DialOptions:          []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(tracingOpts...))},
	}
	if t.CertFile != "" || t.KeyFile != "" || t.TrustedCAFile != "" {
		tlsConfig, err := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.TrustedCAFile}.ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tlsConfig
	}
	logger, err := logutil.CreateDefaultZapLogger(zap.ErrorLevel)
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger
	return clientv3.New(cfg)
}

// preparing asks the request's Preparer for the extra key of each create and
// of each attempt of an update, for the client's put to find. It also
// remembers which version of each object this server wrote last (see
// recentWrites), to tell whether the watch cache's copy is behind it.
type preparing struct {
	storage.Interface
	written recentWrites
}

func (p *preparing) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	if s := slotFrom(ctx); s != nil {
		s.extra = s.prepare(ctx, nil, obj)
	}
	err := p.Interface.Create(ctx, key, obj, out, ttl)
	if err == nil {
		p.written.record(key, out)
	}
	return err
}

func (p *preparing) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateObjectFunc, cachedExistingObject runtime.Object, opts storage.DeleteOptions) error {
	err := p.Interface.Delete(ctx, key, out, preconditions, validateDeletion, cachedExistingObject, opts)
	if err == nil {
		p.written.forget(key)
	}
	return err
}

func (p *preparing) GuaranteedUpdate(ctx context.Context, key string, destination runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExistingObject runtime.Object) error {
	s := slotFrom(ctx)
	if s == nil {
		err := p.Interface.GuaranteedUpdate(ctx, key, destination, ignoreNotFound, preconditions, tryUpdate, cachedExistingObject)
		if err == nil {
			p.written.record(key, destination)
		}
		return err
	}
	prepared := func(input runtime.Object, res storage.ResponseMeta) (runtime.Object, *uint64, error) {
		s.extra = nil
		out, ttl, err := tryUpdate(input, res)
		if err == nil {
			s.extra = s.prepare(ctx, input, out)
		}
		return out, ttl, err
	}
	// Every attempt of a change is admitted, and ResourceQuota admission
	// charges each one a revision. An attempt on a watch cache copy that
	// lacks a write (the cache trails etcd by its watch) fails its
	// compare-and-swap after being charged, and a namespace at its revision
	// quota then refuses the client's next change. So the copy is used only
	// when it already holds the last write of the object this server made,
	// which is what a client's back-to-back changes need; otherwise the
	// change reads the object from etcd.
	if cachedExistingObject != nil && p.written.behind(key, cachedExistingObject) {
		cachedExistingObject = nil
	}
	err := p.Interface.GuaranteedUpdate(ctx, key, destination, ignoreNotFound, preconditions, prepared, cachedExistingObject)
	if err == nil {
		p.written.record(key, destination)
	}
	return err
}

// writeMemory is how long recentWrites remembers a write: far longer than the
// watch cache takes to see it, unless its watch is stalled.
const writeMemory = time.Minute

// recentWrites holds, per key, the resource version of the last write of it
// this server made, for a minute; a write's entry replaces the previous one
// and a delete removes it. Entries older than writeMemory are swept once
// their number has doubled since the last sweep, so the table holds about the
// keys written in the last minute.
type recentWrites struct {
	mu        sync.Mutex
	byKey     map[string]recentWrite
	sweptSize int
}

type recentWrite struct {
	rv uint64
	at time.Time
}

// versioner reads resource versions, for the etcd3 store and recentWrites.
var versioner = storage.APIObjectVersioner{}

func (w *recentWrites) record(key string, obj runtime.Object) {
	rv, err := versioner.ObjectResourceVersion(obj)
	if err != nil || rv == 0 {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byKey == nil {
		w.byKey = map[string]recentWrite{}
	}
	if prev, ok := w.byKey[key]; ok && prev.rv > rv {
		return
	}
	w.byKey[key] = recentWrite{rv: rv, at: now}
	if len(w.byKey) >= 2*w.sweptSize+64 {
		for k, e := range w.byKey {
			if now.Sub(e.at) > writeMemory {
				delete(w.byKey, k)
			}
		}
		w.sweptSize = len(w.byKey)
	}
}

func (w *recentWrites) forget(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.byKey, key)
}

// behind reports whether cached is older than the last write of key this
// server made, or cannot tell.
func (w *recentWrites) behind(key string, cached runtime.Object) bool {
	rv, err := versioner.ObjectResourceVersion(cached)
	if err != nil {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.byKey[key]
	return ok && rv < last.rv
}

// txnClient is the etcd client the etcd3 store writes through: its
// conditional put also writes the request's extra key when that key is free.
type txnClient struct {
	kubernetes.Client
}

func (c txnClient) OptimisticPut(ctx context.Context, key string, value []byte, expectedRevision int64, opts kubernetes.PutOptions) (kubernetes.PutResponse, error) {
	s := slotFrom(ctx)
	if s == nil || s.extra == nil || len(value)+len(s.extra.Value) > MaxTxnBytes {
		return c.Client.OptimisticPut(ctx, key, value, expectedRevision, opts)
	}
	extra := s.extra
	put := clientv3.OpPut(key, string(value), clientv3.WithLease(opts.LeaseID))
	txn := c.KV.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", expectedRevision),
	).Then(
		clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(extra.Key), "=", 0)},
			[]clientv3.Op{put, clientv3.OpPut(extra.Key, string(extra.Value))},
			[]clientv3.Op{put},
		),
	)
	if opts.GetOnFailure {
		txn = txn.Else(clientv3.OpGet(key))
	}
	resp, err := txn.Commit()
	if err != nil {
		return kubernetes.PutResponse{}, err
	}
	out := kubernetes.PutResponse{Succeeded: resp.Succeeded, Revision: resp.Header.Revision}
	switch {
	case resp.Succeeded:
		var inner *etcdserverpb.TxnResponse
		if len(resp.Responses) == 1 {
			inner = resp.Responses[0].GetResponseTxn()
		}
		if inner == nil {
			return out, fmt.Errorf("etcd answered the write of %s without its nested transaction", key)
		}
		extra.Written, extra.Revision = inner.Succeeded, resp.Header.Revision
	case opts.GetOnFailure && len(resp.Responses) == 1:
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			out.KV = kvs[0]
		}
	}
	return out, nil
}
