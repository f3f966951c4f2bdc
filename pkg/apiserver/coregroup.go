package apiserver

import (
	"net/http"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	discoveryendpoint "k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	"k8s.io/apiserver/pkg/endpoints/handlers/negotiation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	genericapiserver "k8s.io/apiserver/pkg/server"
)

// installEmptyCoreGroup serves the discovery of the legacy core group with
// no resources: /api (plain and aggregated, as kube-apiserver serves it) and
// /api/v1. kubectl builds its REST mapper from discovery and maps kind List,
// what `kubectl get -o yaml` writes for several objects, only in a version
// it discovered, and List is core v1's: without this group, `kubectl apply
// -f` of such a file fails in local mode with `no matches for kind "List"
// in version "v1"`. In aggregated mode kube-apiserver serves the core group.
//
// Clients use the aggregated form, where a version without resources is
// simply empty; a client that reads /api/v1 itself finds an empty list.
func installEmptyCoreGroup(s *genericapiserver.GenericAPIServer) {
	s.AggregatedLegacyDiscoveryGroupManager.AddGroupVersion("", apidiscoveryv2.APIVersionDiscovery{
		Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
		Version:   "v1",
		Resources: []apidiscoveryv2.APIResourceDiscovery{},
	})
	legacy := discovery.NewLegacyRootAPIHandler(discovery.DefaultAddresses{DefaultAddress: s.ExternalAddress}, s.Serializer, "/api")
	wrapped := discoveryendpoint.WrapAggregatedDiscoveryToHandler(legacy, s.AggregatedLegacyDiscoveryGroupManager, s.AggregatedLegacyDiscoveryGroupManager)
	s.Handler.GoRestfulContainer.Add(wrapped.GenerateWebService("/api", metav1.APIVersions{}))

	resources := &metav1.APIResourceList{GroupVersion: "v1", APIResources: []metav1.APIResource{}}
	s.Handler.NonGoRestfulMux.HandleFunc("/api/v1", func(w http.ResponseWriter, req *http.Request) {
		responsewriters.WriteObjectNegotiated(s.Serializer, negotiation.DefaultEndpointRestrictions, schema.GroupVersion{},
			w, req, http.StatusOK, resources, false)
	})
}
