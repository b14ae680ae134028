package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// iptables programs the kernel's NAT with iptables-restore.
type iptables struct {
	cfg RuleConfig
	log *slog.Logger
	// existing are the chains of ours in each table after the last sync.
	existing map[string][]string
	// jumpedAt is when the jumps from the built-in chains were last
	// checked; they are checked again after DefaultSyncPeriod, in case
	// something (a firewall reload) removed them.
	jumpedAt time.Time
}

// iptablesUsable reports whether the iptables binaries run and may change
// the rules (root).
func iptablesUsable(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	for _, bin := range []string{"iptables", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s: %w", bin, err)
		}
	}
	if out, err := exec.CommandContext(ctx, "iptables", "-w", "5", "-t", "nat", "-S", "POSTROUTING").CombinedOutput(); err != nil {
		return fmt.Errorf("iptables -t nat -S: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func newIptables(ctx context.Context, cfg RuleConfig, log *slog.Logger) (*iptables, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := iptablesUsable(ctx); err != nil {
		return nil, fmt.Errorf("proxy: iptables mode: %w", err)
	}
	prepareKernel(log)
	existing, err := ownChains(ctx, cfg.Prefix)
	if err != nil {
		return nil, err
	}
	return &iptables{cfg: cfg, log: log, existing: existing}, nil
}

// prepareKernel sets what the rules need, warning about what it cannot:
// route_localnet so node ports answer on 127.0.0.1 (DNAT of loopback
// traffic to other interfaces), br_netfilter with bridge-nf-call-iptables
// so pods on a Linux bridge reaching a service whose backend is on the same
// bridge get their replies un-NATed (without it the reply goes straight
// from pod to pod, bypassing conntrack, and the client drops it), and
// IPv4 forwarding.
func prepareKernel(log *slog.Logger) {
	set := func(path, val string) {
		if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == val {
			return
		}
		if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
			log.Warn("proxy: cannot set kernel parameter", "path", path, "err", err)
		}
	}
	set("/proc/sys/net/ipv4/conf/all/route_localnet", "1")
	set("/proc/sys/net/ipv4/ip_forward", "1")
	const bridgeNF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if _, err := os.Stat(bridgeNF); err != nil {
		if out, err := exec.Command("modprobe", "br_netfilter").CombinedOutput(); err != nil {
			log.Warn("proxy: cannot load br_netfilter; pod-to-service traffic within one bridge may fail", "err", err, "output", strings.TrimSpace(string(out)))
			return
		}
	}
	set(bridgeNF, "1")
}

// ownChains lists the chains starting with prefix+"-" in the nat and
// filter tables.
func ownChains(ctx context.Context, prefix string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, table := range []string{"nat", "filter"} {
		cmd := exec.CommandContext(ctx, "iptables-save", "-t", table)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("proxy: iptables-save -t %s: %w: %s", table, err, bytes.TrimSpace(stderr.Bytes()))
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, ":") {
				continue
			}
			name, _, _ := strings.Cut(line[1:], " ")
			if ownedBy(name, prefix) {
				out[table] = append(out[table], name)
			}
		}
	}
	return out, nil
}

// restore feeds input to iptables-restore --noflush.
func restore(ctx context.Context, input []byte) error {
	cmd := exec.CommandContext(ctx, "iptables-restore", "-w", "5", "--noflush")
	cmd.Stdin = bytes.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("proxy: iptables-restore: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// Sync replaces our chains with the rules for t, then makes sure the
// built-in chains jump to them.
func (p *iptables) Sync(ctx context.Context, t Table) error {
	input, declared, err := Rules(t, p.cfg, p.existing)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := restore(ctx, input); err != nil {
		// Our idea of the existing chains may be wrong (someone else
		// changed them): read them again for the next try.
		if ex, lerr := ownChains(ctx, p.cfg.Prefix); lerr == nil {
			p.existing = ex
		}
		return err
	}
	p.existing = declared
	if time.Since(p.jumpedAt) > DefaultSyncPeriod {
		if err := ensureJumps(ctx, p.cfg); err != nil {
			return err
		}
		p.jumpedAt = time.Now()
	}
	p.log.Debug("proxy: iptables rules synced", "routes", len(t.Routes), "took", time.Since(start))
	return nil
}

// Close leaves the rules in place: traffic keeps flowing while the agent
// restarts. Cleanup removes them.
func (p *iptables) Close() {}

// ensureJumps inserts the jumps into the built-in chains unless present.
func ensureJumps(ctx context.Context, cfg RuleConfig) error {
	for _, j := range Jumps(cfg) {
		check := append([]string{"-w", "5", "-t", j.Table, "-C", j.Chain}, j.Rule...)
		if exec.CommandContext(ctx, "iptables", check...).Run() == nil {
			continue
		}
		insert := append([]string{"-w", "5", "-t", j.Table, "-I", j.Chain, "1"}, j.Rule...)
		if out, err := exec.CommandContext(ctx, "iptables", insert...).CombinedOutput(); err != nil {
			return fmt.Errorf("proxy: iptables -t %s -I %s: %w: %s", j.Table, j.Chain, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Cleanup removes every iptables rule and chain of the proxy whose chains
// start with prefix (default DefaultChainPrefix): the jumps from the
// built-in chains, then the chains. Established connections keep their
// conntrack entries; new ones to service IPs stop working.
func Cleanup(ctx context.Context, prefix string) error {
	cfg := RuleConfig{Prefix: prefix}.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	var errs []error
	for _, j := range Jumps(cfg) {
		del := append([]string{"-w", "5", "-t", j.Table, "-D", j.Chain}, j.Rule...)
		for range 10 { // the same jump may have been inserted more than once
			if exec.CommandContext(ctx, "iptables", del...).Run() != nil {
				break
			}
		}
	}
	existing, err := ownChains(ctx, cfg.Prefix)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, table := range []string{"filter", "nat"} {
		if len(existing[table]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", table)
		for _, c := range existing[table] {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for _, c := range existing[table] {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	if b.Len() > 0 {
		if err := restore(ctx, b.Bytes()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
