package kubeclient

import (
	"testing"

	"k8s.io/client-go/rest"
)

func TestProtobufCopies(t *testing.T) {
	orig := &rest.Config{Host: "https://example:6443", QPS: 7}
	got := Protobuf(orig)
	if got.ContentType != "application/vnd.kubernetes.protobuf" || got.AcceptContentTypes != "application/vnd.kubernetes.protobuf,application/json" {
		t.Errorf("content types %q / %q", got.ContentType, got.AcceptContentTypes)
	}
	if got.Host != orig.Host || got.QPS != 7 {
		t.Errorf("settings not kept: %+v", got)
	}
	if orig.ContentType != "" || orig.AcceptContentTypes != "" {
		t.Errorf("the original was changed: %+v", orig)
	}
}
