package e2e

import (
	"bytes"
	"context"
	"mime"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"
	"k8s.io/client-go/rest"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned/scheme"
)

// cborCall sends body (CBOR, when not nil) with Accept: application/cbor and
// returns the status, the response's media type and its body.
func cborCall(t *testing.T, cfg *rest.Config, method, path string, body []byte) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, cfg.Host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", runtime.ContentTypeCBOR)
	if body != nil {
		req.Header.Set("Content-Type", runtime.ContentTypeCBOR)
	}
	resp, out := send(t, cfg, req)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return resp.StatusCode, mt, out
}

// TestCBOR: with the CBORServingAndStorage gate on (as this suite starts
// Capstan), a client writes, reads, lists and watches ConfigSets in CBOR,
// through kube-apiserver's aggregator and directly, secret bytes intact.
func TestCBOR(t *testing.T) {
	const ns = "e2e-cbor"
	createNamespace(t, ns, nil)
	admin := restConfig(t, testCluster.AdminKubeconfig)
	serializer := cbor.NewSerializer(scheme.Scheme, scheme.Scheme)
	for _, target := range []struct {
		name, object string
		cfg          *rest.Config
	}{{"through kube-apiserver", "cbor-agg", admin}, {"directly", "cbor-direct", directConfig(admin)}} {
		t.Run(target.name, func(t *testing.T) {
			base := "/apis/config.capstan.dev/v1beta1/namespaces/" + ns + "/configsets"
			secret := []byte{0, 1, 2, 0xff, 'c', 'b'}
			var body bytes.Buffer
			if err := serializer.Encode(&configv1beta1.ConfigSet{
				TypeMeta:   metav1.TypeMeta{APIVersion: configv1beta1.SchemeGroupVersion.String(), Kind: "ConfigSet"},
				ObjectMeta: metav1.ObjectMeta{Name: target.object},
				Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"FORMAT": "cbor"}, SecretData: map[string][]byte{"KEY": secret}},
			}, &body); err != nil {
				t.Fatal(err)
			}
			code, mt, out := cborCall(t, target.cfg, http.MethodPost, base, body.Bytes())
			if code != http.StatusCreated || mt != runtime.ContentTypeCBOR {
				t.Fatalf("create: %d %q, want 201 %s: %q", code, mt, runtime.ContentTypeCBOR, out)
			}
			created := &configv1beta1.ConfigSet{}
			if _, _, err := serializer.Decode(out, nil, created); err != nil {
				t.Fatalf("decoding the created ConfigSet: %v", err)
			}
			if created.Status.CurrentRevision != 1 || !bytes.Equal(created.Spec.SecretData["KEY"], secret) {
				t.Fatalf("created revision %d, secret %v; want 1 and %v", created.Status.CurrentRevision, created.Spec.SecretData["KEY"], secret)
			}

			code, mt, out = cborCall(t, target.cfg, http.MethodGet, base+"/"+target.object, nil)
			got := &configv1beta1.ConfigSet{}
			if code != http.StatusOK || mt != runtime.ContentTypeCBOR {
				t.Fatalf("get: %d %q: %q", code, mt, out)
			}
			if _, _, err := serializer.Decode(out, nil, got); err != nil || got.UID != created.UID || got.Spec.Data["FORMAT"] != "cbor" {
				t.Fatalf("get decoded to UID %s data %v (%v), want UID %s", got.UID, got.Spec.Data, err, created.UID)
			}

			code, mt, out = cborCall(t, target.cfg, http.MethodGet, base+"?fieldSelector=metadata.name%3D"+target.object, nil)
			list := &configv1beta1.ConfigSetList{}
			if code != http.StatusOK || mt != runtime.ContentTypeCBOR {
				t.Fatalf("list: %d %q: %q", code, mt, out)
			}
			if _, _, err := serializer.Decode(out, nil, list); err != nil || len(list.Items) != 1 || list.Items[0].UID != created.UID {
				t.Fatalf("list decoded to %d items (%v), want the one created", len(list.Items), err)
			}

			code, mt, out = cborCall(t, target.cfg, http.MethodGet, "/apis/config.capstan.dev/v1beta1/namespaces/"+ns+"/configrevisions?labelSelector=config.capstan.dev%2Fconfigset%3D"+target.object, nil)
			revs := &configv1beta1.ConfigRevisionList{}
			if code != http.StatusOK || mt != runtime.ContentTypeCBOR {
				t.Fatalf("revision list: %d %q: %q", code, mt, out)
			}
			if _, _, err := serializer.Decode(out, nil, revs); err != nil || len(revs.Items) != 1 || !bytes.Equal(revs.Items[0].SecretData["KEY"], secret) {
				t.Fatalf("revision list decoded to %d items (%v), want revision 1 with the secret", len(revs.Items), err)
			}

			// A watch in CBOR from the created version receives the next change
			// (a JSON merge patch) as an event in a CBOR sequence.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.cfg.Host+base+"?watch=true&resourceVersion="+created.ResourceVersion+"&fieldSelector=metadata.name%3D"+target.object, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", runtime.ContentTypeCBOR)
			resp, err := httpClient(t, target.cfg).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != runtime.ContentTypeCBORSequence {
				t.Fatalf("watch: %s, Content-Type %q, want 200 %s", resp.Status, resp.Header.Get("Content-Type"), runtime.ContentTypeCBORSequence)
			}
			patch, err := http.NewRequestWithContext(ctx, http.MethodPatch, target.cfg.Host+base+"/"+target.object, bytes.NewReader([]byte(`{"spec":{"data":{"FORMAT":"cbor, twice"}}}`)))
			if err != nil {
				t.Fatal(err)
			}
			patch.Header.Set("Content-Type", "application/merge-patch+json")
			if presp, _ := send(t, target.cfg, patch); presp.StatusCode != http.StatusOK {
				t.Fatalf("merge patch: %s", presp.Status)
			}
			frames := cbor.NewFramer().NewFrameReader(resp.Body)
			frame := make([]byte, 1<<20)
			n, err := frames.Read(frame)
			if err != nil {
				t.Fatalf("reading a watch event: %v", err)
			}
			var ev metav1.WatchEvent
			if err := direct.Unmarshal(frame[:n], &ev); err != nil {
				t.Fatalf("decoding the watch event: %v", err)
			}
			cs := &configv1beta1.ConfigSet{}
			if _, _, err := serializer.Decode(ev.Object.Raw, nil, cs); err != nil {
				t.Fatalf("decoding the watch event's object: %v", err)
			}
			if ev.Type != "MODIFIED" || cs.Spec.Data["FORMAT"] != "cbor, twice" || cs.Status.CurrentRevision != 2 || !bytes.Equal(cs.Spec.SecretData["KEY"], secret) {
				t.Fatalf("watch event %s with data %v, revision %d; want MODIFIED with the patch, revision 2, the secret intact", ev.Type, cs.Spec.Data, cs.Status.CurrentRevision)
			}
		})
	}
}
