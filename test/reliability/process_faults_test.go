package reliability

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	restclient "k8s.io/client-go/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/reliability/harness"
	"capstan.dev/capstan/test/utils/etcdread"
)

// TestCapstanKilledUnderLoad: SIGKILL mid-load and a restart on the same data.
// Requests in flight die with the process (unknown outcomes); afterwards every
// acknowledged write is present, the history is linearizable, and each
// ConfigSet's revisions run from 1 to its current one. Every etcd round trip
// is slowed while the process is killed, so that writes are in flight at each
// kill; since a change and its revision are one etcd transaction, etcd never
// holds a ConfigSet whose current revision is missing, not even before the
// restart.
func TestCapstanKilledUnderLoad(t *testing.T) {
	const kills = 3
	etcd := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true})
	proxy := harness.StartProxy(t, etcd.Addr())
	capstan := harness.StartCapstan(t, harness.CapstanOptions{
		EtcdServers: []string{proxy.Endpoint()},
		Args:        []string{"--request-timeout=" + faultRequestTimeout.String(), "--history-repair-grace-period=2s"},
	})
	cfg, err := capstan.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	raw := etcd.Client(t)
	encryption := filepath.Join(capstan.DataDir(), "encryption-config.yaml")
	l := newLoad(t, loadOptions{namespace: "sigkill", requestTimeout: faultRequestTimeout, configs: []*restclient.Config{cfg},
		refusedExpected: true, brokenExpected: true})
	l.Start()
	time.Sleep(5 * time.Second)

	for kill := 1; kill <= kills; kill++ {
		proxy.SetLatency(300 * time.Millisecond)
		time.Sleep(time.Second)
		before := l.Acked()
		killedAt := time.Now()
		capstan.Kill()
		// Writes the proxy still holds for the dead process never reach etcd.
		proxy.SetMode(harness.Reset)
		missing := missingCurrentRevisions(context.Background(), t, raw, encryption, "sigkill", l.keptKeys())
		proxy.SetLatency(0)
		proxy.SetMode(harness.Pass)
		if len(missing) > 0 {
			t.Errorf("kill %d: etcd holds ConfigSets whose current revision is missing: %v", kill, missing)
		}
		if err := capstan.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d after %d acknowledged writes: %d current revisions missing in etcd; ready again %v after SIGKILL",
			kill, before, len(missing), time.Since(killedAt).Round(time.Millisecond))
		time.Sleep(2 * time.Second)
	}
	time.Sleep(5 * time.Second)
	l.Verify(context.Background(), t, cfg)
}

// missingCurrentRevisions reads etcd directly, once its revision stops
// moving, and returns the keys whose ConfigSet's current revision has no
// ConfigRevision.
func missingCurrentRevisions(ctx context.Context, t *testing.T, raw *clientv3.Client, encryption, ns string, keys []string) map[string]int64 {
	t.Helper()
	last := int64(-1)
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := raw.Get(ctx, "/", clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Revision == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("etcd's revision kept moving for 30s after Capstan was killed")
		}
		last = resp.Header.Revision
		time.Sleep(200 * time.Millisecond)
	}
	missing := map[string]int64{}
	for _, k := range keys {
		key := configSetKeyPrefix + ns + "/" + k
		cs, err := decryptConfigSet(ctx, encryption, key, etcdread.MustGet(t, raw, key))
		if err != nil {
			t.Fatalf("reading %s from etcd: %v", key, err)
		}
		name := config.RevisionName(k, cs.Status.CurrentRevision)
		resp, err := raw.Get(ctx, "/registry/config.capstan.dev/configrevisions/"+ns+"/"+name, clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 0 {
			missing[k] = cs.Status.CurrentRevision
		}
	}
	return missing
}

// TestCapstanGracefulShutdown: SIGTERM with --shutdown-delay-duration while
// requests (slowed by latency on the etcd connection) and watches are in
// flight. /readyz fails before the listener closes, every request in flight
// at SIGTERM finishes with success, the process exits 0 in bounded time, and
// after a restart nothing acknowledged is missing.
func TestCapstanGracefulShutdown(t *testing.T) {
	const shutdownDelay = 5 * time.Second
	etcd := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true})
	proxy := harness.StartProxy(t, etcd.Addr())
	capstan := harness.StartCapstan(t, harness.CapstanOptions{
		EtcdServers: []string{proxy.Endpoint()},
		Args: []string{
			"--request-timeout=" + faultRequestTimeout.String(),
			"--shutdown-delay-duration=" + shutdownDelay.String(),
			"--history-repair-grace-period=2s",
			"-v=2", // logs the graceful-termination events
		},
	})
	cfg, err := capstan.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	l := newLoad(t, loadOptions{namespace: "sigterm", requestTimeout: faultRequestTimeout, configs: []*restclient.Config{cfg},
		refusedExpected: true})
	l.Start()
	time.Sleep(3 * time.Second)

	// Every etcd round trip now takes 200 ms more, so a patch (read, write,
	// revision) takes about a second: these are in flight at SIGTERM.
	proxy.SetLatency(200 * time.Millisecond)
	c := *cfg
	c.QPS = -1
	c.Timeout = faultRequestTimeout + answerGrace
	sets := versioned.NewForConfigOrDie(&c).ConfigV1beta1().ConfigSets("sigterm")
	const inFlight = 8
	inFlightErrs := make([]error, inFlight)
	inFlightDone := make([]time.Time, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			patch := fmt.Sprintf(`{"metadata":{"labels":{"in-flight":"%d"}}}`, i)
			_, inFlightErrs[i] = sets.Patch(context.Background(), fmt.Sprintf("key-%02d", i), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			inFlightDone[i] = time.Now()
		}()
	}
	time.Sleep(300 * time.Millisecond)

	termAt := time.Now()
	var readyFalse, listenerClosed time.Time
	if err := capstan.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := capstan.Exited()
	for done := false; !done; {
		select {
		case <-exited:
			done = true
			continue
		default:
		}
		if readyFalse.IsZero() {
			if code, err := capstan.Readyz(); err == nil && code != http.StatusOK {
				readyFalse = time.Now()
			}
		}
		if listenerClosed.IsZero() {
			if conn, err := net.DialTimeout("tcp", capstan.Addr(), time.Second); err != nil {
				listenerClosed = time.Now()
			} else {
				conn.Close()
			}
		}
		if time.Since(termAt) > shutdownDelay+faultRequestTimeout+30*time.Second {
			t.Fatalf("still running %v after SIGTERM", time.Since(termAt).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	exitedAfter := time.Since(termAt)
	wg.Wait()
	proxy.SetLatency(0)

	t.Logf("after SIGTERM: /readyz failing at %v, listener closed at %v, exited (code %d) at %v",
		readyFalse.Sub(termAt).Round(time.Millisecond), listenerClosed.Sub(termAt).Round(time.Millisecond),
		capstan.ExitCode(), exitedAfter.Round(time.Millisecond))
	switch {
	case readyFalse.IsZero():
		t.Errorf("/readyz never failed before the process exited")
	case listenerClosed.IsZero():
		t.Errorf("the listener never closed before the process exited")
	case !readyFalse.Before(listenerClosed):
		t.Errorf("/readyz failed at %v, not before the listener closed at %v", readyFalse.Sub(termAt), listenerClosed.Sub(termAt))
	}
	if d := listenerClosed.Sub(termAt); !listenerClosed.IsZero() && d < shutdownDelay {
		t.Errorf("listener closed %v after SIGTERM, before the %v shutdown delay", d, shutdownDelay)
	}
	for _, line := range strings.Split(capstan.Tail(64<<10), "\n") {
		if strings.Contains(line, "graceful-termination") {
			t.Log(line)
		}
	}
	// The HTTP server waits for open connections (watches) up to the request
	// timeout after the shutdown delay: k8s.io/apiserver's ShutdownTimeout.
	if bound := shutdownDelay + faultRequestTimeout + answerGrace; exitedAfter > bound {
		t.Errorf("exited %v after SIGTERM, want within %v (delay + request timeout + %v)", exitedAfter, bound, answerGrace)
	}
	if code := capstan.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0 (log: %s)", code, capstan.Tail(2000))
	}
	finishedAfter := 0
	for i, err := range inFlightErrs {
		if err != nil {
			t.Errorf("request %d in flight at SIGTERM: %v", i, err)
		}
		if inFlightDone[i].After(termAt) {
			finishedAfter++
		}
	}
	t.Logf("%d of the %d patches sent before SIGTERM finished after it", finishedAfter, inFlight)
	if finishedAfter == 0 {
		t.Errorf("no patch was still in flight at SIGTERM: the test did not test draining")
	}

	if err := capstan.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	l.Verify(context.Background(), t, cfg)
}

// TestReplicasOnEtcdClusterLeaderKilled: two Capstan replicas on a 3-member
// etcd cluster, the load spread over both. Killing the etcd leader loses no
// acknowledged write, the history (across replicas) is linearizable, and a
// write through one replica is read through the other.
func TestReplicasOnEtcdClusterLeaderKilled(t *testing.T) {
	members := harness.StartEtcdCluster(t, 3, harness.EtcdOptions{UnsafeNoFsync: true})
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.Endpoint())
	}
	// Both replicas must read what the other encrypted.
	encryption := filepath.Join(t.TempDir(), "encryption.yaml")
	writeFile(t, encryption, encryptionConfig(aesgcmProvider("key1")))
	var replicas []*harness.Capstan
	var configs []*restclient.Config
	for range 2 {
		c := harness.StartCapstan(t, harness.CapstanOptions{
			EtcdServers: endpoints,
			Args: []string{"--request-timeout=" + faultRequestTimeout.String(), "--history-repair-grace-period=2s",
				"--encryption-provider-config=" + encryption},
		})
		cfg, err := c.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, c)
		configs = append(configs, cfg)
	}
	l := newLoad(t, loadOptions{namespace: "replicas", requestTimeout: faultRequestTimeout, configs: configs})
	l.Start()
	time.Sleep(5 * time.Second)

	ctx := context.Background()
	var leader *harness.Etcd
	for _, m := range members {
		if ok, err := m.IsLeader(ctx); err == nil && ok {
			leader = m
		}
	}
	if leader == nil {
		t.Fatal("no etcd member says it leads")
	}
	before := l.Acked()
	leader.Kill()
	killedAt := time.Now()
	time.Sleep(10 * time.Second)
	var newLeader string
	for _, m := range members {
		if m == leader {
			continue
		}
		if ok, err := m.IsLeader(ctx); err == nil && ok {
			newLeader = m.Name()
		}
	}
	t.Logf("killed leader %s after %d acknowledged writes; new leader %q; %d acknowledged in the 10s after", leader.Name(), before, newLeader, l.Acked()-before)
	if newLeader == "" {
		t.Errorf("no new leader 10s after killing %s", leader.Name())
	}
	if err := leader.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s back %v after it was killed", leader.Name(), time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	l.Verify(ctx, t, configs[0])

	// Read-your-writes across replicas.
	a := versioned.NewForConfigOrDie(configs[0]).ConfigV1beta1().ConfigSets("replicas")
	b := versioned.NewForConfigOrDie(configs[1]).ConfigV1beta1().ConfigSets("replicas")
	for i := range 20 {
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		value := fmt.Sprintf("cross-%d", i)
		patch := fmt.Sprintf(`{"spec":{"data":{%q:%q}}}`, loadValueKey, value)
		if _, err := from.Patch(ctx, "key-00", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := to.Get(ctx, "key-00", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.Data[loadValueKey] != value {
			t.Errorf("write %q through one replica, the other read %q", value, got.Spec.Data[loadValueKey])
		}
	}
}
