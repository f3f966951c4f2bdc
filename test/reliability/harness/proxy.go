package harness

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ProxyMode is what the proxy does with traffic.
type ProxyMode int32

const (
	// Pass forwards bytes both ways.
	Pass ProxyMode = iota
	// Blackhole accepts connections but delivers nothing either way, as in a
	// network partition: bytes are held (TCP backs up) until the mode changes,
	// so a connection healed before its peer gives up carries on.
	Blackhole
	// Reset closes every open connection and each new one at once.
	Reset
)

// Proxy is a TCP proxy on 127.0.0.1 that injects faults between a client and
// a target.
type Proxy struct {
	target   string
	listener net.Listener
	mode     atomic.Int32
	latency  atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards to target; it is
// closed in t.Cleanup.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, listener: l, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// Endpoint is the proxy as an http URL, for --etcd-servers.
func (p *Proxy) Endpoint() string { return "http://" + p.Addr() }

// SetMode switches the fault; Reset also closes every open connection.
func (p *Proxy) SetMode(m ProxyMode) {
	p.mode.Store(int32(m))
	if m == Reset {
		p.closeConns()
	}
}

// SetLatency delays every forwarded chunk by d (0 for none).
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	// Releases pipes held by Blackhole.
	p.mode.Store(int32(Reset))
	p.listener.Close()
	p.closeConns()
	p.wg.Wait()
}

func (p *Proxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.listener.Accept()
		if err != nil {
			return
		}
		if ProxyMode(p.mode.Load()) == Reset {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.track(client)
	defer p.untrack(client)
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.track(upstream)
	defer p.untrack(upstream)
	done := make(chan struct{}, 2)
	go func() { p.pipe(upstream, client); done <- struct{}{} }()
	go func() { p.pipe(client, upstream); done <- struct{}{} }()
	<-done
}

func (p *Proxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			for ProxyMode(p.mode.Load()) == Blackhole {
				time.Sleep(10 * time.Millisecond)
			}
			if ProxyMode(p.mode.Load()) == Reset {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
