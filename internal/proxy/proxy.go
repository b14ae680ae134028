// Package proxy is the service proxy that runs on every node: it watches
// Services and EndpointSlices and sends traffic for each service's cluster
// IP:port and node port to the service's ready endpoints.
//
// Two modes do the forwarding:
//
//   - iptables (root, with the iptables binaries; Debian's 1.8 nft
//     backend works): NAT rules in the shape kube-proxy writes, applied
//     atomically with iptables-restore --noflush to our chains only. The
//     rules outlive the process, so traffic keeps flowing while the agent
//     restarts; Cleanup removes them. Established connections keep their
//     backend through conntrack when the rules change.
//   - userspace (anyone): a TCP listener per node port (and per cluster
//     IP:port where that address is assigned to a local interface, which
//     without root it is not: then only node ports work) that connects
//     each client to a backend round robin, trying the next on a failed
//     dial. Open connections are never cut when a backend leaves.
//
// Which endpoints take traffic is decided by the pure function Compute
// (ready ones; serving terminating ones only when no endpoint is ready),
// and, in iptables mode, how the rules look by the pure function Rules.
// Every informer event triggers a sync at once, so an endpoint turning
// not ready or terminating stops getting new connections within
// milliseconds.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Modes.
const (
	ModeIPTables  = "iptables"
	ModeUserspace = "userspace"
)

// Tuning.
const (
	// DefaultSyncPeriod is how often the rules are rewritten even when
	// nothing changed, repairing anything that removed them.
	DefaultSyncPeriod = 30 * time.Second
	// RetryInterval is the wait after a failed sync.
	RetryInterval = time.Second
	// Resync is the informers' resync period.
	Resync = 10 * time.Minute
)

// Options configure the proxy.
type Options struct {
	// Mode is ModeIPTables, ModeUserspace, or "" to choose: iptables when
	// running as root with a working iptables, else userspace.
	Mode string
	// NodeName is this node, for the Local traffic policies.
	NodeName string
	// NodeIP is this node's address (for logs: node ports answer on every
	// local address, in both modes, unless NodePortAddress narrows it).
	NodeIP string
	// NodePortAddress is where userspace node ports listen; default all
	// addresses (0.0.0.0), so both NodeIP and 127.0.0.1 work.
	NodePortAddress string
	// ClusterCIDR is the pods' address range, if known (iptables mode:
	// traffic to cluster IPs from outside it is masqueraded).
	ClusterCIDR string
	// ChainPrefix names the iptables chains; default DefaultChainPrefix.
	// Tests use their own so they cannot disturb a running proxy.
	ChainPrefix string
	// SyncPeriod is the full resync period; default DefaultSyncPeriod.
	SyncPeriod time.Duration
	// OnSync, if set, is called after every sync with the table and the
	// sync's error, from the sync goroutine (for tests and metrics).
	OnSync func(Table, error)
}

// ChooseMode resolves mode "" to ModeIPTables when iptables is usable
// (root, binaries present and working) and ModeUserspace otherwise; other
// values are checked and returned.
func ChooseMode(ctx context.Context, mode string) (string, error) {
	switch mode {
	case ModeIPTables, ModeUserspace:
		return mode, nil
	case "":
		if iptablesUsable(ctx) == nil {
			return ModeIPTables, nil
		}
		return ModeUserspace, nil
	}
	return "", fmt.Errorf("proxy: unknown mode %q (want %s or %s)", mode, ModeIPTables, ModeUserspace)
}

// forwarder is one of the modes.
type forwarder interface {
	Sync(context.Context, Table) error
	Close()
}

// Run proxies services until ctx is done, then returns nil; it returns an
// error if it cannot start (bad options, iptables mode without iptables).
// In iptables mode the rules stay when it returns.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger, opts Options) error {
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("component", "proxy")
	mode, err := ChooseMode(ctx, opts.Mode)
	if err != nil {
		return err
	}
	var fw forwarder
	switch mode {
	case ModeIPTables:
		cfg := RuleConfig{Prefix: opts.ChainPrefix}
		if opts.ClusterCIDR != "" {
			p, err := netip.ParsePrefix(opts.ClusterCIDR)
			if err != nil {
				return fmt.Errorf("proxy: cluster CIDR: %w", err)
			}
			cfg.ClusterCIDR = p.Masked()
		}
		if fw, err = newIptables(ctx, cfg, log); err != nil {
			return err
		}
	default:
		if fw, err = newUserspace(opts.NodePortAddress, log); err != nil {
			return err
		}
	}
	defer fw.Close()
	period := opts.SyncPeriod
	if period <= 0 {
		period = DefaultSyncPeriod
	}

	factory := informers.NewSharedInformerFactory(client, Resync)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	kick := make(chan struct{}, 1)
	trigger := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { trigger() },
		UpdateFunc: func(any, any) { trigger() },
		DeleteFunc: func(any) { trigger() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), sliceInf.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("proxy: watching: %w", err)
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced) {
		return nil
	}
	log.Info("service proxy started", "mode", mode, "node", opts.NodeName, "nodeIP", opts.NodeIP)

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-timer.C:
		}
		svcs, err1 := svcInf.Lister().List(labels.Everything())
		sl, err2 := sliceInf.Lister().List(labels.Everything())
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("proxy: listing from cache: %w", err)
		}
		t := Compute(svcs, sl, opts.NodeName)
		err := fw.Sync(ctx, t)
		if opts.OnSync != nil {
			opts.OnSync(t, err)
		}
		next := period
		if err != nil && ctx.Err() == nil {
			log.Warn("service proxy sync failed", "err", err)
			next = RetryInterval
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}
