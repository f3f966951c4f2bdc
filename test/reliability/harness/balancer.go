package harness

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Balancer is a TCP load balancer on 127.0.0.1 in front of Capstan replicas,
// as a Service is: each new connection goes to the next replica, round-robin,
// among those whose /readyz answered 200 at the last probe (every 100 ms), as
// kube-proxy sends connections only to ready endpoints. Open connections stay
// where they are until either end closes them.
type Balancer struct {
	listener net.Listener
	backends []*Capstan
	ready    []atomic.Bool
	next     atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// StartBalancer listens on a free loopback port in front of backends; it is
// closed in t.Cleanup.
func StartBalancer(t testing.TB, backends ...*Capstan) *Balancer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{listener: l, backends: backends, ready: make([]atomic.Bool, len(backends)), stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	b.probeAll()
	b.wg.Add(2)
	go b.probe()
	go b.accept()
	t.Cleanup(b.Close)
	return b
}

// Addr is the balancer's host:port.
func (b *Balancer) Addr() string { return b.listener.Addr().String() }

// Ready reports whether backend i passed its last readiness probe.
func (b *Balancer) Ready(i int) bool { return b.ready[i].Load() }

// Close stops the balancer and closes every connection.
func (b *Balancer) Close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	b.listener.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Balancer) probe() {
	defer b.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			b.probeAll()
		}
	}
}

func (b *Balancer) probeAll() {
	for i, c := range b.backends {
		code, err := c.Readyz()
		b.ready[i].Store(err == nil && code == http.StatusOK)
	}
}

// pick returns the next ready backend's address.
func (b *Balancer) pick() (string, bool) {
	start := b.next.Add(1)
	for j := range uint64(len(b.backends)) {
		i := (start + j) % uint64(len(b.backends))
		if b.ready[i].Load() {
			return b.backends[i].Addr(), true
		}
	}
	return "", false
}

func (b *Balancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.listener.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.serve(c)
	}
}

func (b *Balancer) serve(client net.Conn) {
	defer b.wg.Done()
	defer client.Close()
	addr, ok := b.pick()
	if !ok {
		return
	}
	upstream, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer upstream.Close()
	b.track(client, upstream)
	defer b.untrack(client, upstream)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, upstream); done <- struct{}{} }()
	<-done
}

func (b *Balancer) track(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		b.conns[c] = struct{}{}
	}
}

func (b *Balancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		delete(b.conns, c)
	}
}
