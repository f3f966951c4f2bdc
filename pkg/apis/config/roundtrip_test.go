package config_test

import (
	"math/rand"
	"testing"

	apitestingfuzzer "k8s.io/apimachinery/pkg/api/apitesting/fuzzer"
	"k8s.io/apimachinery/pkg/api/apitesting/roundtrip"
	metafuzzer "k8s.io/apimachinery/pkg/apis/meta/fuzzer"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"

	"capstan.dev/capstan/pkg/apis/config/fuzzer"
	"capstan.dev/capstan/pkg/apis/config/install"
)

// Capstan serves JSON, YAML and protobuf (and CBOR where the server enables
// it); the round trips here cover JSON and protobuf.

// TestRoundTripTypes fuzzes every internal type and sends it through each
// served version and JSON back to the internal type.
func TestRoundTripTypes(t *testing.T) {
	roundtrip.RoundTripTestForAPIGroup(t, install.Install, fuzzer.Funcs)
}

// TestRoundTripTypesProtobuf does the same through protobuf.
func TestRoundTripTypesProtobuf(t *testing.T) {
	roundtrip.RoundTripProtobufTestForAPIGroup(t, install.Install, fuzzer.Funcs)
}

// TestRoundTripExternalTypes fuzzes every versioned type directly and sends it
// through JSON and protobuf, which catches a versioned field that does not
// serialize.
func TestRoundTripExternalTypes(t *testing.T) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	codecs := runtimeserializer.NewCodecFactory(scheme)
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	f := apitestingfuzzer.FuzzerFor(apitestingfuzzer.MergeFuzzerFuncs(metafuzzer.Funcs, fuzzer.Funcs), rand.NewSource(seed), codecs)
	roundtrip.RoundTripExternalTypes(t, scheme, codecs, f, nil)
}

// TestRoundTripToUnstructured sends every versioned type through JSON and CBOR
// into unstructured objects, as dynamic clients and server-side apply see them.
func TestRoundTripToUnstructured(t *testing.T) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	// The option kinds metav1.AddToGroupVersion registers in each version
	// (CreateOptions, PatchOptions...) have no internal type to start from, so
	// they are fuzzed in their versioned form.
	nointernal := sets.New[schema.GroupVersionKind]()
	for gvk := range scheme.AllKnownTypes() {
		if gvk.Version != runtime.APIVersionInternal && !scheme.Recognizes(gvk.GroupKind().WithVersion(runtime.APIVersionInternal)) {
			nointernal.Insert(gvk)
		}
	}
	roundtrip.RoundtripToUnstructured(t, scheme, fuzzer.Funcs, nil, nointernal)
}
