package v1beta1_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/install"
)

// TestDecodingDefaults pins what a client gets when it leaves the defaulted
// fields out, in both served versions: validation and the fuzzer rely on
// these values never reaching the internal types empty.
func TestDecodingDefaults(t *testing.T) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	decoder := runtimeserializer.NewCodecFactory(scheme).UniversalDecoder()

	for _, version := range []string{"v1alpha1", "v1beta1"} {
		t.Run(version, func(t *testing.T) {
			apiVersion := `"apiVersion":"config.capstan.dev/` + version + `"`

			obj, err := runtime.Decode(decoder, []byte(`{`+apiVersion+`,"kind":"ConfigSet","metadata":{"name":"a"}}`))
			if err != nil {
				t.Fatal(err)
			}
			cs := obj.(*config.ConfigSet)
			if cs.Spec.RevisionHistoryLimit != config.DefaultRevisionHistoryLimit || cs.Spec.Immutable {
				t.Errorf("revisionHistoryLimit/immutable = %d/%v, want %d/false",
					cs.Spec.RevisionHistoryLimit, cs.Spec.Immutable, config.DefaultRevisionHistoryLimit)
			}

			obj, err = runtime.Decode(decoder, []byte(`{`+apiVersion+`,"kind":"ConfigSet","metadata":{"name":"a"},"spec":{"revisionHistoryLimit":0}}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := obj.(*config.ConfigSet).Spec.RevisionHistoryLimit; got != 0 {
				t.Errorf("an explicit revisionHistoryLimit of 0 became %d; validation must see it to refuse it", got)
			}

			obj, err = runtime.Decode(decoder, []byte(`{`+apiVersion+`,"kind":"ConfigPolicy","metadata":{"name":"p"}}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := obj.(*config.ConfigPolicy).Spec.Enforcement; got != config.EnforcementDeny {
				t.Errorf("enforcement = %q, want %q", got, config.EnforcementDeny)
			}
		})
	}
}
