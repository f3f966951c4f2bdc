package responsegzip

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
)

const group = "config.capstan.dev"

// pieces is a runtime.Encoder that writes its pieces one Write each, as a
// streaming list encoder or a one-shot encoder would.
type pieces [][]byte

func (p pieces) Encode(_ runtime.Object, w io.Writer) error {
	for _, b := range p {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (pieces) Identifier() runtime.Identifier { return "pieces" }

// object is what SerializeObject is given; pieces ignores it.
type object struct{}

func (object) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (object) DeepCopyObject() runtime.Object   { return object{} }

func filled(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

type response struct {
	status   int
	encoding string
	vary     string
	ctype    string
	body     []byte
}

func read(t *testing.T, rec *httptest.ResponseRecorder) response {
	t.Helper()
	r := response{
		status:   rec.Code,
		encoding: rec.Header().Get("Content-Encoding"),
		vary:     rec.Header().Get("Vary"),
		ctype:    rec.Header().Get("Content-Type"),
		body:     rec.Body.Bytes(),
	}
	if r.encoding == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		if r.body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gzip body: %v", err)
		}
	}
	return r
}

func get(info *request.RequestInfo, acceptEncoding string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/apis/config.capstan.dev/v1beta1/configsets", nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	return req.WithContext(request.WithRequestInfo(context.Background(), info))
}

var listInfo = &request.RequestInfo{IsResourceRequest: true, APIGroup: group, Verb: "list", Resource: "configsets"}

// The filter compresses exactly the responses k8s.io/apiserver compresses,
// with the same status and headers, and the body reads back the same.
func TestSameDecisionAsAPIServer(t *testing.T) {
	cases := map[string]pieces{
		"small object":                     {filled(1024, 'a')},
		"object at the threshold":          {filled(Threshold, 'b')},
		"object above the threshold":       {filled(Threshold+1, 'c')},
		"large list in 256 KiB writes":     {filled(256<<10, 'd'), filled(256<<10, 'e'), filled(1000, 'f')},
		"streaming, short in all":          {[]byte("{"), filled(100, 'g'), filled(100, 'h'), []byte("}")},
		"streaming, over the threshold":    {[]byte("{"), filled(100<<10, 'i'), filled(100<<10, 'j'), filled(10, 'k')},
		"streaming, protobuf header first": {[]byte("k8s\x00"), filled(200<<10, 'l')},
		"first write of five bytes":        {filled(5, 'm'), filled(300<<10, 'n')},
		"nothing":                          {},
	}
	for name, p := range cases {
		for _, status := range []int{http.StatusOK, http.StatusNotFound} {
			t.Run(fmt.Sprintf("%s, %d", name, status), func(t *testing.T) {
				serve := func(w http.ResponseWriter, r *http.Request) {
					responsewriters.SerializeObject("application/json", p, w, r, status, object{})
				}
				want := httptest.NewRecorder()
				http.HandlerFunc(serve).ServeHTTP(want, get(listInfo, "gzip"))

				got := httptest.NewRecorder()
				var sawEncoding []string
				WithCompression(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					sawEncoding = r.Header.Values("Accept-Encoding")
					serve(w, r)
				}), group).ServeHTTP(got, get(listInfo, "deflate, gzip"))

				if len(sawEncoding) != 0 {
					t.Errorf("the handler saw Accept-Encoding %q", sawEncoding)
				}
				w, g := read(t, want), read(t, got)
				if g.status != w.status || g.encoding != w.encoding || g.vary != w.vary || g.ctype != w.ctype {
					t.Errorf("got status %d, encoding %q, vary %q, type %q; k8s.io/apiserver: %d, %q, %q, %q",
						g.status, g.encoding, g.vary, g.ctype, w.status, w.encoding, w.vary, w.ctype)
				}
				if !bytes.Equal(g.body, w.body) {
					t.Errorf("body of %d bytes, k8s.io/apiserver's of %d", len(g.body), len(w.body))
				}
			})
		}
	}
}

// Requests the filter does not take reach the handler as they came, and their
// responses are the handler's.
func TestLeavesOtherRequests(t *testing.T) {
	large := filled(Threshold+1, 'x')
	cases := map[string]*http.Request{
		"watch":                get(&request.RequestInfo{IsResourceRequest: true, APIGroup: group, Verb: "watch", Resource: "configsets"}, "gzip"),
		"another group":        get(&request.RequestInfo{IsResourceRequest: true, APIGroup: "apps", Verb: "list", Resource: "deployments"}, "gzip"),
		"discovery":            get(&request.RequestInfo{IsResourceRequest: false, Path: "/apis/config.capstan.dev/v1beta1"}, "gzip"),
		"no Accept-Encoding":   get(listInfo, ""),
		"gzip with a weight":   get(listInfo, "gzip;q=1.0"),
		"no request info":      httptest.NewRequest(http.MethodGet, "/apis/config.capstan.dev/v1beta1/configsets", nil),
		"a write of the group": httptest.NewRequest(http.MethodPost, "/apis/config.capstan.dev/v1beta1/configsets", nil),
	}
	cases["no request info"].Header.Set("Accept-Encoding", "gzip")
	post := cases["a write of the group"]
	post.Header.Set("Accept-Encoding", "gzip")
	cases["a write of the group"] = post.WithContext(request.WithRequestInfo(context.Background(),
		&request.RequestInfo{IsResourceRequest: true, APIGroup: group, Verb: "create", Resource: "configsets"}))

	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			sent := req.Header.Get("Accept-Encoding")
			rec := httptest.NewRecorder()
			WithCompression(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Accept-Encoding"); got != sent {
					t.Errorf("the handler saw Accept-Encoding %q, the client sent %q", got, sent)
				}
				if _, ok := w.(*writer); ok {
					t.Error("the handler writes through the filter's writer")
				}
				w.WriteHeader(http.StatusTeapot)
				_, _ = w.Write(large)
			}), group).ServeHTTP(rec, req)
			if rec.Code != http.StatusTeapot || rec.Header().Get("Content-Encoding") != "" || !bytes.Equal(rec.Body.Bytes(), large) {
				t.Errorf("status %d, encoding %q, %d bytes", rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.Len())
			}
		})
	}
}

// A flush sends what was compressed so far, so that a reader can decode it
// before the response ends.
func TestFlush(t *testing.T) {
	rec := httptest.NewRecorder()
	first := filled(Threshold+1, 'y')
	WithCompression(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Fatal("the writer is not an http.Flusher")
		}
		_, _ = w.Write(first)
		f.Flush()
		zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
		if err != nil {
			t.Fatalf("after a flush: %v", err)
		}
		got := make([]byte, len(first))
		if _, err := io.ReadFull(zr, got); err != nil || !bytes.Equal(got, first) {
			t.Errorf("after a flush the reader has %v", err)
		}
		_, _ = w.Write([]byte(strings.Repeat("z", 10)))
	}), group).ServeHTTP(rec, get(listInfo, "gzip"))
	if got := read(t, rec); !bytes.Equal(got.body, append(first, strings.Repeat("z", 10)...)) {
		t.Errorf("body of %d bytes", len(got.body))
	}
}

// listJSON is a list of n ConfigSets shaped like the bench's: 12 data and 4
// secret entries of 64 bytes, as JSON.
func listJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"ConfigSetList","apiVersion":"config.capstan.dev/v1beta1","metadata":{"resourceVersion":"12345"},"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		name := fmt.Sprintf("bench-%06d", i)
		value := strings.Repeat(name+"-", 6)[:64]
		fmt.Fprintf(&b, `{"metadata":{"name":%q,"namespace":"bench-%d","uid":"6f1c2a9e-%04x-4b1e-9d2a-%012x","resourceVersion":"%d","generation":1,"creationTimestamp":"2026-12-07T03:00:00Z","labels":{"app.kubernetes.io/part-of":"capstan-bench","bench.capstan.dev/bucket":"%d"}},"spec":{"data":{`,
			name, i%10, i, i*7919, 1000+i, i%100)
		for k := range 12 {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"setting.%03d":%q`, k, value)
		}
		b.WriteString(`},"secretData":{`)
		for k := range 4 {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"secret.%03d":"%s"`, k, base64.StdEncoding.EncodeToString([]byte(value[:48])))
		}
		fmt.Fprintf(&b, `}},"status":{"currentRevision":1,"observedGeneration":1}}`)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// BenchmarkCompress compares the gzip this package writes with
// k8s.io/apiserver's (compress/gzip), both at level 1, on a list of 1,000
// ConfigSets; it reports the compressed size too.
func BenchmarkCompress(b *testing.B) {
	payload := listJSON(1000)
	for _, c := range []struct {
		name string
		new  func(io.Writer) io.WriteCloser
	}{
		{"compress-gzip", func(w io.Writer) io.WriteCloser { z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed); return z }},
		{"responsegzip", func(w io.Writer) io.WriteCloser { z, _ := kgzip.NewWriterLevel(w, level); return z }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				out.Reset()
				z := c.new(&out)
				if _, err := z.Write(payload); err != nil {
					b.Fatal(err)
				}
				if err := z.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.Len())/float64(len(payload)), "ratio")
		})
	}
}
