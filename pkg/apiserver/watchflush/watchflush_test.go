package watchflush

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/endpoints/request"
)

const group = "config.capstan.dev"

// recorder is a ResponseWriter that counts its flushes and what they sent.
type recorder struct {
	mu      sync.Mutex
	header  http.Header
	buf     bytes.Buffer
	flushed []string // what each flush sent
	cut     int      // buf's length at the last flush
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(int)     {}
func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}
func (r *recorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushed = append(r.flushed, r.buf.String()[r.cut:])
	r.cut = r.buf.Len()
}
func (r *recorder) CloseNotify() <-chan bool { return make(chan bool) }

func (r *recorder) flushes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.flushed...)
}

func watchRequest(t *testing.T, verb, apiGroup string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/apis/"+apiGroup+"/v1beta1/configsets?watch=true", nil)
	return req.WithContext(request.WithRequestInfo(req.Context(), &request.RequestInfo{
		IsResourceRequest: true, APIGroup: apiGroup, Verb: verb, Resource: "configsets",
	}))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A burst of events leaves in fewer flushes, every byte of it in order, the
// first at once and the rest within an interval; an event after a quiet
// spell is flushed at once.
func TestBurstIsGatheredAndQuietEventIsNot(t *testing.T) {
	const interval = 200 * time.Millisecond
	rec := newRecorder()
	burstWritten := make(chan struct{})
	lateEvent := make(chan struct{})
	lateFlushed := make(chan int)
	handlerDone := make(chan struct{})
	h := WithCoalescedFlushes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		f := w.(http.Flusher)
		w.WriteHeader(http.StatusOK)
		f.Flush() // the headers
		for i := range 20 {
			fmt.Fprintf(w, "event-%d\n", i)
			f.Flush()
		}
		close(burstWritten)
		<-lateEvent
		fmt.Fprintf(w, "late\n")
		f.Flush()
		lateFlushed <- len(rec.flushes())
	}), group, interval)
	go h.ServeHTTP(rec, watchRequest(t, "watch", group))

	<-burstWritten
	// The headers' flush and the first event's are immediate (the first is
	// within the interval of the headers', so it may be deferred too).
	if n := len(rec.flushes()); n > 2 {
		t.Fatalf("%d flushes during a burst of 20 events written within %v, want at most 2", n, interval)
	}
	var want bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&want, "event-%d\n", i)
	}
	waitFor(t, "the burst to be flushed", func() bool {
		f := rec.flushes()
		var got string
		for _, s := range f {
			got += s
		}
		return got == want.String()
	})
	if n := len(rec.flushes()); n > 3 {
		t.Fatalf("the burst took %d flushes, want at most 3 (headers, first event, the rest)", n)
	}

	// Quiet for longer than the interval: the next event goes out at once,
	// before its Flush returns.
	before := len(rec.flushes())
	time.Sleep(interval + 50*time.Millisecond)
	close(lateEvent)
	if got := <-lateFlushed; got != before+1 {
		t.Fatalf("after a quiet spell the event's flush was deferred: %d flushes, want %d", got, before+1)
	}
	if f := rec.flushes(); f[len(f)-1] != "late\n" {
		t.Fatalf("last flush sent %q, want %q", f[len(f)-1], "late\n")
	}
	<-handlerDone
}

// Once the handler has returned, a deferred flush does not touch its writer,
// which net/http has finished with.
func TestNoFlushAfterHandlerReturns(t *testing.T) {
	const interval = 50 * time.Millisecond
	rec := newRecorder()
	h := WithCoalescedFlushes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		f.Flush()
		fmt.Fprint(w, "a\n")
		f.Flush() // deferred: within the interval of the first
	}), group, interval)
	h.ServeHTTP(rec, watchRequest(t, "watch", group))
	n := len(rec.flushes())
	time.Sleep(3 * interval)
	if got := len(rec.flushes()); got != n {
		t.Fatalf("%d flushes after the handler returned", got-n)
	}
}

// Only watches of the group are gathered; everything else flushes as written.
func TestOtherRequestsFlushAtOnce(t *testing.T) {
	for _, tc := range []struct{ name, verb, group string }{
		{"list of the group", "list", group},
		{"watch of another group", "watch", "apps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			h := WithCoalescedFlushes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				f := w.(http.Flusher)
				for i := range 5 {
					fmt.Fprintf(w, "%d\n", i)
					f.Flush()
				}
			}), group, time.Hour)
			h.ServeHTTP(rec, watchRequest(t, tc.verb, tc.group))
			if n := len(rec.flushes()); n != 5 {
				t.Fatalf("%d flushes, want 5", n)
			}
		})
	}
}

// Over a real HTTP/2 connection a client reads every event, in order, and
// the last of a burst arrives without any later write to push it out.
func TestEventsReachAnHTTP2Client(t *testing.T) {
	const interval = 100 * time.Millisecond
	release := make(chan struct{})
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		w.WriteHeader(http.StatusOK)
		f.Flush()
		for i := range 50 {
			fmt.Fprintf(w, "event-%d\n", i)
			f.Flush()
		}
		<-release
	})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(request.WithRequestInfo(r.Context(), &request.RequestInfo{IsResourceRequest: true, APIGroup: group, Verb: "watch"}))
		WithCoalescedFlushes(inner, group, interval).ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/apis/"+group+"/v1beta1/configsets?watch=true", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	sc := bufio.NewScanner(resp.Body)
	for i := range 50 {
		if !sc.Scan() {
			t.Fatalf("stream ended before event %d: %v", i, sc.Err())
		}
		if want := fmt.Sprintf("event-%d", i); sc.Text() != want {
			t.Fatalf("read %q, want %q", sc.Text(), want)
		}
	}
}
