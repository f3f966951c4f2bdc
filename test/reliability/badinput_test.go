package reliability

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
)

const biConfigSets = "/apis/config.capstan.dev/v1beta1/namespaces/default/configsets"

// biClient sends raw requests as the admin.
type biClient struct {
	host string
	http *http.Client
}

func biNewClient(t *testing.T, ts *capstantesting.TestServer) *biClient {
	t.Helper()
	hc, err := rest.HTTPClientFor(ts.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	hc.Timeout = 60 * time.Second
	return &biClient{host: strings.TrimSuffix(ts.ClientConfig.Host, "/"), http: hc}
}

func (c *biClient) do(t *testing.T, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.host+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// biExpectStatus asserts the exact code and a metav1.Status body carrying it.
func biExpectStatus(t *testing.T, what string, code int, body []byte, want int) {
	t.Helper()
	if code != want {
		t.Fatalf("%s: got HTTP %d, want %d; body: %.500s", what, code, want, body)
	}
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%s: body is not a Status: %v; body: %.500s", what, err, body)
	}
	if st.Kind != "Status" || st.Status != metav1.StatusFailure || int(st.Code) != want {
		t.Fatalf("%s: unexpected Status kind=%q status=%q code=%d; body: %.500s", what, st.Kind, st.Status, st.Code, body)
	}
}

// biExpectAbsent asserts that name was not created.
func (c *biClient) expectAbsent(t *testing.T, name string) {
	t.Helper()
	code, body := c.do(t, http.MethodGet, biConfigSets+"/"+name, "", nil)
	biExpectStatus(t, "GET "+name+" after the rejected create", code, body, http.StatusNotFound)
}

func (c *biClient) resourceVersion(t *testing.T, name string) string {
	t.Helper()
	code, body := c.do(t, http.MethodGet, biConfigSets+"/"+name, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %.500s", name, code, body)
	}
	var obj metav1.PartialObjectMetadata
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	return obj.ResourceVersion
}

func biConfigSetJSON(name, spec string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":%q},"spec":%s}`, name, spec))
}

func TestBadInputExtremes(t *testing.T) {
	ts := capstantesting.StartTestServer(t)
	c := biNewClient(t, ts)

	// An object that rejected patches must leave untouched.
	code, body := c.do(t, http.MethodPost, biConfigSets, "application/json", biConfigSetJSON("existing", `{"data":{"k":"v"}}`))
	if code != http.StatusCreated {
		t.Fatalf("creating existing: HTTP %d: %.500s", code, body)
	}

	t.Run("deeply nested JSON", func(t *testing.T) {
		const depth = 10001
		spec := `{"data":{"a":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}}`
		code, body := c.do(t, http.MethodPost, biConfigSets, "application/json", biConfigSetJSON("deep", spec))
		biExpectStatus(t, "POST nested 10001 deep", code, body, http.StatusBadRequest)
		c.expectAbsent(t, "deep")
	})

	t.Run("YAML alias bomb", func(t *testing.T) {
		var y strings.Builder
		y.WriteString("apiVersion: config.capstan.dev/v1beta1\nkind: ConfigSet\nmetadata:\n  name: bomb\n  annotations:\n")
		y.WriteString("    a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n")
		prev := "a"
		for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
			fmt.Fprintf(&y, "    %s: &%s [%s]\n", n, n, strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ","))
			prev = n
		}
		y.WriteString("spec:\n  data:\n    k: v\n")
		start := time.Now()
		code, body := c.do(t, http.MethodPost, biConfigSets, "application/yaml", []byte(y.String()))
		elapsed := time.Since(start)
		biExpectStatus(t, "POST YAML alias bomb", code, body, http.StatusBadRequest)
		if elapsed > 5*time.Second {
			t.Errorf("rejecting the alias bomb took %v", elapsed)
		}
		c.expectAbsent(t, "bomb")
		if code, body := c.do(t, http.MethodGet, "/readyz", "", nil); code != http.StatusOK {
			t.Fatalf("GET /readyz after the alias bomb: HTTP %d: %s", code, body)
		}
	})

	t.Run("JSON patch with 10001 operations", func(t *testing.T) {
		rv := c.resourceVersion(t, "existing")
		ops := make([]string, 10001)
		for i := range ops {
			ops[i] = fmt.Sprintf(`{"op":"add","path":"/spec/data/k%d","value":"v"}`, i)
		}
		code, body := c.do(t, http.MethodPatch, biConfigSets+"/existing", "application/json-patch+json", []byte("["+strings.Join(ops, ",")+"]"))
		biExpectStatus(t, "PATCH 10001 operations", code, body, http.StatusRequestEntityTooLarge)
		if got := c.resourceVersion(t, "existing"); got != rv {
			t.Fatalf("resourceVersion changed from %s to %s after a rejected patch", rv, got)
		}
	})

	t.Run("malformed query parameters", func(t *testing.T) {
		// Each case notes why the code is what k8s.io/apiserver does.
		for _, tc := range []struct {
			path string
			want int
		}{
			{biConfigSets + "?timeout=abc", http.StatusBadRequest},
			// A negative limit means no limit, as in Kubernetes: the full list.
			{biConfigSets + "?limit=-1", http.StatusOK},
			// Go's url.Values drops a pair with a bad escape, so a raw %%% is
			// no continue parameter at all; an undecodable token is a 400.
			{biConfigSets + "?continue=%%%", http.StatusOK},
			{biConfigSets + "?continue=%25%25%25", http.StatusBadRequest},
			{biConfigSets + "?labelSelector=a%3D%3D%3Db", http.StatusBadRequest},
			// fields.ParseSelector reads "==" (no field, no value) as the empty
			// selector; a value for an empty field name is refused.
			{biConfigSets + "?fieldSelector=%3D%3D", http.StatusOK},
			{biConfigSets + "?fieldSelector=%3D%3Db", http.StatusBadRequest},
			{biConfigSets + "?fieldSelector=spec.data.k%3Dv", http.StatusBadRequest},
			{biConfigSets + "?resourceVersion=abc", http.StatusBadRequest},
			{biConfigSets + "?watch=true&resourceVersion=abc", http.StatusBadRequest},
			{biConfigSets + "/existing?resourceVersion=abc", http.StatusBadRequest},
			// ListOptions validation: Invalid, so 422.
			{biConfigSets + "?resourceVersionMatch=Bogus", http.StatusUnprocessableEntity},
		} {
			code, body := c.do(t, http.MethodGet, tc.path, "", nil)
			if tc.want == http.StatusOK {
				if code != http.StatusOK {
					t.Errorf("GET %s: HTTP %d, want 200: %.300s", tc.path, code, body)
				}
				continue
			}
			biExpectStatus(t, "GET "+tc.path, code, body, tc.want)
		}
	})

	t.Run("large objects", func(t *testing.T) {
		secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 2<<20))
		code, body := c.do(t, http.MethodPost, biConfigSets, "application/json",
			biConfigSetJSON("big-secret", `{"secretData":{"k":"`+secret+`"}}`))
		biExpectStatus(t, "POST 2 MiB of secretData", code, body, http.StatusUnprocessableEntity)
		c.expectAbsent(t, "big-secret")

		ann := strings.Repeat("x", 1600<<10)
		obj := []byte(fmt.Sprintf(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"big-annotations","annotations":{"a":%q}},"spec":{"data":{"k":"v"}}}`, ann))
		code, body = c.do(t, http.MethodPost, biConfigSets, "application/json", obj)
		biExpectStatus(t, "POST 1.6 MiB of annotations", code, body, http.StatusUnprocessableEntity)
		c.expectAbsent(t, "big-annotations")

		// Past the 3 MiB request body limit the body is refused before decoding.
		huge := biConfigSetJSON("huge", `{"data":{"k":"`+strings.Repeat("x", 3<<20)+`"}}`)
		code, body = c.do(t, http.MethodPost, biConfigSets, "application/json", huge)
		biExpectStatus(t, "POST a 3 MiB body", code, body, http.StatusRequestEntityTooLarge)
		c.expectAbsent(t, "huge")

		rv := c.resourceVersion(t, "existing")
		patch := []byte(`{"spec":{"secretData":{"k2":"` + secret + `"}}}`)
		code, body = c.do(t, http.MethodPatch, biConfigSets+"/existing", "application/merge-patch+json", patch)
		biExpectStatus(t, "PATCH 2 MiB of secretData", code, body, http.StatusUnprocessableEntity)
		if got := c.resourceVersion(t, "existing"); got != rv {
			t.Fatalf("resourceVersion changed from %s to %s after a rejected patch", rv, got)
		}
	})
}
