package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/drover/drover/internal/controlplane"
)

// TestTimingFlagDefaults: the flags default to the controllers' defaults
// and parse into the control plane's configuration.
func TestTimingFlagDefaults(t *testing.T) {
	var cfg controlplane.Config
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	addTimingFlags(f, &cfg)
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	le := cfg.LeaderElection
	if cfg.NodeMonitorGracePeriod != 8*time.Second || le.LeaseDuration != 8*time.Second || le.RenewDeadline != 6*time.Second || le.RetryPeriod != time.Second {
		t.Errorf("defaults: grace %v, lease %v, renew %v, retry %v; want 8s, 8s, 6s, 1s", cfg.NodeMonitorGracePeriod, le.LeaseDuration, le.RenewDeadline, le.RetryPeriod)
	}
	if err := checkTimingFlags(cfg); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
	if err := f.Parse([]string{"--node-monitor-grace-period=40s", "--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s", "--leader-elect-retry-period=2s"}); err != nil {
		t.Fatal(err)
	}
	le = cfg.LeaderElection
	if cfg.NodeMonitorGracePeriod != 40*time.Second || le.LeaseDuration != 15*time.Second || le.RenewDeadline != 10*time.Second || le.RetryPeriod != 2*time.Second {
		t.Errorf("parsed: grace %v, lease %v, renew %v, retry %v; want 40s, 15s, 10s, 2s", cfg.NodeMonitorGracePeriod, le.LeaseDuration, le.RenewDeadline, le.RetryPeriod)
	}
	if err := checkTimingFlags(cfg); err != nil {
		t.Errorf("upstream's timings rejected: %v", err)
	}
}

// TestTimingFlagsFailInOneLine: timings the controllers cannot run with
// stop `drover server` and `drover up` before anything starts, with a
// one-line reason naming the flag.
func TestTimingFlagsFailInOneLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--leader-elect-renew-deadline", "10s"}, "--leader-elect-renew-deadline < --leader-elect-lease-duration"},
		{[]string{"--leader-elect-lease-duration", "6s"}, "must be shorter than the lease duration"},
		{[]string{"--leader-elect-retry-period", "6s"}, "--leader-elect-renew-deadline > --leader-elect-retry-period"},
		{[]string{"--leader-elect-retry-period", "0s"}, "--leader-elect-retry-period 0s: must be positive"},
		{[]string{"--node-monitor-grace-period", "0s"}, "--node-monitor-grace-period 0s: must be positive"},
		{[]string{"--node-monitor-grace-period", "-1s"}, "--node-monitor-grace-period -1s: must be positive"},
	} {
		for _, command := range []string{"server", "up"} {
			args := append([]string{command, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, tc.args...)
			_, stderr, err := drover(t, []string{"DROVER_TOKEN="}, args...)
			if err == nil {
				t.Errorf("drover %s %s exited 0", command, strings.Join(tc.args, " "))
				continue
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "drover: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("drover %s %s: stderr %q, want one line mentioning %q", command, strings.Join(tc.args, " "), stderr, tc.want)
			}
		}
	}
}
