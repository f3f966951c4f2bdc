package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// TestCompressedResponses: a list larger than 128 KiB reaches a client that
// accepts gzip compressed, through kube-apiserver and directly, and reads back
// as the same ConfigSets as uncompressed; a list under 128 KiB is not
// compressed. That is what k8s.io/apiserver does on its own; Capstan's
// responsegzip does it in its place (its unit tests compare the two), and this
// checks that clients see no difference, through the aggregator too.
func TestCompressedResponses(t *testing.T) {
	const ns = "e2e-gzip"
	createNamespace(t, ns, nil)
	admin := restConfig(t, testCluster.AdminKubeconfig)
	client, err := versioned.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	// Five ConfigSets of about 40 KiB: 200 KiB of JSON in the list.
	for i := range 5 {
		value := strings.Repeat(fmt.Sprintf("line %d of a long value\n", i), 1700)
		if _, err := client.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("large-%d", i)},
			Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"VALUE": value}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	request := func(t *testing.T, cfg *rest.Config, path string, gz bool) (string, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, cfg.Host+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		if gz {
			// Set by hand, so that the transport hands on the body as sent.
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, body := send(t, cfg, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
		}
		encoding := resp.Header.Get("Content-Encoding")
		if encoding == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return encoding, body
	}
	names := func(t *testing.T, body []byte) []string {
		t.Helper()
		var list configv1beta1.ConfigSetList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, cs := range list.Items {
			out = append(out, fmt.Sprintf("%s:%d", cs.Name, len(cs.Spec.Data["VALUE"])))
		}
		return out
	}

	for _, target := range []struct {
		name string
		cfg  *rest.Config
	}{{"through kube-apiserver", admin}, {"directly", directConfig(admin)}} {
		t.Run(target.name, func(t *testing.T) {
			list := "/apis/config.capstan.dev/v1beta1/namespaces/" + ns + "/configsets"
			encoding, compressed := request(t, target.cfg, list, true)
			if encoding != "gzip" {
				t.Errorf("list of %d bytes: Content-Encoding %q, want gzip", len(compressed), encoding)
			}
			plainEncoding, plain := request(t, target.cfg, list, false)
			if plainEncoding != "" || len(plain) < 128<<10 {
				t.Errorf("list without Accept-Encoding: %q, %d bytes", plainEncoding, len(plain))
			}
			if got, want := names(t, compressed), names(t, plain); fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 5 {
				t.Errorf("compressed list holds %v, uncompressed %v", got, want)
			}
			if encoding, body := request(t, target.cfg, list+"?fieldSelector=metadata.name%3Dlarge-0", true); encoding != "" {
				t.Errorf("list of one ConfigSet (%d bytes): Content-Encoding %q, want none", len(body), encoding)
			}
		})
	}
}
