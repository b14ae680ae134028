package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/drover/drover/internal/controlplane"
)

// addTimingFlags adds the node lifecycle controller's grace period and the
// leader election's timings to f, under upstream's flag names
// (kube-controller-manager's), bound to cfg.
func addTimingFlags(f *pflag.FlagSet, cfg *controlplane.Config) {
	f.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", controlplane.DefaultNodeMonitorGracePeriod,
		"how long a node may go without a heartbeat before it is marked NotReady (and later its pods are evicted); keep it several times the agents' heartbeat interval")
	f.DurationVar(&cfg.LeaderElection.LeaseDuration, "leader-elect-lease-duration", controlplane.DefaultLeaseDuration,
		"how long the controllers' leader lease lasts unrenewed before another server may take it")
	f.DurationVar(&cfg.LeaderElection.RenewDeadline, "leader-elect-renew-deadline", controlplane.DefaultRenewDeadline,
		"how long the leader keeps trying to renew its lease before it stops its controllers; less than the lease duration")
	f.DurationVar(&cfg.LeaderElection.RetryPeriod, "leader-elect-retry-period", controlplane.DefaultRetryPeriod,
		"how often the leader renews, and other servers try to take, the lease")
}

// checkTimingFlags rejects timings the controllers could not run with,
// before anything starts: a flag set to 0 means 0 here, not the default.
func checkTimingFlags(cfg controlplane.Config) error {
	if cfg.NodeMonitorGracePeriod <= 0 {
		return fmt.Errorf("--node-monitor-grace-period %v: must be positive", cfg.NodeMonitorGracePeriod)
	}
	le := cfg.LeaderElection
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--leader-elect-lease-duration", le.LeaseDuration}, {"--leader-elect-renew-deadline", le.RenewDeadline}, {"--leader-elect-retry-period", le.RetryPeriod}} {
		if d.v <= 0 {
			return fmt.Errorf("%s %v: must be positive", d.flag, d.v)
		}
	}
	return cfg.ValidateTimings()
}
