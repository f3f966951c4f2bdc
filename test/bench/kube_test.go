package main

import "testing"

func TestSumRequests(t *testing.T) {
	const metrics = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="config.capstan.dev",resource="configsets",scope="resource",subresource="",verb="GET",version="v1beta1"} 12
apiserver_request_total{code="404",component="apiserver",dry_run="",group="config.capstan.dev",resource="configrevisions",scope="resource",subresource="",verb="GET",version="v1beta1"} 30
apiserver_request_total{code="201",component="apiserver",dry_run="",group="config.capstan.dev",resource="configsets",scope="resource",subresource="",verb="POST",version="v1beta1"} 500
apiserver_request_total{code="200",component="apiserver",dry_run="",group="bench.capstan.dev",resource="configsets",scope="resource",subresource="",verb="GET",version="v1beta1"} 7
apiserver_request_total_other{group="config.capstan.dev",verb="GET"} 1000
`
	if got := sumRequests(metrics, "config.capstan.dev", "GET"); got != 42 {
		t.Errorf("GETs of config.capstan.dev: %v, want 42", got)
	}
	if got := sumRequests(metrics, "bench.capstan.dev", "GET"); got != 7 {
		t.Errorf("GETs of bench.capstan.dev: %v, want 7", got)
	}
	if got := sumRequests(metrics, "config.capstan.dev", "POST"); got != 500 {
		t.Errorf("POSTs: %v, want 500", got)
	}
}
