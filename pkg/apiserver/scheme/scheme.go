// Package scheme holds the runtime.Scheme and codecs of Capstan's API server, in
// a leaf package (as kube-aggregator's pkg/apiserver/scheme) so that what
// encodes or decodes the served types need not import the server itself.
package scheme

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"capstan.dev/capstan/pkg/apis/config/install"
)

var (
	// Scheme knows every type the server encodes and decodes.
	Scheme = runtime.NewScheme()
	// Codecs serializes the Scheme's types.
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	install.Install(Scheme)

	// Options and status types every API server decodes in the "v1" of the core group.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned,
		&metav1.Status{},
		&metav1.APIVersions{},
		&metav1.APIGroupList{},
		&metav1.APIGroup{},
		&metav1.APIResourceList{},
	)
}
