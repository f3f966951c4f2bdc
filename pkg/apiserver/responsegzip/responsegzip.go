// Package responsegzip compresses Capstan's large get and list responses with
// a faster gzip than k8s.io/apiserver's.
//
// k8s.io/apiserver gzips a response when the client accepts gzip and the
// response's first write is larger than 128 KiB (or, for encoders that stream,
// once what they wrote reaches it), with compress/gzip at level 1. In the
// profile of a list of 10,000 ConfigSets that compression is a quarter of
// Capstan's CPU. This package makes the same decision on the same thresholds,
// and writes the same format (gzip, level 1, "Content-Encoding: gzip",
// "Vary: Accept-Encoding"), with github.com/klauspost/compress's gzip, which
// compresses the same input in less CPU.
//
// It takes over only get and list requests of Capstan's own group: it removes
// Accept-Encoding from the request before k8s.io/apiserver's handlers see it,
// so that they never compress, and compresses what they write. Watches,
// discovery, OpenAPI and everything else keep k8s.io/apiserver's behaviour.
package responsegzip

import (
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"

	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/endpoints/responsewriter"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

const (
	// Threshold is the size above which a response is compressed, as
	// k8s.io/apiserver's defaultGzipThresholdBytes.
	Threshold = 128 * 1024
	// streamingFirstWrite is the longest first write that k8s.io/apiserver
	// takes for a streaming encoder's (JSON's "{", protobuf's 4-byte
	// header), whose writes it gathers until they reach Threshold.
	streamingFirstWrite = 4
	// level is k8s.io/apiserver's defaultGzipContentEncodingLevel.
	level = gzip.BestSpeed
)

var gzipPool = sync.Pool{New: func() any {
	gw, err := gzip.NewWriterLevel(nil, level)
	if err != nil {
		panic(err)
	}
	return gw
}}

// WithCompression compresses the get and list responses of group's resources
// for clients that accept gzip. It must run after the request info is known
// (inside k8s.io/apiserver's handler chain).
func WithCompression(h http.Handler, group string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !takes(r, group) {
			h.ServeHTTP(w, r)
			return
		}
		inner := *r
		inner.Header = r.Header.Clone()
		inner.Header.Del("Accept-Encoding")
		cw := &writer{inner: w}
		h.ServeHTTP(responsewriter.WrapForHTTP1Or2(cw), &inner)
		cw.close()
	})
}

// takes reports whether r is a get or list of group's resources from a
// client that accepts gzip, on a server whose response compression is on.
func takes(r *http.Request, group string) bool {
	if r.Method != http.MethodGet || !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		return false
	}
	info, ok := request.RequestInfoFrom(r.Context())
	if !ok || !info.IsResourceRequest || info.APIGroup != group || (info.Verb != "get" && info.Verb != "list") {
		return false
	}
	return utilfeature.DefaultFeatureGate.Enabled(features.APIResponseCompression)
}

// acceptsGzip reads Accept-Encoding as k8s.io/apiserver does: any token that
// is exactly "gzip", without weights.
func acceptsGzip(header string) bool {
	for _, token := range strings.Split(header, ",") {
		if strings.TrimSpace(token) == "gzip" {
			return true
		}
	}
	return false
}

// writer holds the status and the first writes back until it knows whether
// the response is compressed.
type writer struct {
	inner http.ResponseWriter
	// status is what the handler gave WriteHeader, 0 until it does.
	status int
	// decided is set once the header has gone to inner.
	decided bool
	// gz compresses the body when it is not nil.
	gz *gzip.Writer
	// buffering is set, and buffer holds the first writes, while a
	// streaming encoder's writes are gathered.
	buffering bool
	buffer    []byte
}

var _ responsewriter.UserProvidedDecorator = &writer{}

func (w *writer) Unwrap() http.ResponseWriter { return w.inner }

func (w *writer) Header() http.Header { return w.inner.Header() }

func (w *writer) WriteHeader(status int) {
	if w.status == 0 && !w.decided {
		w.status = status
	}
}

func (w *writer) Write(p []byte) (int, error) {
	switch {
	case w.decided:
		return w.body(p)
	case !w.buffering && len(p) > Threshold:
		w.decide(true)
		return w.body(p)
	case !w.buffering && len(p) > streamingFirstWrite:
		w.decide(false)
		return w.body(p)
	default:
		w.buffering = true
		w.buffer = append(w.buffer, p...)
		if len(w.buffer) > Threshold {
			w.decide(true)
			buffer := w.buffer
			w.buffer = nil
			if _, err := w.body(buffer); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
}

// Flush sends what is compressed so far.
func (w *writer) Flush() {
	if !w.decided {
		return
	}
	if w.gz != nil {
		_ = w.gz.Flush()
	}
	if f, ok := w.inner.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *writer) body(p []byte) (int, error) {
	if w.gz != nil {
		return w.gz.Write(p)
	}
	return w.inner.Write(p)
}

// decide sends the header, with the content encoding when compressed.
func (w *writer) decide(compress bool) {
	w.decided = true
	if compress {
		header := w.inner.Header()
		header.Set("Content-Encoding", "gzip")
		header.Add("Vary", "Accept-Encoding")
		header.Del("Content-Length")
		w.gz = gzipPool.Get().(*gzip.Writer)
		w.gz.Reset(w.inner)
	}
	if w.status != 0 {
		w.inner.WriteHeader(w.status)
	}
}

// close ends the response once the handler has returned: it writes what is
// still buffered, uncompressed as k8s.io/apiserver does when a response never
// reaches the threshold, and finishes the compressed stream.
func (w *writer) close() {
	if !w.decided {
		if !w.buffering && w.status == 0 {
			return
		}
		w.decide(false)
		if len(w.buffer) > 0 {
			_, _ = w.inner.Write(w.buffer)
			w.buffer = nil
		}
		return
	}
	if w.gz != nil {
		_ = w.gz.Close()
		w.gz.Reset(nil)
		gzipPool.Put(w.gz)
		w.gz = nil
	}
}
