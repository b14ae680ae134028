package apiserver

import (
	"maps"
	"mime"
	"testing"
)

// TestParseMediaTypeAgreesWithMime: the fast path for types without
// parameters answers as mime.ParseMediaType does, for valid and invalid
// values alike.
func TestParseMediaTypeAgreesWithMime(t *testing.T) {
	for _, v := range []string{
		"application/json", "Application/JSON", " application/vnd.kubernetes.protobuf ", "*/*", "application/*",
		"application/json;as=Table;g=meta.k8s.io;v=v1", "application/json; charset=utf-8", "text/plain;",
		"", "/", "a/", "/b", "a/b/c", "application", "a b/c", "a/b c", "a/b\t", "a(b/c", "a/b@", "é/json", "a/b\x7f",
		"application/json;", "application/json;=x", "application/json;a=\"b c\"",
	} {
		wantMT, wantParams, wantErr := mime.ParseMediaType(v)
		mt, params, err := parseMediaType(v)
		if (err == nil) != (wantErr == nil) || (err == nil && (mt != wantMT || !maps.Equal(params, wantParams))) {
			t.Errorf("parseMediaType(%q) = %q %v %v, mime's %q %v %v", v, mt, params, err, wantMT, wantParams, wantErr)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _, _ = parseMediaType("application/vnd.kubernetes.protobuf") }); allocs != 0 {
		t.Errorf("a plain media type costs %.0f allocations, want 0", allocs)
	}
}
