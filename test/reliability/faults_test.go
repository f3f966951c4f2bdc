package reliability

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	restclient "k8s.io/client-go/rest"

	"capstan.dev/capstan/test/reliability/harness"
)

// faultRequestTimeout is the --request-timeout of the servers under fault:
// shorter than the 60 s default so that failures show within a test's budget.
const faultRequestTimeout = 10 * time.Second

// readyzProbe polls /readyz every 200 ms and keeps the answers.
type readyzProbe struct {
	capstan *harness.Capstan
	stop    chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	samples []readyzSample
}

type readyzSample struct {
	at   time.Time
	code int // 0: no answer
}

func startReadyzProbe(t *testing.T, c *harness.Capstan) *readyzProbe {
	p := &readyzProbe{capstan: c, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			code, _ := c.Readyz()
			p.mu.Lock()
			p.samples = append(p.samples, readyzSample{at: time.Now(), code: code})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(p.Stop)
	return p
}

func (p *readyzProbe) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// firstAfter returns the time of the first sample at or after from for which
// match is true.
func (p *readyzProbe) firstAfter(from time.Time, match func(code int) bool) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.samples {
		if !s.at.Before(from) && match(s.code) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// waitReady waits until /readyz has answered 200 since from.
func (p *readyzProbe) waitReady(from time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if at, ok := p.firstAfter(from, func(code int) bool { return code == http.StatusOK }); ok {
			return at, true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, false
}

// etcdFault is one way of taking etcd away from Capstan and giving it back.
type etcdFault struct {
	name     string
	duration time.Duration
	inject   func(t *testing.T, etcd *harness.Etcd, proxy *harness.Proxy)
	heal     func(t *testing.T, etcd *harness.Etcd, proxy *harness.Proxy)
}

// TestEtcdFaultsUnderLoad takes etcd away under a steady load of 8 clients and
// 2 watchers: killed for 20 s and restarted on its data, paused (SIGSTOP) for
// 30 s, and its connection blackholed for 45 s by the proxy Capstan dials it
// through. Requests answer within the request timeout, /readyz fails within
// 5 s and recovers within 30 s of etcd's return, watchers resume or relist,
// the history is linearizable, and every acknowledged write is present with
// its revision.
func TestEtcdFaultsUnderLoad(t *testing.T) {
	faults := []etcdFault{
		{
			name: "etcd killed 20s", duration: 20 * time.Second,
			inject: func(t *testing.T, etcd *harness.Etcd, _ *harness.Proxy) { etcd.Kill() },
			heal: func(t *testing.T, etcd *harness.Etcd, _ *harness.Proxy) {
				if err := etcd.Restart(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "etcd paused 30s", duration: 30 * time.Second,
			inject: func(t *testing.T, etcd *harness.Etcd, _ *harness.Proxy) {
				if err := etcd.Pause(); err != nil {
					t.Fatal(err)
				}
			},
			heal: func(t *testing.T, etcd *harness.Etcd, _ *harness.Proxy) {
				if err := etcd.Resume(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "etcd blackholed 45s", duration: 45 * time.Second,
			inject: func(t *testing.T, _ *harness.Etcd, proxy *harness.Proxy) { proxy.SetMode(harness.Blackhole) },
			heal:   func(t *testing.T, _ *harness.Etcd, proxy *harness.Proxy) { proxy.SetMode(harness.Pass) },
		},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
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
			probe := startReadyzProbe(t, capstan)
			l := newLoad(t, loadOptions{namespace: "faults", requestTimeout: faultRequestTimeout, configs: []*restclient.Config{cfg}})
			l.Start()
			time.Sleep(5 * time.Second)

			faultAt := time.Now()
			f.inject(t, etcd, proxy)
			time.Sleep(f.duration)
			f.heal(t, etcd, proxy)
			healedAt := time.Now()

			down, ok := probe.firstAfter(faultAt, func(code int) bool { return code != http.StatusOK })
			if !ok || down.After(healedAt) {
				t.Errorf("/readyz never failed during the %v fault", f.duration)
			} else if d := down.Sub(faultAt); d > 5*time.Second {
				t.Errorf("/readyz failed %v after the fault began, want within 5s", d.Round(time.Millisecond))
			} else {
				t.Logf("/readyz failed %v after the fault began", d.Round(time.Millisecond))
			}
			up, ok := probe.waitReady(healedAt, 30*time.Second)
			if !ok {
				t.Fatalf("/readyz did not recover within 30s of etcd's return (log: %s)", capstan.Tail(3000))
			}
			t.Logf("/readyz recovered %v after etcd returned", up.Sub(healedAt).Round(time.Millisecond))

			// Load carries on after recovery before it is checked.
			time.Sleep(10 * time.Second)
			probe.Stop()
			l.Verify(context.Background(), t, cfg)
		})
	}
}
