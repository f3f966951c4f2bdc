package e2e

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestProtobufFallsBackToJSON sends what client-go sends when it prefers
// protobuf and accepts JSON. Capstan's types have no protobuf form, so the
// answer must be JSON, through kube-apiserver and directly.
func TestProtobufFallsBackToJSON(t *testing.T) {
	const ns = "e2e-protobuf"
	createNamespace(t, ns, nil)
	client, _ := adminClients(t)
	if _, err := client.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "proto"},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"FORMAT": "json"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	admin := restConfig(t, testCluster.AdminKubeconfig)
	for _, target := range []struct {
		name string
		cfg  *rest.Config
	}{{"through kube-apiserver", admin}, {"directly", directConfig(admin)}} {
		for _, path := range []string{
			"/apis/config.capstan.dev/v1beta1/namespaces/" + ns + "/configsets",
			"/apis/config.capstan.dev/v1beta1/namespaces/" + ns + "/configsets/proto",
		} {
			t.Run(target.name+" GET "+path, func(t *testing.T) {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target.cfg.Host+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Accept", "application/vnd.kubernetes.protobuf, application/json")
				resp, err := httpClient(t, target.cfg).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
				if resp.StatusCode != http.StatusOK || mediaType != "application/json" {
					t.Fatalf("%s, Content-Type %q, want 200 and application/json; body: %q", resp.Status, resp.Header.Get("Content-Type"), body)
				}
				var obj struct {
					Kind     string `json:"kind"`
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
					Items []configv1beta1.ConfigSet `json:"items"`
				}
				if err := json.Unmarshal(body, &obj); err != nil {
					t.Fatalf("body is not JSON: %v: %q", err, body)
				}
				switch obj.Kind {
				case "ConfigSetList":
					if len(obj.Items) != 1 || obj.Items[0].Name != "proto" || obj.Items[0].Spec.Data["FORMAT"] != "json" {
						t.Fatalf("list items %+v, want the ConfigSet proto", obj.Items)
					}
				case "ConfigSet":
					if obj.Metadata.Name != "proto" {
						t.Fatalf("got ConfigSet %q, want proto", obj.Metadata.Name)
					}
				default:
					t.Fatalf("kind %q", obj.Kind)
				}
			})
		}
	}
}
