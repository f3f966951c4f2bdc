package reliability

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
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

// TestHistoryChecker checks that the linearizability checker tells good
// histories from bad ones, with writes of unknown outcome either way.
func TestHistoryChecker(t *testing.T) {
	type step struct {
		client      int
		write       bool
		value       string
		call, ret   int64 // ret 0: unknown outcome
		resultValue string
		resultRev   int64
	}
	w := func(c int, v string, call, ret, rev int64) step {
		return step{client: c, write: true, value: v, call: call, ret: ret, resultValue: v, resultRev: rev}
	}
	r := func(c int, call, ret int64, v string, rev int64) step {
		return step{client: c, call: call, ret: ret, resultValue: v, resultRev: rev}
	}
	cases := []struct {
		name  string
		steps []step
		want  porcupine.CheckResult
	}{
		{"sequential writes and reads", []step{w(0, "a", 1, 2, 1), r(1, 3, 4, "a", 1), w(0, "b", 5, 6, 2), r(1, 7, 8, "b", 2)}, porcupine.Ok},
		{"concurrent read may see either", []step{w(0, "a", 1, 2, 1), w(0, "b", 3, 10, 2), r(1, 4, 5, "a", 1), r(1, 6, 7, "b", 2)}, porcupine.Ok},
		{"stale read after an acknowledged write", []step{w(0, "a", 1, 2, 1), w(0, "b", 3, 4, 2), r(1, 5, 6, "a", 1)}, porcupine.Illegal},
		{"acknowledged write lost", []step{w(0, "a", 1, 2, 1), w(1, "b", 3, 4, 2), r(2, 5, 6, "a", 2)}, porcupine.Illegal},
		{"revision skipped", []step{w(0, "a", 1, 2, 1), w(0, "b", 3, 4, 3)}, porcupine.Illegal},
		{"unknown write that happened", []step{w(0, "a", 1, 2, 1), {client: 1, write: true, value: "b", call: 3}, r(2, 10, 11, "b", 2)}, porcupine.Ok},
		{"unknown write that did not happen", []step{w(0, "a", 1, 2, 1), {client: 1, write: true, value: "b", call: 3}, r(2, 10, 11, "a", 1)}, porcupine.Ok},
		{"unknown write read before it was called", []step{w(0, "a", 1, 2, 1), r(2, 3, 4, "b", 2), {client: 1, write: true, value: "b", call: 5}}, porcupine.Illegal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ops []porcupine.Operation
			for _, s := range tc.steps {
				in := harness.RegisterOp{Key: "k", Write: s.write, Value: s.value}
				out := harness.RegisterResult{Register: harness.Register{Value: s.resultValue, Revision: s.resultRev}}
				ret := s.ret
				if ret == 0 {
					out, ret = harness.RegisterResult{Unknown: true}, math.MaxInt64
				}
				ops = append(ops, porcupine.Operation{ClientId: s.client, Input: in, Call: s.call, Output: out, Return: ret})
			}
			if got := porcupine.CheckOperationsTimeout(harness.RegisterModel, ops, 10*time.Second); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
