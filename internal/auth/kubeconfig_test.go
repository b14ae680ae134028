package auth

import (
	"bytes"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestWriteKubeconfigLoadsWithClientcmd(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.kubeconfig")
	if err := WriteKubeconfig(path, "https://127.0.0.1:6443", ca.CertPEM(), "admin", "tok"); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	assertMode(t, path, 0o600)

	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if cfg.CurrentContext != "drover" {
		t.Errorf("current context = %q", cfg.CurrentContext)
	}
	ctx := cfg.Contexts["drover"]
	if ctx == nil || ctx.Cluster != "drover" || ctx.AuthInfo != "drover" {
		t.Fatalf("context = %+v", ctx)
	}

	rest, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("rest config: %v", err)
	}
	if rest.Host != "https://127.0.0.1:6443" {
		t.Errorf("host = %q", rest.Host)
	}
	if rest.BearerToken != "tok" {
		t.Errorf("token = %q", rest.BearerToken)
	}
	if !bytes.Equal(rest.TLSClientConfig.CAData, ca.CertPEM()) {
		t.Error("CA data differs from the CA certificate")
	}

	// Rewriting (e.g. after the address changed) replaces the file.
	if err := WriteKubeconfig(path, "https://10.0.0.1:6443", ca.CertPEM(), "admin", "tok"); err != nil {
		t.Fatal(err)
	}
	rest, err = clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if rest.Host != "https://10.0.0.1:6443" {
		t.Errorf("after rewrite host = %q", rest.Host)
	}
}
