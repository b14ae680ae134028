package failover

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/drover/drover/internal/testenv"
)

// writeTestKubeconfig writes a kubeconfig like the servers': cluster,
// user and context "drover", and a leading comment.
func writeTestKubeconfig(t *testing.T, server string, ca []byte, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["drover"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["drover"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["drover"] = &clientcmdapi.Context{Cluster: "drover", AuthInfo: "drover"}
	cfg.CurrentContext = "drover"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(path, append([]byte("# Drover kubeconfig for user \"admin\".\n"), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKubeconfigServers(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	path := writeTestKubeconfig(t, "https://10.0.0.1:6443", ca, "tok")
	changed, err := SetKubeconfigServers(path, map[string]string{"s2": "https://10.0.0.2:6443", "s3": "https://10.0.0.3:6443", "s1": "https://10.0.0.1:6443"})
	if err != nil || !changed {
		t.Fatalf("SetKubeconfigServers = %v, %v", changed, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# Drover kubeconfig for user \"admin\".\n") {
		t.Errorf("the leading comment is gone:\n%s", data)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "drover" || cfg.Clusters["drover"].Server != "https://10.0.0.1:6443" {
		t.Errorf("the current context changed: %s, %v", cfg.CurrentContext, cfg.Clusters["drover"])
	}
	if len(cfg.Clusters) != 3 || cfg.Clusters["drover@s2"] == nil || cfg.Contexts["drover@s3"] == nil ||
		cfg.Contexts["drover@s3"].AuthInfo != "drover" || string(cfg.Clusters["drover@s3"].CertificateAuthorityData) != string(ca) {
		t.Fatalf("clusters %v contexts %v: want drover, drover@s2, drover@s3 with the same CA and user", cfg.Clusters, cfg.Contexts)
	}
	if got, want := KubeconfigSeeds(*cfg, "https://10.0.0.1:6443"), []string{"https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"}; !slices.Equal(got, want) {
		t.Errorf("KubeconfigSeeds = %v, want %v", got, want)
	}
	// From another server's context (kubectl --context drover@s3): the family still.
	if got, want := KubeconfigSeeds(*cfg, "https://10.0.0.3:6443"), []string{"https://10.0.0.3:6443", "https://10.0.0.1:6443", "https://10.0.0.2:6443"}; !slices.Equal(got, want) {
		t.Errorf("KubeconfigSeeds from drover@s3 = %v, want %v", got, want)
	}
	// An overridden server, or a cluster of another CA, is alone.
	if got := KubeconfigSeeds(*cfg, "https://10.9.9.9:6443"); !slices.Equal(got, []string{"https://10.9.9.9:6443"}) {
		t.Errorf("KubeconfigSeeds for an unknown server = %v", got)
	}
	cfg.Clusters["drover@other"] = &clientcmdapi.Cluster{Server: "https://10.0.0.9:6443", CertificateAuthorityData: []byte("other CA")}
	if got := KubeconfigSeeds(*cfg, "https://10.0.0.1:6443"); slices.Contains(got, "https://10.0.0.9:6443") {
		t.Errorf("KubeconfigSeeds took a cluster of another CA: %v", got)
	}

	// The same list again changes nothing; a shorter one drops the rest.
	if changed, err := SetKubeconfigServers(path, map[string]string{"s2": "https://10.0.0.2:6443", "s3": "https://10.0.0.3:6443"}); err != nil || changed {
		t.Errorf("same servers again: changed %v, %v", changed, err)
	}
	if changed, err := SetKubeconfigServers(path, map[string]string{"s3": "https://10.0.0.3:6443"}); err != nil || !changed {
		t.Errorf("fewer servers: changed %v, %v", changed, err)
	}
	cfg, _ = clientcmd.LoadFromFile(path)
	if len(cfg.Clusters) != 2 || cfg.Contexts["drover@s2"] != nil {
		t.Errorf("after s2 left: clusters %v contexts %v", cfg.Clusters, cfg.Contexts)
	}
	if _, err := SetKubeconfigServers(filepath.Join(t.TempDir(), "none"), nil); err == nil {
		t.Error("a missing kubeconfig: no error")
	}
}

// TestKubeconfigFailover: a client loaded from a kubeconfig whose current
// server is dead reaches the cluster through another server it lists.
func TestKubeconfigFailover(t *testing.T) {
	env := testenv.Start(t)
	dead := "http://" + strings.TrimPrefix(deadURL(t), "https://")
	path := writeTestKubeconfig(t, dead, nil, testenv.AdminToken)
	if _, err := SetKubeconfigServers(path, map[string]string{"b": env.URL}); err != nil {
		t.Fatal(err)
	}
	load := func() *rest.Config {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.BearerToken = testenv.AdminToken // clientcmd sends no credentials over plain http
		return cfg
	}
	wrap := WrapKubeconfig(func() (clientcmdapi.Config, error) {
		c, err := clientcmd.LoadFromFile(path)
		return *c, err
	})
	for i := range 2 {
		cfg := wrap(load())
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kube.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
			t.Fatalf("client %d through a kubeconfig whose server is dead: %v", i, err)
		}
		if i == 1 && cfg.Host != env.URL {
			t.Errorf("the second client starts at %s, want the live %s", cfg.Host, env.URL)
		}
	}
	cfg := ConfigureFromKubeconfig(load(), path)
	if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("ConfigureFromKubeconfig: %v", err)
	}
}
