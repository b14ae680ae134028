package dns

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Limits of a pod's resolver configuration, as the kubelet applies them.
const (
	MaxNameservers = 3
	MaxSearches    = 32
	// ClusterNdots is the ndots option of pods using the cluster DNS, so
	// that "web", "web.prod" and "web.prod.svc" go through the search path.
	ClusterNdots = "ndots:5"
)

// ResolverConfig is what goes into a pod's /etc/resolv.conf.
type ResolverConfig struct {
	Servers  []string
	Searches []string
	Options  []string
}

// ReadResolvConf reads a resolv.conf file (nameserver, search/domain,
// options lines); a missing file is an empty configuration.
func ReadResolvConf(path string) (ResolverConfig, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return ResolverConfig{}, nil
	}
	if err != nil {
		return ResolverConfig{}, fmt.Errorf("dns: reading %s: %w", path, err)
	}
	defer f.Close()
	var c ResolverConfig
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line, _, _ = strings.Cut(line, ";")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			c.Servers = append(c.Servers, f[1])
		case "search", "domain":
			c.Searches = f[1:] // the last search or domain line wins
		case "options":
			c.Options = append(c.Options, f[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return ResolverConfig{}, fmt.Errorf("dns: reading %s: %w", path, err)
	}
	return c, nil
}

// ForPod is the resolver configuration of pod, as the kubelet computes
// it from the pod's dnsPolicy and dnsConfig:
//
//   - ClusterFirst (the default): the cluster DNS servers, the search path
//     <namespace>.svc.<domain> svc.<domain> <domain> followed by the host's,
//     and ndots:5; a hostNetwork pod, or any pod when clusterDNS is empty,
//     gets Default instead;
//   - ClusterFirstWithHostNet: as ClusterFirst, hostNetwork or not;
//   - Default: the host's configuration;
//   - None: only what dnsConfig says;
//
// then dnsConfig's nameservers and searches are appended (duplicates
// dropped) and its options override those of the same name. At most
// MaxNameservers servers and MaxSearches search domains are kept.
func ForPod(pod *corev1.Pod, clusterDNS []string, domain string, host ResolverConfig) ResolverConfig {
	if domain == "" {
		domain = DefaultDomain
	}
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	cluster := len(clusterDNS) > 0
	var c ResolverConfig
	switch {
	case policy == corev1.DNSNone:
	case policy == corev1.DNSClusterFirstWithHostNet && cluster,
		policy == corev1.DNSClusterFirst && cluster && !pod.Spec.HostNetwork:
		c.Servers = slices.Clone(clusterDNS)
		c.Searches = append([]string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}, host.Searches...)
		c.Options = []string{ClusterNdots}
	default: // Default, or cluster DNS asked for but not available
		c = ResolverConfig{Servers: slices.Clone(host.Servers), Searches: slices.Clone(host.Searches), Options: slices.Clone(host.Options)}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		c.Servers = append(c.Servers, dc.Nameservers...)
		c.Searches = append(c.Searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			c.Options = slices.DeleteFunc(c.Options, func(x string) bool {
				name, _, _ := strings.Cut(x, ":")
				return name == o.Name
			})
			c.Options = append(c.Options, opt)
		}
	}
	c.Servers = firstUnique(c.Servers, MaxNameservers)
	c.Searches = firstUnique(c.Searches, MaxSearches)
	return c
}

// firstUnique keeps the first n distinct, non-empty values in order.
func firstUnique(in []string, n int) []string {
	var out []string
	for _, s := range in {
		s = strings.TrimSuffix(s, ".")
		if s == "" || slices.Contains(out, s) {
			continue
		}
		if len(out) == n {
			break
		}
		out = append(out, s)
	}
	return out
}
