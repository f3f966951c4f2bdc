package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/rest"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	"sigs.k8s.io/yaml"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/scheme"
)

const configSetsPath = "/apis/config.capstan.dev/v1beta1/namespaces/default/configsets"

// mediaRequest sends a request with the given Accept and Content-Type and
// returns the status, the response's Content-Type and its body.
func mediaRequest(t *testing.T, cfg *rest.Config, method, path, accept, contentType string, body []byte) (int, string, []byte) {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, cfg.Host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out.Bytes()
}

// Every media type the negotiated serializer of k8s.io/apiserver offers for
// an API group is served: JSON, YAML, protobuf, and CBOR when its feature gate
// is on; a media type it does not offer is refused with 406.
func TestMediaTypes(t *testing.T) {
	// Set for this test only: the gate is process-wide, and other tests' servers
	// run in this process too.
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.CBORServingAndStorage, true)
	// A server of its own: the CBOR gate must be on when the server starts.
	ts := capstantesting.StartTestServer(t)
	cfg := ts.ClientConfig
	cborSerializer := cbor.NewSerializer(scheme.Scheme, scheme.Scheme)
	protobufSerializer := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)

	// A create in CBOR.
	cs := configSet("cbor-made", map[string]string{"LEVEL": "info"}, nil)
	cs.Spec.SecretData = map[string][]byte{"TOKEN": []byte("s3cr3t")}
	cs.APIVersion, cs.Kind = "config.capstan.dev/v1beta1", "ConfigSet"
	var body bytes.Buffer
	if err := cborSerializer.Encode(cs, &body); err != nil {
		t.Fatal(err)
	}
	code, ct, out := mediaRequest(t, cfg, http.MethodPost, configSetsPath, "application/cbor", "application/cbor", body.Bytes())
	if code != http.StatusCreated || ct != "application/cbor" {
		t.Fatalf("CBOR create: %d %s: %s", code, ct, out)
	}
	created := &v1beta1.ConfigSet{}
	if _, _, err := cborSerializer.Decode(out, nil, created); err != nil {
		t.Fatalf("decoding the CBOR answer: %v", err)
	}
	if created.Status.CurrentRevision != 1 || string(created.Spec.SecretData["TOKEN"]) != "s3cr3t" {
		t.Errorf("CBOR create answered revision %d, secret %q", created.Status.CurrentRevision, created.Spec.SecretData["TOKEN"])
	}

	for _, tc := range []struct {
		accept, wantType string
		decode           func([]byte, runtime.Object) error
	}{
		{"application/json", "application/json", func(b []byte, o runtime.Object) error { return yaml.Unmarshal(b, o) }},
		{"application/yaml", "application/yaml", func(b []byte, o runtime.Object) error { return yaml.Unmarshal(b, o) }},
		{"application/cbor", "application/cbor", func(b []byte, o runtime.Object) error {
			_, _, err := cborSerializer.Decode(b, nil, o)
			return err
		}},
		{"application/vnd.kubernetes.protobuf, application/json", "application/vnd.kubernetes.protobuf", func(b []byte, o runtime.Object) error {
			_, _, err := protobufSerializer.Decode(b, nil, o)
			return err
		}},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			code, ct, out := mediaRequest(t, cfg, http.MethodGet, configSetsPath, tc.accept, "", nil)
			if code != http.StatusOK || ct != tc.wantType {
				t.Fatalf("list: %d %q, want 200 %q: %s", code, ct, tc.wantType, out)
			}
			list := &v1beta1.ConfigSetList{}
			if err := tc.decode(out, list); err != nil {
				t.Fatalf("decoding the list: %v", err)
			}
			if len(list.Items) != 1 || list.Items[0].Name != "cbor-made" || list.Items[0].Spec.Data["LEVEL"] != "info" {
				t.Errorf("list holds %+v", list.Items)
			}
			code, ct, out = mediaRequest(t, cfg, http.MethodGet, configSetsPath+"/cbor-made", tc.accept, "", nil)
			got := &v1beta1.ConfigSet{}
			if code != http.StatusOK || ct != tc.wantType {
				t.Fatalf("get: %d %q: %s", code, ct, out)
			}
			if err := tc.decode(out, got); err != nil || got.UID != created.UID {
				t.Errorf("get decoded to %s (%v), want UID %s", got.UID, err, created.UID)
			}
		})
	}

	code, _, out = mediaRequest(t, cfg, http.MethodGet, configSetsPath, "application/x-capstan-unknown", "", nil)
	if code != http.StatusNotAcceptable {
		t.Errorf("a media type nobody serves: %d, want 406: %s", code, out)
	}
}

// Without the feature gate CBOR is not offered, as in kube-apiserver.
func TestMediaTypesWithoutCBOR(t *testing.T) {
	ts := sharedServer(t)
	code, _, out := mediaRequest(t, ts.ClientConfig, http.MethodGet, configSetsPath, "application/cbor", "", nil)
	if code != http.StatusNotAcceptable {
		t.Errorf("CBOR without its feature gate: %d, want 406: %s", code, out)
	}
}

// The JSON of ConfigSets, which pkg/apiserver/configsetjson writes without
// encoding/json, is what encoding/json writes for the same objects, in a
// get, a list and a watch's events.
func TestConfigSetJSONAsEncodingJSON(t *testing.T) {
	ts := sharedServer(t)
	cfg := ts.ClientConfig
	const path = "/apis/config.capstan.dev/v1beta1/namespaces/json-bytes/configsets"
	for _, name := range []string{"plain", "awkward"} {
		cs := configSet(name, map[string]string{"LEVEL": "info", "HTML": "<a href=\"x\">&amp;</a>", "LINES": "one\ntwo\u2028three"}, nil)
		cs.Spec.SecretData = map[string][]byte{"TOKEN": []byte("s3cr3t"), "EMPTY": {}}
		cs.Labels = map[string]string{"app": name}
		cs.Annotations = map[string]string{"note": "caf\u00e9 \U0001F600"}
		body, err := json.Marshal(cs)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, out := mediaRequest(t, cfg, http.MethodPost, path, "application/json", "application/json", body); code != http.StatusCreated {
			t.Fatalf("create %s: %d: %s", name, code, out)
		}
	}
	// reencode decodes what the server wrote and encodes it again with
	// encoding/json, as k8s.io/apimachinery's JSON serializer would have.
	reencode := func(what string, b []byte, into any) []byte {
		t.Helper()
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v: %s", what, err, b)
		}
		var out bytes.Buffer
		if err := json.NewEncoder(&out).Encode(into); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}

	code, ct, got := mediaRequest(t, cfg, http.MethodGet, path+"/awkward", "application/json", "", nil)
	if code != http.StatusOK || ct != "application/json" {
		t.Fatalf("get: %d %q: %s", code, ct, got)
	}
	if want := reencode("get", got, &v1beta1.ConfigSet{}); !bytes.Equal(got, want) {
		t.Errorf("get:\n got %s\nwant %s", got, want)
	}

	code, _, got = mediaRequest(t, cfg, http.MethodGet, path, "application/json", "", nil)
	list := &v1beta1.ConfigSetList{}
	if want := reencode("list", got, list); code != http.StatusOK || !bytes.Equal(got, want) {
		t.Errorf("list: %d\n got %s\nwant %s", code, got, want)
	}
	if len(list.Items) != 2 || string(list.Items[0].Spec.SecretData["TOKEN"]) != "s3cr3t" {
		t.Errorf("list holds %d items: %+v", len(list.Items), list.Items)
	}

	// Lists keep their items encoded (configsetjson's itemCache): after a
	// change, a delete and a create under the same name, every list, from
	// the watch cache or consistent, is what the objects now are.
	if code, _, out := mediaRequest(t, cfg, http.MethodPatch, path+"/awkward", "application/json", "application/merge-patch+json",
		[]byte(`{"spec":{"data":{"LEVEL":"debug"}}}`)); code != http.StatusOK {
		t.Fatalf("patch: %d: %s", code, out)
	}
	if code, _, out := mediaRequest(t, cfg, http.MethodDelete, path+"/plain", "application/json", "", nil); code != http.StatusOK {
		t.Fatalf("delete: %d: %s", code, out)
	}
	again := configSet("plain", map[string]string{"LEVEL": "warn"}, nil)
	body, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, out := mediaRequest(t, cfg, http.MethodPost, path, "application/json", "application/json", body); code != http.StatusCreated {
		t.Fatalf("create plain again: %d: %s", code, out)
	}
	for _, query := range []string{"", "?resourceVersion=0"} {
		var got []byte
		// A list from the watch cache may lag the writes by an event.
		deadline := time.Now().Add(wait.ForeverTestTimeout)
		for {
			code, _, got = mediaRequest(t, cfg, http.MethodGet, path+query, "application/json", "", nil)
			list := &v1beta1.ConfigSetList{}
			if want := reencode("list", got, list); code != http.StatusOK || !bytes.Equal(got, want) {
				t.Fatalf("list%s after the changes: %d\n got %s\nwant %s", query, code, got, want)
			}
			levels := map[string]string{}
			for _, cs := range list.Items {
				levels[cs.Name] = cs.Spec.Data["LEVEL"]
			}
			if levels["awkward"] == "debug" && levels["plain"] == "warn" && len(list.Items) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("list%s after the changes: levels %v, want awkward debug and plain warn", query, levels)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A watch from the list's version with a short timeout: the server
	// writes one ADDED event per ConfigSet, each a line, then ends.
	code, _, got = mediaRequest(t, cfg, http.MethodGet, path+"?watch=true&resourceVersion=0&timeoutSeconds=1", "application/json", "", nil)
	if code != http.StatusOK {
		t.Fatalf("watch: %d: %s", code, got)
	}
	lines := bytes.Split(bytes.TrimSpace(got), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("watch wrote %d events, want 2: %s", len(lines), got)
	}
	for _, line := range lines {
		var event struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(line, &event); err != nil || event.Type != "ADDED" {
			t.Fatalf("watch event %s: %v", line, err)
		}
		obj := []byte(event.Object)
		want := bytes.TrimSuffix(reencode("watch event", obj, &v1beta1.ConfigSet{}), []byte("\n"))
		if !bytes.Equal(obj, want) {
			t.Errorf("watch event object:\n got %s\nwant %s", obj, want)
		}
	}
}

// Protobuf lists, whose items pkg/apiserver/configsetproto keeps encoded
// between lists, are what k8s.io/apimachinery's protobuf serializer writes
// for the objects the server holds, before and after changes, a delete and
// a create under the same name, from the watch cache or consistent.
func TestConfigSetProtobufLists(t *testing.T) {
	ts := sharedServer(t)
	cfg := ts.ClientConfig
	const path = "/apis/config.capstan.dev/v1beta1/namespaces/protobuf-bytes/configsets"
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	for _, name := range []string{"plain", "secret"} {
		cs := configSet(name, map[string]string{"LEVEL": "info"}, nil)
		cs.Spec.SecretData = map[string][]byte{"TOKEN": []byte("s3cr3t"), "EMPTY": {}}
		body, err := json.Marshal(cs)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, out := mediaRequest(t, cfg, http.MethodPost, path, "application/json", "application/json", body); code != http.StatusCreated {
			t.Fatalf("create %s: %d: %s", name, code, out)
		}
	}
	// list lists in protobuf until the levels are want's, checking each
	// answer is the serializer's bytes for what it holds.
	list := func(query string, want map[string]string) {
		t.Helper()
		deadline := time.Now().Add(wait.ForeverTestTimeout)
		for {
			code, ct, got := mediaRequest(t, cfg, http.MethodGet, path+query, runtime.ContentTypeProtobuf, "", nil)
			if code != http.StatusOK || ct != runtime.ContentTypeProtobuf {
				t.Fatalf("list%s: %d %q: %s", query, code, ct, got)
			}
			l := &v1beta1.ConfigSetList{}
			if _, _, err := pb.Decode(got, nil, l); err != nil {
				t.Fatalf("list%s: %v", query, err)
			}
			var again bytes.Buffer
			if err := pb.Encode(l, &again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, again.Bytes()) {
				t.Fatalf("list%s: %d bytes, the serializer writes %d for the same list", query, len(got), again.Len())
			}
			levels := map[string]string{}
			for _, cs := range l.Items {
				levels[cs.Name] = cs.Spec.Data["LEVEL"]
				if string(cs.Spec.SecretData["TOKEN"]) != "s3cr3t" {
					t.Fatalf("list%s: %s's secret is %q", query, cs.Name, cs.Spec.SecretData["TOKEN"])
				}
			}
			if reflect.DeepEqual(levels, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("list%s: levels %v, want %v", query, levels, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for range 2 { // the second time from the items kept
		list("", map[string]string{"plain": "info", "secret": "info"})
		list("?resourceVersion=0", map[string]string{"plain": "info", "secret": "info"})
	}

	if code, _, out := mediaRequest(t, cfg, http.MethodPatch, path+"/secret", "application/json", "application/merge-patch+json",
		[]byte(`{"spec":{"data":{"LEVEL":"debug"}}}`)); code != http.StatusOK {
		t.Fatalf("patch: %d: %s", code, out)
	}
	if code, _, out := mediaRequest(t, cfg, http.MethodDelete, path+"/plain", "application/json", "", nil); code != http.StatusOK {
		t.Fatalf("delete: %d: %s", code, out)
	}
	again := configSet("plain", map[string]string{"LEVEL": "warn"}, nil)
	again.Spec.SecretData = map[string][]byte{"TOKEN": []byte("s3cr3t")}
	body, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, out := mediaRequest(t, cfg, http.MethodPost, path, "application/json", "application/json", body); code != http.StatusCreated {
		t.Fatalf("create plain again: %d: %s", code, out)
	}
	for _, query := range []string{"", "?resourceVersion=0"} {
		list(query, map[string]string{"plain": "warn", "secret": "debug"})
	}
}
