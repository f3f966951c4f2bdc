// Package fuzzer fills config.capstan.dev objects with random values for the
// round-trip tests, keeping out of them only what a round trip legitimately
// changes.
package fuzzer

import (
	"sigs.k8s.io/randfill"

	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"

	"capstan.dev/capstan/pkg/apis/config"
)

// enforcements are the values defaulting leaves in place; any other value
// (the empty one above all, which defaulting turns into Deny) would not come
// back from a round trip unchanged.
var enforcements = []config.EnforcementAction{config.EnforcementDeny, config.EnforcementWarn}

// Funcs returns the fuzzer functions for config.capstan.dev, for use with
// k8s.io/apimachinery/pkg/api/apitesting/fuzzer and its roundtrip package.
//
// Only ConfigPolicy's enforcement needs one: the other defaulted fields
// (immutable, revisionHistoryLimit) are plain values in the internal types and
// always reach the versioned ones as set pointers, which defaulting keeps; and
// the v1alpha1 entry list carries data and secretData both ways, a key in both
// included, nil and empty maps and values being equal to the round trip.
var Funcs = func(codecs runtimeserializer.CodecFactory) []interface{} {
	return []interface{}{
		func(e *config.EnforcementAction, c randfill.Continue) {
			*e = enforcements[c.Intn(len(enforcements))]
		},
	}
}
