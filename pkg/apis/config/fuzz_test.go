package config_test

import (
	"bytes"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/install"
	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apis/config/validation"
)

// The fuzz targets feed arbitrary bytes to the codecs the server decodes
// request bodies with, and anything that decodes to the validation the server
// runs next and to the encoders of both served versions. Only a panic fails:
// a decode or encode error is the codec doing its job. The seed corpus under
// testdata/fuzz runs with every go test.

var (
	fuzzScheme   = func() *runtime.Scheme { s := runtime.NewScheme(); install.Install(s); return s }()
	fuzzCodecs   = serializer.NewCodecFactory(fuzzScheme)
	fuzzDecoder  = fuzzCodecs.UniversalDecoder()
	fuzzEncoders = []runtime.Encoder{
		fuzzCodecs.LegacyCodec(v1beta1.SchemeGroupVersion),
		fuzzCodecs.LegacyCodec(v1alpha1.SchemeGroupVersion),
	}
)

// fuzzDecode decodes data into into and reports whether it succeeded.
func fuzzDecode(data []byte, into runtime.Object) bool {
	obj, _, err := fuzzDecoder.Decode(data, nil, into)
	return err == nil && obj == into
}

func fuzzEncode(obj runtime.Object) {
	for _, enc := range fuzzEncoders {
		var buf bytes.Buffer
		_ = enc.Encode(obj, &buf)
	}
}

func FuzzDecodeConfigSet(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cs := &config.ConfigSet{}
		if !fuzzDecode(data, cs) {
			return
		}
		_ = validation.ValidateConfigSet(cs)
		_ = validation.ValidateConfigSetUpdate(cs, cs.DeepCopy())
		fuzzEncode(cs)
	})
}

func FuzzDecodeConfigPolicy(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &config.ConfigPolicy{}
		if !fuzzDecode(data, p) {
			return
		}
		_ = validation.ValidateConfigPolicy(p)
		fuzzEncode(p)
	})
}

func FuzzDecodeConfigRevision(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &config.ConfigRevision{}
		if !fuzzDecode(data, r) {
			return
		}
		_ = validation.ValidateConfigRevision(r)
		fuzzEncode(r)
	})
}

// FuzzValidateEntries checks that ValidateConfigSet, on an otherwise valid
// ConfigSet with one plain and one secret entry, reports an error exactly when
// a key is not a valid ConfigMap key or the two keys are the same.
func FuzzValidateEntries(f *testing.F) {
	f.Add("key", "value", "secret", []byte("s3cr3t"))
	f.Add("a.b-c_d", "", "a.b-c_d", []byte{})
	f.Add("", "v", ".", []byte{0})
	f.Add("..", "v", "a/b", []byte("x"))
	f.Add("ключ", "\x00\xff", "k", []byte("<&>"))
	f.Fuzz(func(t *testing.T, key, value, secretKey string, secretValue []byte) {
		cs := &config.ConfigSet{}
		cs.Name = "fuzz"
		cs.Namespace = "default"
		cs.Spec.RevisionHistoryLimit = 10
		cs.Spec.Data = map[string]string{key: value}
		cs.Spec.SecretData = map[string][]byte{secretKey: secretValue}
		errs := validation.ValidateConfigSet(cs)
		wantErr := len(utilvalidation.IsConfigMapKey(key)) > 0 || len(utilvalidation.IsConfigMapKey(secretKey)) > 0 || key == secretKey
		if wantErr != (len(errs) > 0) {
			t.Fatalf("data key %q, secretData key %q: want an error: %v, got %v", key, secretKey, wantErr, errs.ToAggregate())
		}
		fuzzEncode(cs)
	})
}
