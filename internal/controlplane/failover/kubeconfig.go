package failover

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// A kubeconfig knows every server of its cluster this way: besides the
// cluster CLUSTER it uses, it has a cluster CLUSTER@NAME (and a context of
// that name, with the same user) for each other server NAME, with the same
// CA. Stock kubectl can pick one with --context CLUSTER@NAME; drover's
// clients (KubeconfigSeeds) fail over among all of them by themselves.

// serverSep separates a cluster's name from a server's in the names of
// the extra clusters and contexts.
const serverSep = "@"

// KubeconfigSeeds returns the servers to fail over among for a client of
// raw whose server is host: host first, then the servers of the clusters
// of the same family (CLUSTER and CLUSTER@NAME, CLUSTER being the name of a
// cluster whose server is host) that trust the same CA, sorted. Without
// such a cluster (e.g. the server was overridden) it is host alone.
func KubeconfigSeeds(raw clientcmdapi.Config, host string) []string {
	seeds := []string{host}
	var mine *clientcmdapi.Cluster
	var base string
	for _, name := range slices.Sorted(maps.Keys(raw.Clusters)) {
		if c := raw.Clusters[name]; c != nil && sameURL(c.Server, host) {
			mine, base = c, strings.SplitN(name, serverSep, 2)[0]
			break
		}
	}
	if mine == nil {
		return seeds
	}
	var others []string
	for name, c := range raw.Clusters {
		if c == nil || (name != base && !strings.HasPrefix(name, base+serverSep)) || !sameCA(c, mine) {
			continue
		}
		if u, err := NormalizeURL(c.Server); err == nil && !sameURL(u, host) && !slices.Contains(others, u) {
			others = append(others, u)
		}
	}
	slices.Sort(others)
	return append(seeds, others...)
}

func sameURL(a, b string) bool {
	na, errA := NormalizeURL(a)
	nb, errB := NormalizeURL(b)
	if errA != nil || errB != nil {
		return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
	}
	return na == nb
}

func sameCA(a, b *clientcmdapi.Cluster) bool {
	switch {
	case len(a.CertificateAuthorityData) > 0 || len(b.CertificateAuthorityData) > 0:
		return bytes.Equal(a.CertificateAuthorityData, b.CertificateAuthorityData)
	case a.CertificateAuthority != "" || b.CertificateAuthority != "":
		return a.CertificateAuthority == b.CertificateAuthority
	}
	return a.InsecureSkipTLSVerify == b.InsecureSkipTLSVerify // both trust the system's roots
}

// SetKubeconfigServers makes the kubeconfig at path list others (server
// name → URL) as clusters and contexts CLUSTER@NAME next to its current
// context's cluster CLUSTER, with that cluster's CA and the context's user,
// and no other CLUSTER@... entries. It rewrites the file (atomically, mode
// kept, leading comment lines kept) only when that changes it, and says
// whether it did.
func SetKubeconfigServers(path string, others map[string]string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("kubeconfig servers: %w", err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return false, fmt.Errorf("kubeconfig servers: %s: %w", path, err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster] == nil {
		return false, fmt.Errorf("kubeconfig servers: %s: no current context with a cluster", path)
	}
	base, mine := ctx.Cluster, cfg.Clusters[ctx.Cluster]
	if strings.Contains(base, serverSep) {
		return false, fmt.Errorf("kubeconfig servers: %s: the current cluster %q is itself one server's", path, base)
	}
	want := map[string]string{}
	for name, u := range others {
		if u != "" && !sameURL(u, mine.Server) {
			want[base+serverSep+name] = u
		}
	}
	have := map[string]string{}
	for name, c := range cfg.Clusters {
		if strings.HasPrefix(name, base+serverSep) {
			have[name] = c.Server
		}
	}
	if maps.Equal(have, want) {
		return false, nil
	}
	for name := range have {
		delete(cfg.Clusters, name)
		delete(cfg.Contexts, name)
	}
	for name, u := range want {
		c := mine.DeepCopy()
		c.Server = u
		c.LocationOfOrigin = ""
		cfg.Clusters[name] = c
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: ctx.AuthInfo, Namespace: ctx.Namespace}
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return false, fmt.Errorf("kubeconfig servers: encode: %w", err)
	}
	// Keep a leading comment (e.g. whose kubeconfig it is).
	var comment []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("#")) {
			break
		}
		comment = append(comment, line...)
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return true, writeAtomic(path, append(comment, out...), mode)
}

// writeAtomic replaces path with data through a temporary file in the
// same directory.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("kubeconfig servers: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("kubeconfig servers: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("kubeconfig servers: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("kubeconfig servers: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("kubeconfig servers: %w", err)
	}
	return nil
}

// WrapKubeconfig returns a wrapper of client configurations (as kubectl's
// ConfigFlags.WrapConfigFn takes) that makes each fail over among the
// servers KubeconfigSeeds finds for it in the kubeconfig raw returns.
// Configurations for the same server share one Servers, so what one
// client learns of a dead server the next one knows. Configurations with
// a single server, or their own Transport, are returned as they are.
func WrapKubeconfig(raw func() (clientcmdapi.Config, error)) func(*rest.Config) *rest.Config {
	var mu sync.Mutex
	byHost := map[string]*Servers{}
	return func(cfg *rest.Config) *rest.Config {
		if cfg == nil || cfg.Transport != nil {
			return cfg
		}
		mu.Lock()
		defer mu.Unlock()
		s := byHost[cfg.Host]
		if s == nil {
			rc, err := raw()
			if err != nil {
				return cfg
			}
			seeds := KubeconfigSeeds(rc, cfg.Host)
			if len(seeds) < 2 {
				return cfg
			}
			if s, err = New(seeds); err != nil {
				return cfg
			}
			byHost[cfg.Host] = s
		}
		s.Configure(cfg)
		return cfg
	}
}

// ConfigureFromKubeconfig makes cfg, loaded from the kubeconfig at path,
// fail over among the servers that kubeconfig lists (see WrapKubeconfig).
func ConfigureFromKubeconfig(cfg *rest.Config, path string) *rest.Config {
	return WrapKubeconfig(func() (clientcmdapi.Config, error) {
		c, err := clientcmd.LoadFromFile(path)
		if err != nil {
			return clientcmdapi.Config{}, err
		}
		return *c, nil
	})(cfg)
}
