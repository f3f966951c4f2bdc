package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"capstan.dev/capstan/test/utils/ports"
	"capstan.dev/capstan/test/utils/process"
)

// etcdQuota is the backend quota of every etcd the bench starts (8 GiB), so
// that no workload runs into the default 2 GiB.
const etcdQuota = "8589934592"

// startEtcd starts an etcd the way every apiserver in the bench gets one:
// plain HTTP on 127.0.0.1, no fsync (the measurement rules of docs/design.md),
// 8 GiB quota.
func startEtcd(ctx context.Context, bin, dir, name string) (*process.Process, string, error) {
	ports, err := ports.FreeN(2)
	if err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	p, err := startProcess(name, filepath.Join(dir, "logs", name+".log"), []string{bin,
		"--name=" + name,
		"--data-dir=" + filepath.Join(dir, name),
		"--listen-client-urls=" + url,
		"--advertise-client-urls=" + url,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + name + "=" + peer,
		"--unsafe-no-fsync",
		"--quota-backend-bytes=" + etcdQuota,
		"--log-level=warn",
	})
	if err != nil {
		return nil, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = p.WaitReady(wctx, func(ctx context.Context) error {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s/health: %s", url, resp.Status)
		}
		return nil
	})
	if err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, "", err
	}
	return p, url, nil
}

// mvccCounters reads etcd's mvcc counters from its /metrics.
func mvccCounters(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range []string{"etcd_mvcc_put_total", "etcd_mvcc_txn_total", "etcd_mvcc_delete_total", "etcd_mvcc_range_total"} {
			if strings.HasPrefix(line, m+" ") {
				v, _ := strconv.ParseFloat(strings.TrimSpace(line[len(m):]), 64)
				out[strings.TrimSuffix(strings.TrimPrefix(m, "etcd_mvcc_"), "_total")] = v
			}
		}
	}
	return out, sc.Err()
}

// etcdSystem is E: the floor, etcd driven with the etcd client the way an
// apiserver's storage layer drives it, with the bytes an apiserver stores.
type etcdSystem struct {
	proc   *process.Process
	url    string
	client *clientv3.Client
	// revs are the mod revisions of the keys, for compare-and-swap updates.
	revs sync.Map
}

const etcdPrefix = "/registry/config.capstan.dev/configsets/"

func newEtcdSystem(ctx context.Context, bin, dir string) (*etcdSystem, error) {
	p, url, err := startEtcd(ctx, bin, dir, "etcd-E")
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, err
	}
	return &etcdSystem{proc: p, url: url, client: c}, nil
}

func (e *etcdSystem) name() string { return "E" }
func (e *etcdSystem) settings() Settings {
	return Settings{
		Path:           "client → etcd",
		Server:         "etcd alone: the bytes an API server would store, put and read with etcd's Go client",
		Authentication: "none",
		Etcd:           plainEtcd,
		Encryption:     "identity",
		WireFormat:     "etcd's gRPC",
		Objects:        objectsShape,
		Client:         "etcd's clientv3",
	}
}
func (e *etcdSystem) serverPIDs() []int          { return []int{e.proc.PID} }
func (e *etcdSystem) etcdPIDs() []int            { return nil }
func (e *etcdSystem) memoryPID() int             { return e.proc.PID }
func (e *etcdSystem) key(ns, name string) string { return etcdPrefix + ns + "/" + name }

func (e *etcdSystem) etcdCounters(ctx context.Context) (map[string]float64, error) {
	return mvccCounters(ctx, http.DefaultClient, e.url)
}

func (e *etcdSystem) prepare(context.Context, []string) error { return nil }

// create is the create-if-absent transaction of the apiserver's etcd3 store.
func (e *etcdSystem) create(ctx context.Context, ns, name string, i int, shape entryShape) error {
	v, err := storedValue(ns, name, i, shape)
	if err != nil {
		return err
	}
	k := e.key(ns, name)
	resp, err := e.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(v))).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s already exists", k)
	}
	e.revs.Store(k, resp.Header.Revision)
	return nil
}

// get is a linearizable get, or a serializable one for resourceVersion=0.
func (e *etcdSystem) get(ctx context.Context, ns, name string, fromCache bool) error {
	var opts []clientv3.OpOption
	if fromCache {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := e.client.Get(ctx, e.key(ns, name), opts...)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%s not found", e.key(ns, name))
	}
	return nil
}

// update is the compare-and-swap transaction of the etcd3 store's
// GuaranteedUpdate, with the send time in the value.
func (e *etcdSystem) update(ctx context.Context, ns, name string, i, round int) error {
	v, err := storedValue(ns, name, i+round, smallShape)
	if err != nil {
		return err
	}
	k := e.key(ns, name)
	s := strings.Replace(string(v), `"metadata":{`, fmt.Sprintf(`"metadata":{"annotations":{%q:"%d"},`, sentAnnotation, time.Now().UnixNano()), 1)
	var rev int64
	if r, ok := e.revs.Load(k); ok {
		rev = r.(int64)
	}
	resp, err := e.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpPut(k, s)).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: conflict", k)
	}
	e.revs.Store(k, resp.Header.Revision)
	return nil
}

func (e *etcdSystem) patch(ctx context.Context, ns, name string, i, round int) error {
	return e.update(ctx, ns, name, i, round)
}

func (e *etcdSystem) apply(context.Context, string, string, int, int) error { return errUnsupported }

// list ranges over the prefix, linearizably, in pages when limit > 0.
func (e *etcdSystem) list(ctx context.Context, ns, selector string, limit int64) (int, error) {
	if selector != "" {
		return 0, errUnsupported
	}
	prefix := etcdPrefix
	if ns != "" {
		prefix += ns + "/"
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	if limit <= 0 {
		resp, err := e.client.Get(ctx, prefix, clientv3.WithRange(end))
		if err != nil {
			return 0, err
		}
		return len(resp.Kvs), nil
	}
	n := 0
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(limit)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := e.client.Get(ctx, from, opts...)
		if err != nil {
			return n, err
		}
		rev = resp.Header.Revision
		n += len(resp.Kvs)
		if !resp.More || len(resp.Kvs) == 0 {
			return n, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (e *etcdSystem) watch(ctx context.Context, ns string, onEvent func(sent int64)) error {
	// A context of its own gives each watcher its own gRPC watch stream, as
	// separate clients would have.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	ch := e.client.Watch(wctx, etcdPrefix+ns+"/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	select {
	case r, ok := <-ch:
		if !ok || r.Err() != nil {
			cancel()
			return fmt.Errorf("etcd watch: %v", r.Err())
		}
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	}
	go func() {
		defer cancel()
		var obj struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		for r := range ch {
			for _, ev := range r.Events {
				if ev.Type != clientv3.EventTypePut || !ev.IsModify() {
					continue
				}
				obj.Metadata.Annotations = nil
				if json.Unmarshal(ev.Kv.Value, &obj) != nil {
					continue
				}
				if s, err := strconv.ParseInt(obj.Metadata.Annotations[sentAnnotation], 10, 64); err == nil {
					onEvent(s)
				}
			}
		}
	}()
	return nil
}

func (e *etcdSystem) informers(context.Context, int) error { return errUnsupported }

func (e *etcdSystem) deleteAll(ctx context.Context, ns string) error {
	_, err := e.client.Delete(ctx, etcdPrefix+ns+"/", clientv3.WithPrefix())
	return err
}

func (e *etcdSystem) profile(context.Context, int) map[string][]byte { return nil }

func (e *etcdSystem) stop() {
	e.client.Close()
	_ = e.proc.Stop(10 * time.Second)
}
