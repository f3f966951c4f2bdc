package reliability

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/storage/etcd3"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

func clientsetFor(t *testing.T, ts *capstantesting.TestServer) *versioned.Clientset {
	t.Helper()
	cfg := *ts.ClientConfig
	cfg.QPS = -1
	cs, err := versioned.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// etcdClient connects to a test server's embedded etcd with the server's
// client certificate.
func etcdClient(t *testing.T, ts *capstantesting.TestServer) *clientv3.Client {
	t.Helper()
	cfg, err := ts.EtcdClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialTimeout = 5 * time.Second
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcd client for %v: %v", ts.EtcdEndpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// compactToLatest compacts etcd to its current revision the way the API
// server's compactor does (through the compact_rev_key transaction) and
// returns that revision.
func compactToLatest(ctx context.Context, t *testing.T, c *clientv3.Client) int64 {
	t.Helper()
	resp, err := c.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.Header.Revision
	// The compare-and-swap on compact_rev_key fails without an error when
	// its version moved; retry with the version etcd reports.
	var version, compacted int64
	for i := 0; i < 5; i++ {
		version, _, compacted, err = etcd3.Compact(ctx, c, version, rev)
		if err == nil && compacted == rev {
			return rev
		}
	}
	t.Fatalf("compacting etcd to %d: %v", rev, err)
	return 0
}

func configSet(name string, data map[string]string) *v1beta1.ConfigSet {
	return &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1beta1.ConfigSetSpec{Data: data},
	}
}
