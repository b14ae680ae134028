package failover

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Where the servers list themselves (see controlplane.ServersConfigMap).
const (
	serversNamespace = metav1.NamespacePublic
	serversConfigMap = "drover-servers"
	serversKey       = "servers"
)

// DefaultRefresh is how often Keep asks the cluster for its servers.
const DefaultRefresh = 10 * time.Second

// EndpointURLs are the https URLs of the addresses of default/kubernetes's
// Endpoints, as the servers write them: one per address and port.
func EndpointURLs(ep *corev1.Endpoints) []string {
	var out []string
	for _, ss := range ep.Subsets {
		for _, p := range ss.Ports {
			if p.Port <= 0 {
				continue
			}
			for _, a := range ss.Addresses {
				if a.IP == "" {
					continue
				}
				out = append(out, "https://"+net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	return out
}

// FromCluster returns the servers the cluster lists: the addresses of the
// default/kubernetes Endpoints (which every client that may read
// endpoints, nodes included, can read), else the URLs in the
// kube-public/drover-servers ConfigMap (which also names servers known by
// a DNS name rather than an IP).
func FromCluster(ctx context.Context, kube kubernetes.Interface) ([]string, error) {
	ep, epErr := kube.CoreV1().Endpoints(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if epErr == nil {
		if urls := EndpointURLs(ep); len(urls) > 0 {
			return urls, nil
		}
	}
	cm, err := kube.CoreV1().ConfigMaps(serversNamespace).Get(ctx, serversConfigMap, metav1.GetOptions{})
	if err != nil {
		if epErr != nil {
			return nil, fmt.Errorf("servers from the cluster: endpoints: %w; configmap: %w", epErr, err)
		}
		return nil, fmt.Errorf("servers from the cluster: no endpoint addresses; configmap: %w", err)
	}
	var out []string
	for _, u := range strings.Split(cm.Data[serversKey], ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out, nil
}

// Keep refreshes the learned servers with fetch at once and then every
// interval until ctx is done. Errors are logged at debug level: the
// previous list stays.
func (s *Servers) Keep(ctx context.Context, interval time.Duration, fetch func(context.Context) ([]string, error), log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fctx, cancel := context.WithTimeout(ctx, interval)
		urls, err := fetch(fctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Debug("learning the API servers", "err", err)
		case err == nil && s.SetLearned(urls):
			log.Info("API servers", "servers", strings.Join(s.List(), ","), "current", s.Current())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
