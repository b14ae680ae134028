package auth

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeconfigName names the cluster, user and context in kubeconfigs Drover writes.
const KubeconfigName = "drover"

// WriteKubeconfig writes a kubeconfig (mode 0600) that reaches serverURL,
// trusts caPEM, and authenticates as userName with the bearer token. The
// cluster, user and context are all named "drover", and the context is current;
// userName is recorded in a leading comment for human readers.
func WriteKubeconfig(path, serverURL string, caPEM []byte, userName, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[KubeconfigName] = &clientcmdapi.Cluster{
		Server:                   serverURL,
		CertificateAuthorityData: caPEM,
	}
	cfg.AuthInfos[KubeconfigName] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[KubeconfigName] = &clientcmdapi.Context{
		Cluster:  KubeconfigName,
		AuthInfo: KubeconfigName,
	}
	cfg.CurrentContext = KubeconfigName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("auth: encode kubeconfig: %w", err)
	}
	if userName != "" {
		// The token alone says who this is; tell human readers too.
		data = append([]byte(fmt.Sprintf("# Drover kubeconfig for user %q.\n", userName)), data...)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: create kubeconfig dir: %w", err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("auth: write kubeconfig: %w", err)
	}
	return nil
}
