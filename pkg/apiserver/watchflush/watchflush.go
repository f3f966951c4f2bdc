// Package watchflush gathers the events of a busy watch into fewer writes to
// the connection.
//
// k8s.io/apiserver's watch handler flushes the response after every event it
// finds alone in the watcher's channel, so a watcher that receives 100 events
// a second costs 100 HTTP/2 DATA frames a second: each one handed to the
// connection's writer goroutine, encrypted and written on its own. Through the
// aggregator every frame is paid twice more: kube-apiserver's proxy reads it
// and writes it again to the client, flushing after every read. With 100
// watchers of one namespace at 100 changes a second that per-frame work, not
// the encoding (done once per event for all watchers), is what saturates the
// machine.
//
// This package limits the flushes of one watch response to one per interval:
// a flush that comes at least an interval after the previous one goes out at
// once, so an event after a quiet spell is never held back; one that comes
// sooner is deferred to an interval after the previous flush, and the events
// written meanwhile leave together, in one frame where they fit. An event waits
// at most an interval, and only when its watcher already had one within the
// last interval. The events, their order and their framing are unchanged: the
// stream carries the same bytes, in fewer writes.
package watchflush

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/endpoints/responsewriter"
)

// DefaultInterval is the shortest time between two flushes of one watch
// response by default: at 100 events a second a watcher's events leave in
// frames of about three, and an event waits at most this long.
const DefaultInterval = 25 * time.Millisecond

// errClosed is returned by writes after the handler has returned.
var errClosed = errors.New("watch response already finished")

// WithCoalescedFlushes limits the flushes of watch responses of group's
// resources to one per interval (none: interval ≤ 0). It must run after the
// request info is known (inside k8s.io/apiserver's handler chain). Websocket
// watches, which write whole messages to a hijacked connection, are left alone.
func WithCoalescedFlushes(h http.Handler, group string, interval time.Duration) http.Handler {
	if interval <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !takes(r, group) {
			h.ServeHTTP(w, r)
			return
		}
		fw := newWriter(w, interval)
		defer fw.finish()
		h.ServeHTTP(responsewriter.WrapForHTTP1Or2(fw), r)
	})
}

// takes reports whether r is a watch of group's resources over plain HTTP.
func takes(r *http.Request, group string) bool {
	info, ok := request.RequestInfoFrom(r.Context())
	if !ok || !info.IsResourceRequest || info.APIGroup != group || info.Verb != "watch" {
		return false
	}
	return !wsstream.IsWebSocketRequest(r)
}

// writer defers flushes; the handler's goroutine writes, a timer's flushes,
// so both go through mu.
type writer struct {
	inner    http.ResponseWriter
	flusher  http.Flusher
	interval time.Duration

	mu sync.Mutex
	// last is when inner was last flushed; zero before the first flush, which
	// (the response's headers) goes out at once.
	last time.Time
	// pending is set by a write not yet flushed.
	pending bool
	// timer, when armed, flushes at last+interval.
	timer *time.Timer
	armed bool
	// done is set once the handler has returned: inner is no longer ours.
	done bool
}

func newWriter(w http.ResponseWriter, interval time.Duration) *writer {
	fw := &writer{inner: w, interval: interval}
	fw.flusher, _ = w.(http.Flusher)
	return fw
}

// Unwrap returns the writer this one decorates (responsewriter.UserProvidedDecorator).
func (w *writer) Unwrap() http.ResponseWriter { return w.inner }

func (w *writer) Header() http.Header { return w.inner.Header() }

func (w *writer) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.inner.WriteHeader(code)
	}
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errClosed
	}
	w.pending = true
	return w.inner.Write(p)
}

// Flush flushes at once if the last flush was an interval ago or more, and
// otherwise makes sure a flush follows at last+interval.
func (w *writer) Flush() {
	if w.flusher == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.armed {
		return
	}
	now := time.Now()
	wait := w.interval - now.Sub(w.last)
	if w.last.IsZero() || wait <= 0 {
		w.flushLocked(now)
		return
	}
	w.armed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(wait, w.deferredFlush)
	} else {
		w.timer.Reset(wait)
	}
}

func (w *writer) deferredFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || !w.armed {
		return
	}
	w.armed = false
	if w.pending {
		w.flushLocked(time.Now())
	}
}

func (w *writer) flushLocked(now time.Time) {
	w.flusher.Flush()
	w.last = now
	w.pending = false
}

// finish stops deferred flushes once the handler has returned; net/http
// sends what is still buffered when it ends the response.
func (w *writer) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.armed = false
	if w.timer != nil {
		w.timer.Stop()
	}
}
