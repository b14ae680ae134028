package main

import (
	"testing"

	clientversion "k8s.io/client-go/pkg/version"
	componentversion "k8s.io/component-base/version"
)

func TestKubeFromLibraryVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v0.37.2":        "v1.37.2",
		"v0.38.0-beta.1": "v1.38.0-beta.1",
		"v1.2.3":         "v1.2.3",
	} {
		if got := kubeFromLibraryVersion(in); got != want {
			t.Errorf("kubeFromLibraryVersion(%q) = %q, want %q", in, got, want)
		}
	}
	if ma, mi := majorMinor("v1.37.2"); ma != "1" || mi != "37" {
		t.Errorf("majorMinor = %q, %q", ma, mi)
	}
}

// The test binary is built without -ldflags, like go run: the Kubernetes
// libraries must still report a real version, as kubectl version prints it.
func TestKubernetesLibrariesReportRealVersion(t *testing.T) {
	want := kubernetesVersion()
	if want == "" || want[:3] == "v0." {
		t.Fatalf("kubernetesVersion() = %q, want v1.x", want)
	}
	if got := componentversion.Get().GitVersion; got != want {
		t.Errorf("component-base version = %q, want %q (kubectl version shows this)", got, want)
	}
	if got := componentversion.Get().Major; got != "1" {
		t.Errorf("component-base major = %q, want 1", got)
	}
	if got := clientversion.Get().GitVersion; got != want {
		t.Errorf("client-go version = %q, want %q (User-Agent uses this)", got, want)
	}
}
