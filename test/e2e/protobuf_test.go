package e2e

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// contentTypes records the media type of every response a client receives.
type contentTypes struct {
	mu   sync.Mutex
	seen map[string]string // "GET /path" → media type
}

func (c *contentTypes) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if err == nil {
			c.mu.Lock()
			c.seen[r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery] = resp.Header.Get("Content-Type")
			c.mu.Unlock()
		}
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestProtobuf: the generated clientset, which prefers protobuf, writes,
// reads, lists and watches every kind in protobuf, through kube-apiserver and
// directly; a client that asks for JSON still gets JSON.
func TestProtobuf(t *testing.T) {
	const ns = "e2e-protobuf"
	createNamespace(t, ns, nil)
	admin := restConfig(t, testCluster.AdminKubeconfig)
	for _, target := range []struct {
		name, object string
		cfg          *rest.Config
	}{{"through kube-apiserver", "proto-agg", admin}, {"directly", "proto-direct", directConfig(admin)}} {
		t.Run(target.name, func(t *testing.T) {
			rec := &contentTypes{seen: map[string]string{}}
			cfg := rest.CopyConfig(target.cfg)
			cfg.WrapTransport = rec.wrap
			client, err := versioned.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			name := target.object
			secret := []byte{0, 1, 2, 0xff, 'p', 'b'}
			sets := client.ConfigV1beta1().ConfigSets(ns)
			created, err := sets.Create(ctx, &configv1beta1.ConfigSet{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"wire": "protobuf"}},
				Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"FORMAT": "protobuf"}, SecretData: map[string][]byte{"KEY": secret}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			w, err := sets.Watch(ctx, metav1.ListOptions{ResourceVersion: created.ResourceVersion, FieldSelector: "metadata.name=" + name})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			if _, err := sets.Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"data":{"FORMAT":"protobuf, twice"}}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-w.ResultChan():
				cs, ok := ev.Object.(*configv1beta1.ConfigSet)
				if ev.Type != watch.Modified || !ok || cs.Spec.Data["FORMAT"] != "protobuf, twice" || !bytes.Equal(cs.Spec.SecretData["KEY"], secret) {
					t.Fatalf("watch event %s %#v, want the patched ConfigSet", ev.Type, ev.Object)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no watch event within 30s")
			}

			got, err := sets.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.CurrentRevision != 2 || !bytes.Equal(got.Spec.SecretData["KEY"], secret) {
				t.Fatalf("got revision %d, secretData %v; want 2 and %v", got.Status.CurrentRevision, got.Spec.SecretData["KEY"], secret)
			}
			list, err := sets.List(ctx, metav1.ListOptions{LabelSelector: "wire=protobuf"})
			if err != nil || len(list.Items) == 0 {
				t.Fatalf("list: %v, %d items", err, len(list.Items))
			}
			revs, err := client.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "config.capstan.dev/configset=" + name})
			if err != nil || len(revs.Items) != 2 {
				t.Fatalf("revisions: %v, %d items, want 2", err, len(revs.Items))
			}
			if _, err := client.ConfigV1beta1().ConfigRevisions(ns).Get(ctx, revs.Items[0].Name, metav1.GetOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.ConfigV1beta1().ConfigPolicies().List(ctx, metav1.ListOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.ConfigV1alpha1().ConfigSets(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Fatal(err)
			}

			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.seen) < 9 {
				t.Fatalf("only %d responses recorded: %v", len(rec.seen), rec.seen)
			}
			for req, ct := range rec.seen {
				if mt, _, _ := mime.ParseMediaType(ct); mt != runtime.ContentTypeProtobuf {
					t.Errorf("%s answered %q, want %s", req, ct, runtime.ContentTypeProtobuf)
				}
			}
		})
	}

	t.Run("JSON when a client asks for it", func(t *testing.T) {
		for _, cfg := range []*rest.Config{admin, directConfig(admin)} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, cfg.Host+"/apis/config.capstan.dev/v1beta1/namespaces/"+ns+"/configsets/proto-agg", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "application/json")
			resp, body := send(t, cfg, req)
			var cs configv1beta1.ConfigSet
			if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != runtime.ContentTypeJSON {
				t.Fatalf("%s: %s, Content-Type %q, want 200 JSON", cfg.Host, resp.Status, resp.Header.Get("Content-Type"))
			}
			if err := json.Unmarshal(body, &cs); err != nil || cs.Spec.Data["FORMAT"] != "protobuf, twice" {
				t.Fatalf("%s: %v, data %v", cfg.Host, err, cs.Spec.Data)
			}
		}
	})
}
