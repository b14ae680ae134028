package apiserver

import (
	"net/http/httptest"
	"testing"
)

// TestParseRequestInfoDoesNotAllocate: every request is parsed several
// times (limits, authorization, routing, metrics), so parsing must not
// allocate.
func TestParseRequestInfoDoesNotAllocate(t *testing.T) {
	r := httptest.NewRequest("PUT", "/api/v1/namespaces/default/pods/web-1/status", nil)
	var info requestInfo
	allocs := testing.AllocsPerRun(100, func() { info, _ = parseRequestInfo(r) })
	if allocs != 0 {
		t.Errorf("parseRequestInfo allocates %.0f times per call, want 0", allocs)
	}
	want := requestInfo{Version: "v1", Namespace: "default", Resource: "pods", Name: "web-1", Subresource: "status", Verb: "update"}
	if info != want {
		t.Errorf("parsed %+v, want %+v", info, want)
	}
	long := httptest.NewRequest("GET", "/apis/g/v1/namespaces/ns/things/x/sub/a/b/c/d", nil)
	if _, ok := parseRequestInfo(long); ok {
		t.Error("a path with more segments than any API path was parsed")
	}
}
