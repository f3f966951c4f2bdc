package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	clientscheme "capstan.dev/capstan/pkg/generated/clientset/versioned/scheme"
	configclient "capstan.dev/capstan/pkg/generated/clientset/versioned/typed/config/v1beta1"
	"capstan.dev/capstan/test/utils/process"
)

// pprofEndpoint is an API server whose /debug/pprof the bench can read.
type pprofEndpoint struct {
	role   string
	config *rest.Config
}

// kubeSystem is an API server serving ConfigSets: Capstan (O, O-agg) or the
// CRD (C). All three are driven through the same generated typed client; for
// the CRD it is built on a REST client for the CRD's group, so that client
// work is identical.
type kubeSystem struct {
	sysName    string
	apiVersion string
	client     configclient.ConfigV1beta1Interface
	// core creates namespaces; nil where there is no core API (local mode).
	core     kubernetes.Interface
	servers  []*pidRef
	etcds    []*pidRef
	memory   *pidRef
	etcdURL  string
	etcdHTTP *http.Client
	pprof    []pprofEndpoint
	stopFunc func()
	// config is what the system runs with, for the report.
	config  Settings
	objects sync.Map // ns/name → *ConfigSet, the latest seen, for updates
}

// pidRef names a process by role; the PID is looked up when read, because
// the cluster harness may restart a process.
type pidRef struct {
	role string
	pid  func() int
}

// pidOf is the pid of a process the bench started itself, which it never restarts.
func pidOf(p *process.Process) func() int { return func() int { return p.PID } }

func pids(refs []*pidRef) []int {
	var out []int
	for _, r := range refs {
		out = append(out, r.pid())
	}
	return out
}

// restConfigForBench turns client-side rate limits off, as for every system.
func restConfigForBench(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS = -1
	c.Burst = 0
	c.UserAgent = "capstan-bench"
	// JSON unless a system says otherwise: the generated clientset prefers
	// protobuf, which the CRD does not serve.
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	c.Timeout = 2 * time.Minute
	return c
}

// capstanClient is the generated clientset's typed client for Capstan.
func capstanClient(cfg *rest.Config) (configclient.ConfigV1beta1Interface, error) {
	return configclient.NewForConfig(restConfigForBench(cfg))
}

// capstanProtobufClient is the same client speaking protobuf, as the
// generated clientset does by default.
func capstanProtobufClient(cfg *rest.Config) (configclient.ConfigV1beta1Interface, error) {
	c := restConfigForBench(cfg)
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return configclient.NewForConfig(c)
}

// crdClient is the same typed client on the CRD's group: a scheme that knows
// the v1beta1 Go types under that group decodes the CRD's JSON into them.
func crdClient(cfg *rest.Config, gv schema.GroupVersion) (configclient.ConfigV1beta1Interface, error) {
	sch := runtime.NewScheme()
	sch.AddKnownTypes(gv, &configv1beta1.ConfigSet{}, &configv1beta1.ConfigSetList{})
	metav1.AddToGroupVersion(sch, gv)
	// The typed client encodes list, get and patch options with the
	// clientset's parameter codec, which must know them for this group too.
	metav1.AddToGroupVersion(clientscheme.Scheme, gv)
	codecs := serializer.NewCodecFactory(sch)
	c := restConfigForBench(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.NegotiatedSerializer = codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return configclient.New(rc), nil
}

func (k *kubeSystem) name() string               { return k.sysName }
func (k *kubeSystem) settings() Settings         { return k.config }
func (k *kubeSystem) serverPIDs() []int          { return pids(k.servers) }
func (k *kubeSystem) etcdPIDs() []int            { return pids(k.etcds) }
func (k *kubeSystem) memoryPID() int             { return k.memory.pid() }
func (k *kubeSystem) stop()                      { k.stopFunc() }
func (k *kubeSystem) key(ns, name string) string { return ns + "/" + name }

func (k *kubeSystem) etcdCounters(ctx context.Context) (map[string]float64, error) {
	return mvccCounters(ctx, k.etcdHTTP, k.etcdURL)
}

func (k *kubeSystem) prepare(ctx context.Context, namespaces []string) error {
	if k.core == nil {
		return nil
	}
	for _, ns := range namespaces {
		_, err := k.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

func (k *kubeSystem) create(ctx context.Context, ns, name string, i int, shape entryShape) error {
	out, err := k.client.ConfigSets(ns).Create(ctx, newConfigSet(k.apiVersion, ns, name, i, shape), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	k.objects.Store(k.key(ns, name), out)
	return nil
}

func (k *kubeSystem) get(ctx context.Context, ns, name string, fromCache bool) error {
	opts := metav1.GetOptions{}
	if fromCache {
		opts.ResourceVersion = "0"
	}
	_, err := k.client.ConfigSets(ns).Get(ctx, name, opts)
	return err
}

func (k *kubeSystem) update(ctx context.Context, ns, name string, i, round int) error {
	v, ok := k.objects.Load(k.key(ns, name))
	if !ok {
		cur, err := k.client.ConfigSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		v = cur
	}
	obj := v.(*configv1beta1.ConfigSet).DeepCopy()
	obj.APIVersion, obj.Kind = k.apiVersion, "ConfigSet"
	obj.Spec.Data["setting.000"] = value(fmt.Sprintf("u%d", round), smallShape.valueLen)
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[sentAnnotation] = strconv.FormatInt(time.Now().UnixNano(), 10)
	out, err := k.client.ConfigSets(ns).Update(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	k.objects.Store(k.key(ns, name), out)
	return nil
}

func (k *kubeSystem) patch(ctx context.Context, ns, name string, i, round int) error {
	body := fmt.Sprintf(`{"metadata":{"annotations":{%q:"%d"}},"spec":{"data":{"setting.001":%q}}}`,
		sentAnnotation, time.Now().UnixNano(), value(fmt.Sprintf("p%d", round), smallShape.valueLen))
	_, err := k.client.ConfigSets(ns).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
	return err
}

func (k *kubeSystem) apply(ctx context.Context, ns, name string, i, round int) error {
	body := fmt.Sprintf(`{"apiVersion":%q,"kind":"ConfigSet","metadata":{"name":%q,"namespace":%q},"spec":{"data":{"setting.002":%q}}}`,
		k.apiVersion, name, ns, value(fmt.Sprintf("a%d", round), smallShape.valueLen))
	force := true
	_, err := k.client.ConfigSets(ns).Patch(ctx, name, types.ApplyPatchType, []byte(body), metav1.PatchOptions{FieldManager: fieldManager + "-apply", Force: &force})
	return err
}

func (k *kubeSystem) list(ctx context.Context, ns, selector string, limit int64) (int, error) {
	n := 0
	opts := metav1.ListOptions{LabelSelector: selector, Limit: limit}
	for {
		l, err := k.client.ConfigSets(ns).List(ctx, opts)
		if err != nil {
			return n, err
		}
		n += len(l.Items)
		if l.Continue == "" {
			return n, nil
		}
		opts.Continue = l.Continue
	}
}

func (k *kubeSystem) watch(ctx context.Context, ns string, onEvent func(sent int64)) error {
	l, err := k.client.ConfigSets(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	w, err := k.client.ConfigSets(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		return err
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			cs, ok := ev.Object.(*configv1beta1.ConfigSet)
			if !ok {
				continue
			}
			if s, err := strconv.ParseInt(cs.Annotations[sentAnnotation], 10, 64); err == nil {
				onEvent(s)
			}
		}
	}()
	return nil
}

func (k *kubeSystem) informers(ctx context.Context, n int) error {
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	var synced []cache.InformerSynced
	for range n {
		inf := cache.NewSharedIndexInformer(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
				return k.client.ConfigSets("").List(ctx, opts)
			},
			WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
				return k.client.ConfigSets("").Watch(ctx, opts)
			},
		}, &configv1beta1.ConfigSet{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		go inf.RunWithContext(ictx)
		synced = append(synced, inf.HasSynced)
	}
	wctx, wcancel := context.WithTimeout(ictx, 5*time.Minute)
	defer wcancel()
	if !cache.WaitForCacheSync(wctx.Done(), synced...) {
		return fmt.Errorf("informers did not sync")
	}
	return nil
}

func (k *kubeSystem) deleteAll(ctx context.Context, ns string) error {
	err := k.client.ConfigSets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	if err != nil {
		return err
	}
	k.objects.Range(func(key, _ any) bool {
		k.objects.Delete(key)
		return true
	})
	// Deletion through the API is complete when the list is empty.
	return poll(ctx, "deletion in "+ns, func(ctx context.Context) error {
		n, err := k.list(ctx, ns, "", 0)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%d objects left in %s", n, ns)
		}
		return nil
	})
}

// profile reads a CPU profile of each API server in parallel.
func (k *kubeSystem) profile(ctx context.Context, seconds int) map[string][]byte {
	out := map[string][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ep := range k.pprof {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, err := fetchProfile(ctx, ep.config, seconds)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out[ep.role] = []byte("error: " + err.Error())
				return
			}
			out[ep.role] = data
		}()
	}
	wg.Wait()
	return out
}

func fetchProfile(ctx context.Context, cfg *rest.Config, seconds int) ([]byte, error) {
	return fetchDebug(ctx, cfg, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), time.Duration(seconds+30)*time.Second)
}

// liveHeapMiB is the heap of the process that holds the objects, right after
// a garbage collection: what its objects keep alive, without the garbage and
// freed pages that RSS still counts after a burst of writes. The heap
// profile's text form ends with runtime.MemStats read after the forced GC.
func (k *kubeSystem) liveHeapMiB(ctx context.Context) (float64, error) {
	ep, err := k.memoryEndpoint()
	if err != nil {
		return 0, err
	}
	data, err := fetchDebug(ctx, ep.config, "/debug/pprof/heap?gc=1&debug=1", time.Minute)
	if err != nil {
		return 0, err
	}
	m := heapAllocLine.FindSubmatch(data)
	if m == nil {
		return 0, fmt.Errorf("no HeapAlloc in the heap profile of %s", ep.role)
	}
	bytes, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, err
	}
	return bytes / (1 << 20), nil
}

// heapProfile is the heap profile of the process that holds the objects, in
// the binary form `go tool pprof` reads. It describes the heap as of the
// last garbage collection, so taken right after liveHeapMiB's forced one it
// says where that live heap is held.
func (k *kubeSystem) heapProfile(ctx context.Context) (string, []byte, error) {
	ep, err := k.memoryEndpoint()
	if err != nil {
		return k.memory.role, nil, err
	}
	data, err := fetchDebug(ctx, ep.config, "/debug/pprof/heap", time.Minute)
	return ep.role, data, err
}

// memoryEndpoint is the debug endpoint of the process that holds the objects.
func (k *kubeSystem) memoryEndpoint() (pprofEndpoint, error) {
	i := slices.IndexFunc(k.pprof, func(e pprofEndpoint) bool { return e.role == k.memory.role })
	if i < 0 {
		return pprofEndpoint{}, fmt.Errorf("no /debug/pprof endpoint for %s", k.memory.role)
	}
	return k.pprof[i], nil
}

var heapAllocLine = regexp.MustCompile(`(?m)^# HeapAlloc = (\d+)$`)

func fetchDebug(ctx context.Context, cfg *rest.Config, path string, timeout time.Duration) ([]byte, error) {
	c := rest.CopyConfig(cfg)
	c.Timeout = timeout
	hc, err := rest.HTTPClientFor(c)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Host+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, data)
	}
	return data, nil
}

// tlsHTTPClient is an HTTP client with a TLS configuration, for etcd's /metrics.
func tlsHTTPClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// getsServed counts the gets of single objects of the objects' group, from
// anyone, that the server storing them has answered: apiserver_request_total
// with verb GET (lists and watches are LIST and WATCH), read from the server
// that holds the objects (the memory role: Capstan where there is one,
// otherwise kube-apiserver). The bench's write workloads get nothing, so what a
// write workload counts is other clients' gets, such as
// kube-controller-manager's garbage collector looking up owners and
// dependents.
func (k *kubeSystem) getsServed(ctx context.Context) (float64, bool) {
	ep, err := k.memoryEndpoint()
	if err != nil {
		return 0, false
	}
	data, err := fetchDebug(ctx, ep.config, "/metrics", 30*time.Second)
	if err != nil {
		return 0, false
	}
	group, _, _ := strings.Cut(k.apiVersion, "/")
	return sumRequests(string(data), group, "GET"), true
}

// sumRequests adds up apiserver_request_total in a Prometheus text exposition
// for one group and HTTP verb.
func sumRequests(metrics, group, verb string) float64 {
	var sum float64
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") ||
			!strings.Contains(line, `group="`+group+`"`) || !strings.Contains(line, `verb="`+verb+`"`) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}
