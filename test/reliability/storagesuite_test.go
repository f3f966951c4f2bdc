package reliability

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/apitesting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/tools/cache"

	"capstan.dev/capstan/cmd/apiserver/app/local"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/test/reliability/harness"
	"capstan.dev/capstan/test/utils/etcdread"
)

var (
	suiteScheme = runtime.NewScheme()
	suiteCodecs = serializer.NewCodecFactory(suiteScheme)
)

func init() {
	metav1.AddToGroupVersion(suiteScheme, metav1.SchemeGroupVersion)
	utilruntime.Must(example.AddToScheme(suiteScheme))
	utilruntime.Must(examplev1.AddToScheme(suiteScheme))
}

// countingTransformer counts reads so the list-continuation suites can check
// how many objects were decrypted.
type countingTransformer struct {
	value.Transformer
	reads atomic.Uint64
}

func (c *countingTransformer) TransformFromStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, bool, error) {
	c.reads.Add(1)
	return c.Transformer.TransformFromStorage(ctx, data, dataCtx)
}

// suiteEnv is one etcd child process shared by the suites; every suite gets
// its own key prefix so they cannot see each other's objects.
type suiteEnv struct {
	etcd        *harness.Etcd
	transformer value.Transformer
	n           atomic.Int64
}

// newSuiteEnv starts etcd and loads the transformer Capstan's local mode
// generates: a secretbox EncryptionConfiguration written by the same code
// (local.EnsureEncryptionConfig), loaded by encryptionconfig as the server does.
func newSuiteEnv(t *testing.T) *suiteEnv {
	etcd := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true})
	path := filepath.Join(t.TempDir(), "encryption-config.yaml")
	resource := "configsets." + config.GroupName
	if _, err := local.EnsureEncryptionConfig(path, []string{resource}); err != nil {
		t.Fatal(err)
	}
	enc, err := etcdread.Load(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := enc.Transformer(config.Resource("configsets"))
	if err != nil {
		t.Fatal(err)
	}
	return &suiteEnv{etcd: etcd, transformer: tr}
}

type suiteStore struct {
	storage.Interface
	reads  *countingTransformer
	env    *suiteEnv
	prefix string
	t      *testing.T
}

// newStore builds a store the way Capstan's registry does: a storagebackend
// config (JSON codec, the secretbox transformer) through generic.UndecoratedStorage
// or, with cached, genericregistry.StorageWithCacher.
func (e *suiteEnv) newStore(t *testing.T, cached, clusterScoped bool) *suiteStore {
	t.Helper()
	codec := apitesting.TestCodec(suiteCodecs, examplev1.SchemeGroupVersion)
	reads := &countingTransformer{Transformer: e.transformer}
	storePrefix := fmt.Sprintf("/registry-suite-%d", e.n.Add(1))
	cfg := storagebackend.NewDefaultConfig(storePrefix, codec)
	cfg.Transport.ServerList = []string{e.etcd.Endpoint()}
	cfg.Transformer = reads
	resourceCfg := cfg.ForResource(schema.GroupResource{Resource: "pods"})
	prefix := "/pods/"
	keyFunc := func(obj runtime.Object) (string, error) { return storage.NamespaceKeyFunc(prefix, obj) }
	if clusterScoped {
		keyFunc = func(obj runtime.Object) (string, error) { return storage.NoNamespaceKeyFunc(prefix, obj) }
	}
	decorator := generic.UndecoratedStorage
	if cached {
		decorator = genericregistry.StorageWithCacher()
	}
	indexers := cache.Indexers{
		"f:spec.nodeName": func(obj interface{}) ([]string, error) {
			return []string{obj.(*example.Pod).Spec.NodeName}, nil
		},
		"f:metadata.namespace": func(obj interface{}) ([]string, error) {
			return []string{obj.(*example.Pod).Namespace}, nil
		},
	}
	triggers := storage.IndexerFuncs{"spec.nodeName": func(obj runtime.Object) string {
		if p, ok := obj.(*example.Pod); ok {
			return p.Spec.NodeName
		}
		return ""
	}}
	s, destroy, err := decorator(resourceCfg, prefix, keyFunc,
		func() runtime.Object { return &example.Pod{} },
		func() runtime.Object { return &example.PodList{} },
		podAttrs, triggers, &indexers)
	if err != nil {
		t.Fatalf("creating store: %v", err)
	}
	t.Cleanup(destroy)
	// Suites assume reads do not fail with 429 while the watch cache starts.
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return s.ReadinessCheck() == nil, nil
	}); err != nil {
		t.Fatalf("store not ready: %v", err)
	}
	reads.reads.Store(0)
	return &suiteStore{Interface: s, reads: reads, env: e, t: t, prefix: storePrefix}
}

func podAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	pod, ok := obj.(*example.Pod)
	if !ok {
		return nil, nil, fmt.Errorf("not a pod")
	}
	return labels.Set(pod.Labels), fields.Set{
		"metadata.name":      pod.Name,
		"metadata.namespace": pod.Namespace,
		"spec.nodeName":      pod.Spec.NodeName,
		"spec.restartPolicy": string(pod.Spec.RestartPolicy),
		"status.phase":       string(pod.Status.Phase),
	}, nil
}

// keyValidation checks what reached etcd: the secretbox prefix, and a value
// that decrypts (with the key as authenticated data) to an object without
// resourceVersion.
func (s *suiteStore) keyValidation() storagetesting.KeyValidation {
	client := s.env.etcd.Client(s.t)
	return func(ctx context.Context, t *testing.T, key string) {
		full := path.Join(s.prefix, key)
		resp, err := client.Get(ctx, full)
		if err != nil {
			t.Fatalf("etcd get %s: %v", full, err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("etcd has no value at %s", full)
		}
		kv := resp.Kvs[0]
		if !strings.HasPrefix(string(kv.Value), "k8s:enc:secretbox:v1:key1:") {
			t.Fatalf("value at %s is not secretbox-encrypted: %.40q", kv.Key, kv.Value)
		}
		plain, _, err := etcdread.Decrypt(ctx, s.env.transformer, string(kv.Key), kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := runtime.Decode(apitesting.TestCodec(suiteCodecs, examplev1.SchemeGroupVersion), plain)
		if err != nil {
			t.Fatalf("decoding %s: %v", kv.Key, err)
		}
		if obj.(*example.Pod).ResourceVersion != "" {
			t.Errorf("stored object at %s has a resourceVersion", kv.Key)
		}
	}
}

func (s *suiteStore) increaseRV() storagetesting.IncreaseRVFunc {
	client := s.env.etcd.Client(s.t)
	return func(ctx context.Context, t *testing.T) int64 {
		resp, err := client.Put(ctx, "increaseRV", "ok")
		if err != nil {
			t.Fatalf("increasing RV: %v", err)
		}
		return resp.Header.Revision
	}
}

// compaction compacts etcd the way the API server's compactor does and waits
// until the store has observed it.
func (s *suiteStore) compaction() storagetesting.Compaction {
	client := s.env.etcd.Client(s.t)
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		rv, err := storage.APIObjectVersioner{}.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		var current int64
		current, _, _, err = etcd3.Compact(ctx, client, current, int64(rv))
		if err != nil {
			_, _, _, err = etcd3.Compact(ctx, client, current, int64(rv))
		}
		if err != nil {
			t.Fatalf("compacting to %d: %v", rv, err)
		}
		if !utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for s.CompactRevision() < int64(rv) {
			if time.Now().After(deadline) {
				t.Fatalf("store did not observe compaction to %d (has %d)", rv, s.CompactRevision())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// callsValidation checks how many objects a paginated list decrypted.
func (s *suiteStore) callsValidation() storagetesting.CallsValidation {
	return func(t *testing.T, _, estimatedProcessedObjects uint64) {
		if reads := s.reads.reads.Swap(0); reads != estimatedProcessedObjects {
			t.Errorf("decrypted %d objects, want %d", reads, estimatedProcessedObjects)
		}
	}
}

// TestStorageSuites runs k8s.io/apiserver's storage test suites against the
// etcd3 store with Capstan's encryption transformer and JSON codec, with and
// without the watch cache (Cacher) in front.
func TestStorageSuites(t *testing.T) {
	env := newSuiteEnv(t)
	ctx := context.Background()
	for _, cached := range []bool{false, true} {
		name := "etcd3"
		if cached {
			name = "cacher"
		}
		t.Run(name, func(t *testing.T) {
			run := func(name string, f func(t *testing.T, s *suiteStore)) {
				t.Run(name, func(t *testing.T) { f(t, env.newStore(t, cached, false)) })
			}
			run("Create", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestCreate(ctx, t, s, s.keyValidation())
			})
			run("CreateWithTTL", func(t *testing.T, s *suiteStore) { storagetesting.RunTestCreateWithTTL(ctx, t, s) })
			run("CreateWithKeyExist", func(t *testing.T, s *suiteStore) { storagetesting.RunTestCreateWithKeyExist(ctx, t, s) })
			run("Get", func(t *testing.T, s *suiteStore) { storagetesting.RunTestGet(ctx, t, s) })
			run("UnconditionalDelete", func(t *testing.T, s *suiteStore) { storagetesting.RunTestUnconditionalDelete(ctx, t, s) })
			run("ConditionalDelete", func(t *testing.T, s *suiteStore) { storagetesting.RunTestConditionalDelete(ctx, t, s) })
			run("DeleteWithSuggestion", func(t *testing.T, s *suiteStore) { storagetesting.RunTestDeleteWithSuggestion(ctx, t, s) })
			run("DeleteWithSuggestionAndConflict", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestDeleteWithSuggestionAndConflict(ctx, t, s)
			})
			run("DeleteWithConflict", func(t *testing.T, s *suiteStore) { storagetesting.RunTestDeleteWithConflict(ctx, t, s) })
			run("DeleteWithSuggestionOfDeletedObject", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestDeleteWithSuggestionOfDeletedObject(ctx, t, s)
			})
			run("ValidateDeletionWithSuggestion", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestValidateDeletionWithSuggestion(ctx, t, s)
			})
			run("ValidateDeletionWithOnlySuggestionValid", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestValidateDeletionWithOnlySuggestionValid(ctx, t, s)
			})
			run("PreconditionalDeleteWithSuggestion", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestPreconditionalDeleteWithSuggestion(ctx, t, s)
			})
			run("PreconditionalDeleteWithOnlySuggestionPass", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestPreconditionalDeleteWithOnlySuggestionPass(ctx, t, s)
			})
			run("DeleteWithSuggestionAndMissingExpectedTransformOrDecodeError", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestDeleteWithSuggestionAndMissingExpectedTransformOrDecodeError(ctx, t, s)
			})
			run("ListPaging", func(t *testing.T, s *suiteStore) { storagetesting.RunTestListPaging(ctx, t, s) })
			run("GetListNonRecursive", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestGetListNonRecursive(ctx, t, s.increaseRV(), s)
			})
			run("GetListRecursivePrefix", func(t *testing.T, s *suiteStore) { storagetesting.RunTestGetListRecursivePrefix(ctx, t, s) })
			run("NamespaceScopedList", func(t *testing.T, s *suiteStore) { storagetesting.RunTestNamespaceScopedList(ctx, t, s) })
			run("KeySchema", func(t *testing.T, s *suiteStore) { storagetesting.RunTestKeySchema(ctx, t, s) })
			run("GuaranteedUpdateWithTTL", func(t *testing.T, s *suiteStore) { storagetesting.RunTestGuaranteedUpdateWithTTL(ctx, t, s) })
			run("GuaranteedUpdateWithConflict", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestGuaranteedUpdateWithConflict(ctx, t, s)
			})
			run("GuaranteedUpdateWithSuggestionAndConflict", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestGuaranteedUpdateWithSuggestionAndConflict(ctx, t, s)
			})
			run("ConsistentList", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestConsistentList(ctx, t, s, s.increaseRV(), cached, true,
					cached && utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot))
			})
			run("Watch", func(t *testing.T, s *suiteStore) { storagetesting.RunTestWatch(ctx, t, s) })
			run("DeleteTriggerWatch", func(t *testing.T, s *suiteStore) { storagetesting.RunTestDeleteTriggerWatch(ctx, t, s) })
			run("WatchFromNonZero", func(t *testing.T, s *suiteStore) { storagetesting.RunTestWatchFromNonZero(ctx, t, s) })
			run("DelayedWatchDelivery", func(t *testing.T, s *suiteStore) { storagetesting.RunTestDelayedWatchDelivery(ctx, t, s) })
			run("WatcherTimeout", func(t *testing.T, s *suiteStore) { storagetesting.RunTestWatcherTimeout(ctx, t, s) })
			run("WatchDeleteEventObjectHaveLatestRV", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV(ctx, t, s)
			})
			run("WatchInitializationSignal", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestWatchInitializationSignal(ctx, t, s)
			})
			run("NamespaceScopedWatch", func(t *testing.T, s *suiteStore) { storagetesting.RunTestNamespaceScopedWatch(ctx, t, s) })
			t.Run("ClusterScopedWatch", func(t *testing.T) {
				storagetesting.RunTestClusterScopedWatch(ctx, t, env.newStore(t, cached, true))
			})
			run("WatchDispatchBookmarkEvents", func(t *testing.T, s *suiteStore) {
				storagetesting.RunTestWatchDispatchBookmarkEvents(ctx, t, s, cached)
			})
			run("SendInitialEventsBackwardCompatibility", func(t *testing.T, s *suiteStore) {
				storagetesting.RunSendInitialEventsBackwardCompatibility(ctx, t, s)
			})
			if !cached {
				run("WatchContextCancel", func(t *testing.T, s *suiteStore) { storagetesting.RunTestWatchContextCancel(ctx, t, s) })
				run("WatchSemantics", func(t *testing.T, s *suiteStore) { storagetesting.RunWatchSemantics(ctx, t, s) })
				run("WatchSemanticInitialEventsExtended", func(t *testing.T, s *suiteStore) {
					storagetesting.RunWatchSemanticInitialEventsExtended(ctx, t, s)
				})
				run("WatchListMatchSingle", func(t *testing.T, s *suiteStore) { storagetesting.RunWatchListMatchSingle(ctx, t, s) })
				run("ListContinuation", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestListContinuation(ctx, t, s, s.callsValidation())
				})
				run("ListPaginationRareObject", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestListPaginationRareObject(ctx, t, s, s.callsValidation())
				})
				run("ListContinuationWithFilter", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestListContinuationWithFilter(ctx, t, s, s.callsValidation())
				})
				run("Stats", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestStats(ctx, t, s, apitesting.TestCodec(suiteCodecs, examplev1.SchemeGroupVersion), s.reads, false)
				})
				// Compaction is global to an etcd, and the API server keeps one
				// compactor per endpoint per process: each of these gets its own etcd.
				runFresh := func(name string, f func(t *testing.T, s *suiteStore)) {
					t.Run(name, func(t *testing.T) { f(t, newSuiteEnv(t).newStore(t, false, false)) })
				}
				runFresh("WatchFromZero", func(t *testing.T, s *suiteStore) { storagetesting.RunTestWatchFromZero(ctx, t, s, s.compaction()) })
				runFresh("ListInconsistentContinuation", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestListInconsistentContinuation(ctx, t, s, s.compaction())
				})
				runFresh("CompactRevision", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestCompactRevision(ctx, t, s, s.increaseRV(), s.compaction())
				})
				// Without the watch cache the recorder of etcd list calls is not consulted.
				runFresh("List", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestList(ctx, t, s, s.compaction(), false, nil)
				})
			} else {
				run("OptionalWatchBookmarksWithCorrectResourceVersion", func(t *testing.T, s *suiteStore) {
					storagetesting.RunTestOptionalWatchBookmarksWithCorrectResourceVersion(ctx, t, s)
				})
			}
		})
	}
}
