package reliability

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"capstan.dev/capstan/test/reliability/harness"
)

// TestHarness checks the fault tools do what the fault tests rely on: the
// proxy's modes and etcd's kill, pause and restart on its data.
func TestHarness(t *testing.T) {
	etcd := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true})
	proxy := harness.StartProxy(t, etcd.Addr())
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func(timeout time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		_, err := c.Get(ctx, "k")
		return time.Since(start), err
	}
	expectOK := func(what string) {
		t.Helper()
		var err error
		for i := 0; i < 50; i++ {
			if _, err = get(2 * time.Second); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: %v", what, err)
	}
	expectFail := func(what string) {
		t.Helper()
		if d, err := get(time.Second); err == nil {
			t.Fatalf("%s: read succeeded in %v, want a failure", what, d)
		}
	}
	if _, err := c.Put(context.Background(), "k", "survives"); err != nil {
		t.Fatal(err)
	}
	expectOK("pass")

	proxy.SetMode(harness.Blackhole)
	expectFail("blackhole")
	proxy.SetMode(harness.Pass)
	expectOK("pass after blackhole")

	proxy.SetMode(harness.Reset)
	expectFail("reset")
	proxy.SetMode(harness.Pass)
	expectOK("pass after reset")

	proxy.SetLatency(300 * time.Millisecond)
	if d, err := get(5 * time.Second); err != nil || d < 300*time.Millisecond {
		t.Errorf("latency 300ms: read took %v (err %v), want at least 300ms", d, err)
	}
	proxy.SetLatency(0)

	if err := etcd.Pause(); err != nil {
		t.Fatal(err)
	}
	expectFail("etcd paused")
	if err := etcd.Resume(); err != nil {
		t.Fatal(err)
	}
	expectOK("etcd resumed")

	pid := etcd.PID()
	etcd.Kill()
	expectFail("etcd killed")
	if err := etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	if etcd.PID() == pid || etcd.PID() == 0 {
		t.Errorf("restart kept pid %d", pid)
	}
	expectOK("etcd restarted")
	resp, err := c.Get(context.Background(), "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "survives" {
		t.Errorf("after restart on the same data: %v %v, want k=survives", resp, err)
	}
}
