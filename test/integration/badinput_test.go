package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

const (
	badInputNamespace  = "badinput"
	badInputConfigSets = "/apis/config.capstan.dev/v1beta1/namespaces/" + badInputNamespace + "/configsets"
	policiesPath       = "/apis/config.capstan.dev/v1beta1/configpolicies"
	// maxRequestBody is the generic server's default limit on a request body.
	maxRequestBody = 3 << 20
)

// The TestBadInput tests send what a careless or hostile client sends and
// check that every request gets the exact 4xx, a Status naming the field or
// reason, and that nothing was written. They share the namespace
// badInputNamespace on the shared server, each with ConfigSets of its own.

// TestBadInputInvalidConfigSets: invalid ConfigSets are 422 naming the field.
func TestBadInputInvalidConfigSets(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	cases := []struct {
		name      string
		spec      string
		field     string
		causeType metav1.CauseType
	}{
		{"bad-key", `{"data":{"a b":"x"}}`, "spec.data[a b]", metav1.CauseTypeFieldValueInvalid},
		{"bad-secret-key", `{"secretData":{"a/b":"eA=="}}`, "spec.secretData[a/b]", metav1.CauseTypeFieldValueInvalid},
		{"key-in-both", `{"data":{"DUP":"x"},"secretData":{"DUP":"eA=="}}`, "spec.secretData[DUP]", metav1.CauseTypeFieldValueDuplicate},
		{"history-zero", `{"data":{"a":"x"},"revisionHistoryLimit":0}`, "spec.revisionHistoryLimit", metav1.CauseTypeFieldValueInvalid},
		{"history-1001", `{"data":{"a":"x"},"revisionHistoryLimit":1001}`, "spec.revisionHistoryLimit", metav1.CauseTypeFieldValueInvalid},
		{"key-too-long", `{"data":{"` + strings.Repeat("k", 254) + `":"x"}}`, "spec.data[" + strings.Repeat("k", 254) + "]", metav1.CauseTypeFieldValueInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":%q},"spec":%s}`, tc.name, tc.spec)
			resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", []byte(body))
			status := resp.requireStatus(t, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			requireCause(t, status, tc.field, tc.causeType)
			api.requireNotFound(t, badInputConfigSets+"/"+tc.name)
		})
	}
}

// TestBadInputV1alpha1SecretNotBase64: v1alpha1 secret entry that is not base64 is 400 naming the entry.
func TestBadInputV1alpha1SecretNotBase64(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := `{"apiVersion":"config.capstan.dev/v1alpha1","kind":"ConfigSet","metadata":{"name":"alpha-bad-secret"},` +
		`"spec":{"entries":[{"key":"ok","value":"1"},{"key":"TOKEN","value":"not base64!","secret":true}]}}`
	resp := api.do(t, http.MethodPost, "/apis/config.capstan.dev/v1alpha1/namespaces/"+badInputNamespace+"/configsets", "application/json", []byte(body))
	status := resp.requireStatus(t, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	if !strings.Contains(status.Message, "spec.entries[1].value") {
		t.Errorf("message %q does not name spec.entries[1].value", status.Message)
	}
	api.requireNotFound(t, badInputConfigSets+"/alpha-bad-secret")
}

// TestBadInputImmutableConfigSetRefusesChanges: immutable ConfigSet refuses changes with 422 and stays as stored.
func TestBadInputImmutableConfigSetRefusesChanges(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	const name = "frozen"
	created := api.createConfigSet(t, name, `{"data":{"a":"1"},"secretData":{"s":"eA=="},"immutable":true}`)
	path := badInputConfigSets + "/" + name

	cases := []struct {
		name   string
		mutate func(cs *v1beta1.ConfigSet)
		field  string
	}{
		{"immutable back to false", func(cs *v1beta1.ConfigSet) { cs.Spec.Immutable = new(bool) }, "spec.immutable"},
		{"data changed", func(cs *v1beta1.ConfigSet) { cs.Spec.Data["a"] = "2" }, "spec.data"},
		{"data key added", func(cs *v1beta1.ConfigSet) { cs.Spec.Data["b"] = "1" }, "spec.data"},
		{"secretData changed", func(cs *v1beta1.ConfigSet) { cs.Spec.SecretData["s"] = []byte("y") }, "spec.secretData"},
	}
	for _, tc := range cases {
		t.Run("update "+tc.name, func(t *testing.T) {
			cs := api.getConfigSet(t, name)
			tc.mutate(cs)
			body, err := json.Marshal(cs)
			if err != nil {
				t.Fatal(err)
			}
			resp := api.do(t, http.MethodPut, path, "application/json", body)
			status := resp.requireStatus(t, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			requireCause(t, status, tc.field, metav1.CauseTypeForbidden)
			api.requireUnchanged(t, created)
		})
	}
	t.Run("merge patch of data", func(t *testing.T) {
		resp := api.do(t, http.MethodPatch, path, "application/merge-patch+json", []byte(`{"spec":{"data":{"a":"3"}}}`))
		status := resp.requireStatus(t, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		requireCause(t, status, "spec.data", metav1.CauseTypeForbidden)
		api.requireUnchanged(t, created)
	})
}

// TestBadInputInvalidConfigPolicies: invalid ConfigPolicies are 422 naming the field.
func TestBadInputInvalidConfigPolicies(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	cases := []struct {
		name      string
		spec      string
		field     string
		causeType metav1.CauseType
	}{
		{"bad-key-pattern", `{"keyPattern":"("}`, "spec.keyPattern", metav1.CauseTypeFieldValueInvalid},
		{"bad-cel", `{"rules":[{"expression":"size(data) > 0"},{"expression":"data.a +","message":"broken"}]}`, "spec.rules[1].expression", metav1.CauseTypeFieldValueInvalid},
		{"bad-enforcement", `{"enforcement":"Maybe"}`, "spec.enforcement", metav1.CauseTypeFieldValueNotSupported},
		{"bad-required-key", `{"requiredKeys":["a b"]}`, "spec.requiredKeys[0]", metav1.CauseTypeFieldValueInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigPolicy","metadata":{"name":%q},"spec":%s}`, tc.name, tc.spec)
			resp := api.do(t, http.MethodPost, policiesPath, "application/json", []byte(body))
			status := resp.requireStatus(t, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			requireCause(t, status, tc.field, tc.causeType)
			api.requireNotFound(t, policiesPath+"/"+tc.name)
		})
	}
}

// TestBadInputMalformedJSON: malformed JSON is 400.
func TestBadInputMalformedJSON(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"broken-json"},"spec":{"data":{"a":`
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", []byte(body))
	resp.requireStatus(t, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	api.requireNotFound(t, badInputConfigSets+"/broken-json")
}

// TestBadInputMalformedYAML: malformed YAML is 400.
func TestBadInputMalformedYAML(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := "apiVersion: config.capstan.dev/v1beta1\nkind: ConfigSet\nmetadata:\n  name: broken-yaml\nspec:\n  data: [unclosed\n    a: 1\n"
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/yaml", []byte(body))
	resp.requireStatus(t, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	api.requireNotFound(t, badInputConfigSets+"/broken-yaml")
}

// TestBadInputWrongKind: wrong kind in the body is 400.
func TestBadInputWrongKind(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigPolicy","metadata":{"name":"wrong-kind"},"spec":{}}`
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", []byte(body))
	resp.requireStatus(t, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	api.requireNotFound(t, badInputConfigSets+"/wrong-kind")
	api.requireNotFound(t, policiesPath+"/wrong-kind")
}

// TestBadInputBodyOverTheRequestLimit: body over the request limit is 413.
func TestBadInputBodyOverTheRequestLimit(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := configSetJSON("too-big-body", map[string]string{"big": strings.Repeat("x", maxRequestBody+maxRequestBody/6)})
	if len(body) <= maxRequestBody {
		t.Fatalf("body is %d bytes, not over the %d byte limit", len(body), maxRequestBody)
	}
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", body)
	resp.requireStatus(t, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
	api.requireNotFound(t, badInputConfigSets+"/too-big-body")
}

// TestBadInputEntriesOver1MiB: entries over 1 MiB in a body under the limit are 422.
func TestBadInputEntriesOver1MiB(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	big := strings.Repeat("y", 1200<<10)
	half := big[:600<<10]
	cases := []struct {
		name string
		spec string
	}{
		{"data-only", fmt.Sprintf(`{"data":{"big":%q}}`, big)},
		// Each half alone fits; together they are over config.MaxEntriesBytes.
		{"data-and-secret-data", fmt.Sprintf(`{"data":{"plain":%q},"secretData":{"secret":%q}}`, half, base64Of(half))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":%q},"spec":%s}`, tc.name, tc.spec)
			if len(body) >= maxRequestBody {
				t.Fatalf("body is %d bytes, want it under the %d byte limit", len(body), maxRequestBody)
			}
			resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", []byte(body))
			requireNotEtcdTooLarge(t, resp)
			status := resp.requireStatus(t, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			requireCause(t, status, "spec", metav1.CauseTypeTooLong)
			if len(resp.body) > 64<<10 {
				t.Errorf("the 422 response is %d bytes: it echoes the entries back", len(resp.body))
			}
			api.requireNotFound(t, badInputConfigSets+"/"+tc.name)
			api.requireRevisions(t, tc.name, 0)
		})
	}
}

// TestBadInputEntriesOfExactly1MiB: entries of exactly 1 MiB are stored.
func TestBadInputEntriesOfExactly1MiB(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	key := "exact"
	body := configSetJSON("exactly-1mib", map[string]string{key: strings.Repeat("z", config.MaxEntriesBytes-len(key))})
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", body)
	resp.requireCode(t, http.StatusCreated)
	cs := api.getConfigSet(t, "exactly-1mib")
	if got := len(cs.Spec.Data[key]); got != config.MaxEntriesBytes-len(key) {
		t.Errorf("stored value is %d bytes, want %d", got, config.MaxEntriesBytes-len(key))
	}
	api.requireRevisions(t, "exactly-1mib", 1)
}

// TestBadInputSecretDataOfExactly1MiB: secretData of exactly 1 MiB is stored.
func TestBadInputSecretDataOfExactly1MiB(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	// base64 in the stored JSON makes it 4/3 larger, and encryption adds
	// its prefix and nonce: still within etcd's limit.
	key := "exact"
	value := strings.Repeat("s", config.MaxEntriesBytes-len(key))
	body := fmt.Sprintf(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"secret-1mib"},"spec":{"secretData":{%q:%q}}}`,
		key, base64Of(value))
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", []byte(body))
	requireNotEtcdTooLarge(t, resp)
	resp.requireCode(t, http.StatusCreated)
	cs := api.getConfigSet(t, "secret-1mib")
	if got := string(cs.Spec.SecretData[key]); got != value {
		t.Errorf("stored secret value is %d bytes, want %d bytes of 's'", len(got), len(value))
	}
	api.requireRevisions(t, "secret-1mib", 1)
}

// TestBadInputEscapesGrowPastTheStoredLimit: entries under 1 MiB whose JSON escapes grow past the stored limit are 422, never a 413 or 500.
func TestBadInputEscapesGrowPastTheStoredLimit(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	// '<' is one byte in the entries but six ("\u003c") in the JSON the
	// server writes to etcd: 900 KiB of it would be 5.4 MB in etcd, so
	// validation measures the encoded size and refuses it with a 422.
	body := configSetJSON("escaped-entries", map[string]string{"html": strings.Repeat("<", 900<<10)})
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", body)
	requireNotEtcdTooLarge(t, resp)
	resp.requireCode(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(resp.body), "encoded for storage") {
		t.Errorf("422 does not explain the encoded size: %s", resp.body)
	}
	if get := api.do(t, http.MethodGet, badInputConfigSets+"/escaped-entries", "", nil); get.code != http.StatusNotFound {
		t.Errorf("after the failed create, GET escaped-entries is HTTP %d, want 404", get.code)
	}
	api.requireRevisions(t, "escaped-entries", 0)

	// A small escaped value stays well within the limit and is stored.
	ok := api.do(t, http.MethodPost, badInputConfigSets, "application/json",
		configSetJSON("escaped-small", map[string]string{"html": strings.Repeat("<", 100<<10)}))
	ok.requireCode(t, http.StatusCreated)
}

// TestBadInputMergePatchGrowsPast1MiB: merge patch that grows entries past 1 MiB is 422 and changes nothing.
func TestBadInputMergePatchGrowsPast1MiB(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	created := api.createConfigSet(t, "grow", `{"data":{"a":"1"}}`)
	patch := fmt.Sprintf(`{"spec":{"data":{"big":%q}}}`, strings.Repeat("g", 1200<<10))
	resp := api.do(t, http.MethodPatch, badInputConfigSets+"/grow", "application/merge-patch+json", []byte(patch))
	requireNotEtcdTooLarge(t, resp)
	status := resp.requireStatus(t, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
	requireCause(t, status, "spec", metav1.CauseTypeTooLong)
	api.requireUnchanged(t, created)
	api.requireRevisions(t, "grow", 1)
}

// TestBadInputUnknownFieldStrict: unknown field with fieldValidation=Strict is 400 naming the field.
func TestBadInputUnknownFieldStrict(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"strict-unknown"},"spec":{"data":{"a":"1"},"bogusField":true}}`
	resp := api.do(t, http.MethodPost, badInputConfigSets+"?fieldValidation=Strict", "application/json", []byte(body))
	status := resp.requireStatus(t, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	if !strings.Contains(status.Message, `unknown field "spec.bogusField"`) {
		t.Errorf("message %q does not name the unknown field spec.bogusField", status.Message)
	}
	api.requireNotFound(t, badInputConfigSets+"/strict-unknown")
}

// TestBadInputUnknownFieldByDefault: unknown field by default is 201 with a Warning.
func TestBadInputUnknownFieldByDefault(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"warn-unknown"},"spec":{"data":{"a":"1"},"bogusField":true}}`
	resp := api.do(t, http.MethodPost, badInputConfigSets, "application/json", []byte(body))
	resp.requireCode(t, http.StatusCreated)
	warnings := resp.header.Values("Warning")
	if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, `unknown field \"spec.bogusField\"`) }) {
		t.Errorf("Warning headers %q do not mention the unknown field spec.bogusField", warnings)
	}
	if cs := api.getConfigSet(t, "warn-unknown"); cs.Spec.Data["a"] != "1" {
		t.Errorf("stored data = %v, want a=1", cs.Spec.Data)
	}
}

// TestBadInputDuplicateFieldStrict: duplicate field with fieldValidation=Strict is 400.
func TestBadInputDuplicateFieldStrict(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	body := `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"strict-dup"},"spec":{"data":{"a":"1"},"data":{"b":"2"}}}`
	resp := api.do(t, http.MethodPost, badInputConfigSets+"?fieldValidation=Strict", "application/json", []byte(body))
	status := resp.requireStatus(t, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	if !strings.Contains(status.Message, `duplicate field "spec.data"`) {
		t.Errorf("message %q does not name the duplicate field spec.data", status.Message)
	}
	api.requireNotFound(t, badInputConfigSets+"/strict-dup")
}

// TestBadInputMalformedQueryParameters: malformed query parameters are 400.
func TestBadInputMalformedQueryParameters(t *testing.T) {
	api := newRawAPI(t, sharedServer(t))

	api.createConfigSet(t, "query-target", `{"data":{"a":"1"}}`)
	cases := []struct {
		name    string
		path    string
		query   url.Values
		mention string
	}{
		{"list resourceVersion", badInputConfigSets, url.Values{"resourceVersion": {"abc"}}, "abc"},
		{"watch resourceVersion", badInputConfigSets, url.Values{"watch": {"true"}, "resourceVersion": {"abc"}}, "abc"},
		{"get resourceVersion", badInputConfigSets + "/query-target", url.Values{"resourceVersion": {"abc"}}, "abc"},
		{"list label selector", badInputConfigSets, url.Values{"labelSelector": {"app in (a,"}}, "unable to parse requirement"},
		{"watch label selector", badInputConfigSets, url.Values{"watch": {"true"}, "labelSelector": {"app in (a,"}}, "unable to parse requirement"},
		{"list field selector", badInputConfigSets, url.Values{"fieldSelector": {"metadata.name"}}, "metadata.name"},
		{"list unsupported field", badInputConfigSets, url.Values{"fieldSelector": {"spec.bogus=1"}}, "spec.bogus"},
		{"list limit", badInputConfigSets, url.Values{"limit": {"ten"}}, "ten"},
		{"list continue", badInputConfigSets, url.Values{"limit": {"1"}, "continue": {"not-a-token"}}, "continue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := api.do(t, http.MethodGet, tc.path+"?"+tc.query.Encode(), "", nil)
			status := resp.requireStatus(t, http.StatusBadRequest, metav1.StatusReasonBadRequest)
			if !strings.Contains(status.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", status.Message, tc.mention)
			}
		})
	}
}

// rawAPI sends raw requests to a test server as its admin.
type rawAPI struct {
	client *http.Client
	host   string
}

func newRawAPI(t *testing.T, ts *capstantesting.TestServer) rawAPI {
	t.Helper()
	client, err := rest.HTTPClientFor(ts.ClientConfig)
	if err != nil {
		t.Fatalf("building the HTTP client: %v", err)
	}
	return rawAPI{client: client, host: strings.TrimSuffix(ts.ClientConfig.Host, "/")}
}

// rawResponse is a whole response, read.
type rawResponse struct {
	method, path string
	code         int
	header       http.Header
	body         []byte
}

func (a rawAPI) do(t *testing.T, method, path, contentType string, body []byte, header ...string) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("building %s %s: %v", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, shortPath(path), err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", method, shortPath(path), err)
	}
	return rawResponse{method: method, path: path, code: resp.StatusCode, header: resp.Header, body: respBody}
}

// requireCode fails unless the response has the given status code.
func (r rawResponse) requireCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s %s: got HTTP %d, want %d; body: %s", r.method, shortPath(r.path), r.code, code, head(r.body))
	}
}

// requireStatus fails unless the response is a Status with the given code and reason.
func (r rawResponse) requireStatus(t *testing.T, code int, reason metav1.StatusReason) metav1.Status {
	t.Helper()
	r.requireCode(t, code)
	var status metav1.Status
	if err := json.Unmarshal(r.body, &status); err != nil || status.Kind != "Status" {
		t.Fatalf("%s %s: HTTP %d body is not a Status (%v): %s", r.method, shortPath(r.path), r.code, err, head(r.body))
	}
	if status.Status != metav1.StatusFailure || status.Code != int32(code) || status.Reason != reason {
		t.Fatalf("%s %s: Status {status %q, code %d, reason %q}, want {Failure, %d, %q}; message: %s",
			r.method, shortPath(r.path), status.Status, status.Code, status.Reason, code, reason, status.Message)
	}
	if status.Message == "" {
		t.Errorf("%s %s: Status has no message", r.method, shortPath(r.path))
	}
	return status
}

// requireCause fails unless the Status names field with the given cause type.
func requireCause(t *testing.T, status metav1.Status, field string, causeType metav1.CauseType) {
	t.Helper()
	if status.Details == nil {
		t.Fatalf("Status has no details; message: %s", status.Message)
	}
	for _, c := range status.Details.Causes {
		if c.Field == field && c.Type == causeType {
			return
		}
	}
	t.Fatalf("Status causes %+v do not include {field %q, type %q}; message: %s", status.Details.Causes, field, causeType, status.Message)
}

// requireNotEtcdTooLarge fails when etcd's own size limit leaked through.
func requireNotEtcdTooLarge(t *testing.T, r rawResponse) {
	t.Helper()
	if r.code >= 500 || bytes.Contains(r.body, []byte("request is too large")) || r.code == http.StatusRequestEntityTooLarge {
		t.Fatalf("%s %s: got HTTP %d from etcd's request limit, not Capstan's validation: %s", r.method, shortPath(r.path), r.code, head(r.body))
	}
}

// requireNotFound fails unless GET path is a 404 NotFound.
func (a rawAPI) requireNotFound(t *testing.T, path string) {
	t.Helper()
	resp := a.do(t, http.MethodGet, path, "", nil)
	if resp.code != http.StatusNotFound {
		t.Fatalf("after the rejected request, GET %s is HTTP %d, want 404: something was written: %s", path, resp.code, head(resp.body))
	}
	resp.requireStatus(t, http.StatusNotFound, metav1.StatusReasonNotFound)
}

// createConfigSet creates a ConfigSet in badInputNamespace with the given spec JSON.
func (a rawAPI) createConfigSet(t *testing.T, name, spec string) *v1beta1.ConfigSet {
	t.Helper()
	body := fmt.Sprintf(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":%q},"spec":%s}`, name, spec)
	resp := a.do(t, http.MethodPost, badInputConfigSets, "application/json", []byte(body))
	resp.requireCode(t, http.StatusCreated)
	var cs v1beta1.ConfigSet
	if err := json.Unmarshal(resp.body, &cs); err != nil {
		t.Fatalf("decoding the created ConfigSet: %v", err)
	}
	return &cs
}

func (a rawAPI) getConfigSet(t *testing.T, name string) *v1beta1.ConfigSet {
	t.Helper()
	resp := a.do(t, http.MethodGet, badInputConfigSets+"/"+name, "", nil)
	resp.requireCode(t, http.StatusOK)
	var cs v1beta1.ConfigSet
	if err := json.Unmarshal(resp.body, &cs); err != nil {
		t.Fatalf("decoding ConfigSet %s: %v", name, err)
	}
	return &cs
}

// requireUnchanged fails unless the stored ConfigSet still has want's
// resourceVersion, generation, revision and entries.
func (a rawAPI) requireUnchanged(t *testing.T, want *v1beta1.ConfigSet) {
	t.Helper()
	got := a.getConfigSet(t, want.Name)
	if got.ResourceVersion != want.ResourceVersion {
		t.Errorf("resourceVersion of %s is %s after the rejected request, want %s unchanged", want.Name, got.ResourceVersion, want.ResourceVersion)
	}
	if got.Generation != want.Generation || got.Status.CurrentRevision != want.Status.CurrentRevision {
		t.Errorf("%s has generation %d, revision %d after the rejected request; want %d, %d",
			want.Name, got.Generation, got.Status.CurrentRevision, want.Generation, want.Status.CurrentRevision)
	}
	gotEntries, _ := json.Marshal([]any{got.Spec.Data, got.Spec.SecretData, got.Spec.Immutable})
	wantEntries, _ := json.Marshal([]any{want.Spec.Data, want.Spec.SecretData, want.Spec.Immutable})
	if !bytes.Equal(gotEntries, wantEntries) {
		t.Errorf("%s spec is %s after the rejected request, want %s", want.Name, head(gotEntries), head(wantEntries))
	}
}

// requireRevisions fails unless the ConfigSet named configSet in
// badInputNamespace has exactly want ConfigRevisions.
func (a rawAPI) requireRevisions(t *testing.T, configSet string, want int) {
	t.Helper()
	query := url.Values{"labelSelector": {config.ConfigSetLabel + "=" + configSet}}
	resp := a.do(t, http.MethodGet, "/apis/config.capstan.dev/v1beta1/namespaces/"+badInputNamespace+"/configrevisions?"+query.Encode(), "", nil)
	resp.requireCode(t, http.StatusOK)
	var list v1beta1.ConfigRevisionList
	if err := json.Unmarshal(resp.body, &list); err != nil {
		t.Fatalf("decoding the ConfigRevisions of %s: %v", configSet, err)
	}
	if len(list.Items) != want {
		var revs []int64
		for _, r := range list.Items {
			revs = append(revs, r.Revision)
		}
		t.Errorf("ConfigSet %s has %d ConfigRevisions %v, want %d", configSet, len(list.Items), revs, want)
	}
}

// configSetJSON is a v1beta1 ConfigSet with the given data, as a request
// body. '<', '>' and '&' are sent as they are, not escaped, so that the body
// is as small as the entries.
func configSetJSON(name string, data map[string]string) []byte {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	err := enc.Encode(map[string]any{
		"apiVersion": "config.capstan.dev/v1beta1",
		"kind":       "ConfigSet",
		"metadata":   map[string]any{"name": name},
		"spec":       map[string]any{"data": data},
	})
	if err != nil {
		panic(err)
	}
	return body.Bytes()
}

func base64Of(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}

// shortPath drops the query, which may be long, from messages.
func shortPath(path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 && len(path) > 200 {
		return path[:i] + "?…"
	}
	return path
}
