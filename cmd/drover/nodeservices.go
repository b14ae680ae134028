package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/agent/noderuntime"
	"github.com/drover/drover/internal/dns"
	"github.com/drover/drover/internal/proxy"
	"github.com/drover/drover/internal/runtime/cri/containerd"
)

// Values of --proxy-mode and --cluster-dns besides the modes and addresses.
const (
	proxyModeAuto = "auto"
	proxyModeNone = "none"
	clusterDNSOff = "none"
)

// chainPrefixEnv, if set, is the default of --proxy-chain-prefix (tests
// that start many nodes give each run its own chains to clean up).
const chainPrefixEnv = "DROVER_PROXY_CHAIN_PREFIX"

// dnsRetryInterval is how often the cluster DNS tries again to listen
// (the pods' gateway address appears with the bridge, at the first pod).
const dnsRetryInterval = 250 * time.Millisecond

// nodeServiceFlags are the flags of a node's service proxy and cluster
// DNS, shared by `drover agent` and `drover up`.
type nodeServiceFlags struct {
	proxyMode     string
	chainPrefix   string
	clusterDNS    string
	clusterDomain string
}

func (f *nodeServiceFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.proxyMode, "proxy-mode", proxyModeAuto, "service proxy: iptables (kernel NAT rules; root), userspace (a TCP proxy per node port), none, or auto: iptables as root where iptables works, else userspace (none for --runtime sim)")
	prefix := os.Getenv(chainPrefixEnv)
	if prefix == "" {
		prefix = proxy.DefaultChainPrefix
	}
	fs.StringVar(&f.chainPrefix, "proxy-chain-prefix", prefix, "prefix of the proxy's iptables chains, at most 7 bytes (for several nodes on one machine; default $"+chainPrefixEnv+", else "+proxy.DefaultChainPrefix+")")
	_ = fs.MarkHidden("proxy-chain-prefix")
	fs.StringVar(&f.clusterDNS, "cluster-dns", "", `IP of the cluster DNS that pods get as nameserver, served by this node on IP:53 (root); default: the pods' gateway (the first address of the pod subnet) with Drover's own containerd, else none; "none" turns it off`)
	fs.StringVar(&f.clusterDomain, "cluster-domain", dns.DefaultDomain, "the cluster's DNS domain")
}

// nodeServices is what a node runs beside its agent: the service proxy
// and the cluster DNS.
type nodeServices struct {
	proxy      *proxy.Options // nil: no proxy
	dnsAddr    string         // host:port to serve DNS on; "" none
	clusterDNS []string
	domain     string
}

// plan resolves the flags for a node with the given runtime. It fails on a
// bad flag value.
func (f *nodeServiceFlags) plan(ctx context.Context, rtName, podSubnet, socket, nodeName, nodeIP string) (*nodeServices, error) {
	s := &nodeServices{domain: f.clusterDomain}
	mode := f.proxyMode
	switch mode {
	case proxyModeAuto, "":
		if rtName == noderuntime.Sim {
			mode = proxyModeNone
			break
		}
		m, err := proxy.ChooseMode(ctx, "")
		if err != nil {
			return nil, err
		}
		mode = m
	case proxy.ModeIPTables, proxy.ModeUserspace, proxyModeNone:
	default:
		return nil, fmt.Errorf("--proxy-mode %q: want auto, iptables, userspace or none", mode)
	}
	if mode != proxyModeNone {
		s.proxy = &proxy.Options{Mode: mode, NodeName: nodeName, NodeIP: nodeIP, ChainPrefix: f.chainPrefix}
		if rtName == noderuntime.CRI && socket == "" {
			s.proxy.ClusterCIDR = podSubnetOrDefault(podSubnet)
		}
	}

	switch ip := f.clusterDNS; {
	case ip == clusterDNSOff:
	case ip != "":
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("--cluster-dns %q: not an IP address", ip)
		}
		s.clusterDNS = []string{ip}
	case rtName == noderuntime.CRI && socket == "":
		gw, err := firstAddress(podSubnetOrDefault(podSubnet))
		if err != nil {
			return nil, fmt.Errorf("--pod-subnet: %w", err)
		}
		s.clusterDNS = []string{gw}
	}
	if len(s.clusterDNS) > 0 {
		s.dnsAddr = net.JoinHostPort(s.clusterDNS[0], "53")
	}
	return s, nil
}

// podSubnetOrDefault is the pod subnet of Drover's containerd.
func podSubnetOrDefault(s string) string {
	if s == "" {
		return containerd.DefaultPodSubnet
	}
	return s
}

// firstAddress is the first host address of a CIDR: where the CNI bridge
// puts the pods' gateway.
func firstAddress(cidr string) (string, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return "", err
	}
	return p.Masked().Addr().Next().String(), nil
}

// configure puts the cluster DNS into the agent's configuration.
func (s *nodeServices) configure(cfg *agent.Config) {
	cfg.ClusterDNS = s.clusterDNS
	cfg.ClusterDomain = s.domain
}

// describe is a line for the command's output.
func (s *nodeServices) describe() string {
	var parts []string
	if s.proxy != nil {
		parts = append(parts, "service proxy "+s.proxy.Mode)
	} else {
		parts = append(parts, "no service proxy")
	}
	if s.dnsAddr != "" {
		parts = append(parts, "cluster DNS "+s.dnsAddr)
	} else {
		parts = append(parts, "no cluster DNS")
	}
	return strings.Join(parts, ", ")
}

// run runs the agent with the proxy and the DNS beside it until ctx ends.
// A proxy that cannot start stops the node with its error; a DNS server
// that cannot listen is logged and retried while the node runs on.
func (s *nodeServices) run(ctx context.Context, client kubernetes.Interface, log *slog.Logger, runAgent func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	n := 1
	go func() { errs <- runAgent(ctx) }()
	if s.proxy != nil {
		n++
		go func() {
			err := proxy.Run(ctx, client, log, *s.proxy)
			if err != nil {
				err = fmt.Errorf("service proxy: %w", err)
			}
			errs <- err
		}()
	}
	if s.dnsAddr != "" {
		n++
		go func() { errs <- s.serveDNS(ctx, client, log) }()
	}
	var first error
	for range n {
		err := <-errs
		if first == nil && (err != nil || ctx.Err() == nil) {
			first = err
			cancel() // one part stopped: stop the others
		}
	}
	return first
}

// serveDNS serves the cluster DNS on s.dnsAddr, retrying while it cannot
// listen (the address may appear later, with the pods' bridge). It
// returns nil when ctx ends.
func (s *nodeServices) serveDNS(ctx context.Context, client kubernetes.Interface, log *slog.Logger) error {
	log = log.With("component", "dns")
	if os.Geteuid() != 0 {
		log.Error("cluster DNS not served: listening on port 53 needs root; pods' resolv.conf names it all the same", "addr", s.dnsAddr)
		<-ctx.Done()
		return nil
	}
	var lastErr string
	for {
		err := dns.Run(ctx, client, log, dns.Options{Addr: s.dnsAddr, Domain: s.domain})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("stopped")
		}
		switch {
		case lastErr == "":
			log.Warn("cluster DNS cannot serve yet; retrying (its address may appear with the pods' bridge)", "addr", s.dnsAddr, "err", err)
		case err.Error() != lastErr:
			log.Error("cluster DNS cannot serve; retrying", "addr", s.dnsAddr, "err", err)
		}
		lastErr = err.Error()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(dnsRetryInterval):
		}
	}
}
