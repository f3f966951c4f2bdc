package v1alpha1_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/install"
	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/validation"
)

func newScheme(t *testing.T) (*runtime.Scheme, runtimeserializer.CodecFactory) {
	t.Helper()
	scheme := runtime.NewScheme()
	install.Install(scheme)
	return scheme, runtimeserializer.NewCodecFactory(scheme)
}

// binary is a secret value that is not UTF-8, so that it only survives as bytes.
var binary = []byte{0x00, 0xff, 0xfe, 'a', 0x80}

// hubConfigSet has entries in both maps, in an order their keys do not sort in,
// with a binary secret value and an empty one.
func hubConfigSet() *config.ConfigSet {
	return &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"},
		Spec: config.ConfigSetSpec{
			Data:                 map[string]string{"zeta": "last", "alpha": "first", "empty-plain": ""},
			SecretData:           map[string][]byte{"binary": binary, "empty-secret": {}, "beta": []byte("s3cr3t")},
			Immutable:            true,
			RevisionHistoryLimit: 7,
		},
		Status: config.ConfigSetStatus{CurrentRevision: 4, ObservedGeneration: 3},
	}
}

// wantEntries is hubConfigSet's entries in the v1alpha1 shape: sorted by key,
// secrets base64-encoded and marked.
var wantEntries = []v1alpha1.ConfigEntry{
	{Key: "alpha", Value: "first"},
	{Key: "beta", Value: base64.StdEncoding.EncodeToString([]byte("s3cr3t")), Secret: true},
	{Key: "binary", Value: base64.StdEncoding.EncodeToString(binary), Secret: true},
	{Key: "empty-plain", Value: ""},
	{Key: "empty-secret", Value: "", Secret: true},
	{Key: "zeta", Value: "last"},
}

func TestConfigSetConvertsToEntriesAndBack(t *testing.T) {
	scheme, _ := newScheme(t)
	hub := hubConfigSet()

	var alpha v1alpha1.ConfigSet
	if err := scheme.Convert(hub, &alpha, nil); err != nil {
		t.Fatalf("to v1alpha1: %v", err)
	}
	if diff := cmp.Diff(wantEntries, alpha.Spec.Entries); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if !ptr.Deref(alpha.Spec.Immutable, false) || ptr.Deref(alpha.Spec.RevisionHistoryLimit, 0) != 7 {
		t.Errorf("immutable/revisionHistoryLimit = %v/%v, want true/7", alpha.Spec.Immutable, alpha.Spec.RevisionHistoryLimit)
	}

	var back config.ConfigSet
	if err := scheme.Convert(&alpha, &back, nil); err != nil {
		t.Fatalf("from v1alpha1: %v", err)
	}
	if diff := cmp.Diff(hub, &back); diff != "" {
		t.Errorf("round trip changed the ConfigSet (-want +got):\n%s", diff)
	}
}

func TestConfigRevisionConvertsToEntriesAndBack(t *testing.T) {
	scheme, _ := newScheme(t)
	hubSet := hubConfigSet()
	hub := &config.ConfigRevision{
		ObjectMeta:    metav1.ObjectMeta{Name: "app-4", Namespace: "default"},
		ConfigSetName: "app",
		Revision:      4,
		Data:          hubSet.Spec.Data,
		SecretData:    hubSet.Spec.SecretData,
		Author:        "alice",
		ChangeCause:   "rotate",
		RollbackOf:    2,
	}

	var alpha v1alpha1.ConfigRevision
	if err := scheme.Convert(hub, &alpha, nil); err != nil {
		t.Fatalf("to v1alpha1: %v", err)
	}
	if diff := cmp.Diff(wantEntries, alpha.Entries); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	var back config.ConfigRevision
	if err := scheme.Convert(&alpha, &back, nil); err != nil {
		t.Fatalf("from v1alpha1: %v", err)
	}
	if diff := cmp.Diff(hub, &back); diff != "" {
		t.Errorf("round trip changed the ConfigRevision (-want +got):\n%s", diff)
	}
}

func TestNoEntriesConvertToNoEntries(t *testing.T) {
	scheme, _ := newScheme(t)
	for _, hub := range []*config.ConfigSet{
		{Spec: config.ConfigSetSpec{}},
		{Spec: config.ConfigSetSpec{Data: map[string]string{}, SecretData: map[string][]byte{}}},
	} {
		var alpha v1alpha1.ConfigSet
		if err := scheme.Convert(hub, &alpha, nil); err != nil {
			t.Fatal(err)
		}
		if alpha.Spec.Entries != nil {
			t.Errorf("entries = %#v, want none", alpha.Spec.Entries)
		}
		var back config.ConfigSet
		if err := scheme.Convert(&alpha, &back, nil); err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(hub, &back) {
			t.Errorf("round trip changed the ConfigSet: %s", cmp.Diff(hub, &back))
		}
	}
}

func TestEmptySecretStaysSecretThroughJSON(t *testing.T) {
	_, codecs := newScheme(t)
	codec := codecs.LegacyCodec(v1alpha1.SchemeGroupVersion)
	hub := hubConfigSet()

	encoded, err := runtime.Encode(codec, hub)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	// omitempty drops the empty value; the secret mark is all that says what it is.
	if !strings.Contains(string(encoded), `{"key":"empty-secret","secret":true}`) {
		t.Errorf("the empty secret entry is not marked secret in %s", encoded)
	}
	if !strings.Contains(string(encoded), `"apiVersion":"config.capstan.dev/v1alpha1"`) {
		t.Errorf("not encoded as v1alpha1: %s", encoded)
	}

	decoded, err := runtime.Decode(codec, encoded)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	got, ok := decoded.(*config.ConfigSet)
	if !ok {
		t.Fatalf("decoded a %T, want *config.ConfigSet", decoded)
	}
	if value, ok := got.Spec.SecretData["empty-secret"]; !ok || len(value) != 0 {
		t.Errorf("secretData[empty-secret] = %q, %v; want an empty secret", value, ok)
	}
	if _, ok := got.Spec.Data["empty-secret"]; ok {
		t.Error("the empty secret came back as a plain entry")
	}
	if diff := cmp.Diff(hub, got); diff != "" {
		t.Errorf("JSON round trip changed the ConfigSet (-want +got):\n%s", diff)
	}
}

func TestEntriesThatCannotConvert(t *testing.T) {
	tests := []struct {
		name    string
		entries []v1alpha1.ConfigEntry
		wantErr string
	}{
		{
			name:    "plain key twice",
			entries: []v1alpha1.ConfigEntry{{Key: "a", Value: "1"}, {Key: "b"}, {Key: "a", Value: "2"}},
			wantErr: `spec.entries[2]: duplicate key "a"`,
		},
		{
			name: "secret key twice",
			entries: []v1alpha1.ConfigEntry{
				{Key: "s", Value: "MQ==", Secret: true},
				{Key: "s", Value: "Mg==", Secret: true},
			},
			wantErr: `spec.entries[1]: duplicate key "s"`,
		},
		{
			name:    "secret value not base64",
			entries: []v1alpha1.ConfigEntry{{Key: "ok", Value: "not base64!", Secret: false}, {Key: "s", Value: "not base64!", Secret: true}},
			wantErr: "spec.entries[1].value: a secret entry's value must be base64",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scheme, _ := newScheme(t)
			alpha := &v1alpha1.ConfigSet{Spec: v1alpha1.ConfigSetSpec{Entries: tc.entries}}
			var hub config.ConfigSet
			err := scheme.Convert(alpha, &hub, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Convert = %v, want an error containing %q", err, tc.wantErr)
			}

			revision := &v1alpha1.ConfigRevision{Entries: tc.entries}
			var hubRevision config.ConfigRevision
			if err := scheme.Convert(revision, &hubRevision, nil); err == nil {
				t.Errorf("a ConfigRevision with the same entries converted")
			}
		})
	}
}

func TestInvalidBase64FailsToDecode(t *testing.T) {
	_, codecs := newScheme(t)
	body := `{"apiVersion":"config.capstan.dev/v1alpha1","kind":"ConfigSet","metadata":{"name":"app","namespace":"default"},` +
		`"spec":{"entries":[{"key":"s","value":"%%%","secret":true}]}}`
	if _, err := runtime.Decode(codecs.UniversalDecoder(), []byte(body)); err == nil ||
		!strings.Contains(err.Error(), "must be base64") {
		t.Errorf("Decode = %v, want an error saying the value must be base64", err)
	}
}

// A key listed once plain and once secret converts, so that validation reports
// it as it does for every version.
func TestKeyPlainAndSecretIsLeftToValidation(t *testing.T) {
	scheme, _ := newScheme(t)
	alpha := &v1alpha1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"},
		Spec: v1alpha1.ConfigSetSpec{
			Entries:              []v1alpha1.ConfigEntry{{Key: "k", Value: "plain"}, {Key: "k", Value: "c2VjcmV0", Secret: true}},
			RevisionHistoryLimit: ptr.To[int32](10),
		},
	}
	var hub config.ConfigSet
	if err := scheme.Convert(alpha, &hub, nil); err != nil {
		t.Fatalf("Convert: %v", err)
	}
	if hub.Spec.Data["k"] != "plain" || string(hub.Spec.SecretData["k"]) != "secret" {
		t.Errorf("data/secretData = %v/%v, want the key in both", hub.Spec.Data, hub.Spec.SecretData)
	}
	errs := validation.ValidateConfigSet(&hub)
	if len(errs) != 1 || errs[0].Type != field.ErrorTypeDuplicate || errs[0].Field != "spec.secretData[k]" {
		t.Errorf("validation = %v, want one Duplicate on spec.secretData[k]", errs)
	}
}
