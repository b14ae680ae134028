package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DefaultChainPrefix starts the names of the iptables chains the proxy
// owns (DROVER-SERVICES, DROVER-SVC-..., DROVER-SEP-...).
const DefaultChainPrefix = "DROVER"

// DefaultMasqueradeMark is the packet mark bit asking for SNAT on the way
// out (kube-proxy's KUBE-MARK-MASQ bit).
const DefaultMasqueradeMark = 0x4000

// maxPrefix keeps prefix + "-SEP-" + hash within iptables' 28-byte chain names.
const maxPrefix = 28 - len("-SEP-") - hashLen

const hashLen = 16

// RuleConfig is what the iptables rules depend on besides the table.
type RuleConfig struct {
	// Prefix names the chains; default DefaultChainPrefix. At most 7 bytes.
	Prefix string
	// MasqueradeMark is the mark bit for SNAT; default DefaultMasqueradeMark.
	MasqueradeMark uint32
	// ClusterCIDR, if valid, is where pods' addresses come from: traffic to
	// a cluster IP from elsewhere (the host, other machines) is
	// masqueraded so replies come back through this node. When unset only
	// node-port and hairpin traffic is masqueraded.
	ClusterCIDR netip.Prefix
}

func (c RuleConfig) withDefaults() RuleConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultChainPrefix
	}
	if c.MasqueradeMark == 0 {
		c.MasqueradeMark = DefaultMasqueradeMark
	}
	return c
}

func (c RuleConfig) validate() error {
	if len(c.Prefix) > maxPrefix || strings.ContainsAny(c.Prefix, " \t\n") {
		return fmt.Errorf("proxy: chain prefix %q: at most %d bytes, no spaces", c.Prefix, maxPrefix)
	}
	return nil
}

// Chain names of the fixed chains.
func (c RuleConfig) services() string    { return c.Prefix + "-SERVICES" }
func (c RuleConfig) nodePorts() string   { return c.Prefix + "-NODEPORTS" }
func (c RuleConfig) postrouting() string { return c.Prefix + "-POSTROUTING" }
func (c RuleConfig) markMasq() string    { return c.Prefix + "-MARK-MASQ" }
func (c RuleConfig) forward() string     { return c.Prefix + "-FORWARD" }

// chain names a per-route or per-endpoint chain: prefix-kind-hash(parts).
func (c RuleConfig) chain(kind string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	enc := base32.StdEncoding.EncodeToString(h[:])
	return c.Prefix + "-" + kind + "-" + enc[:hashLen]
}

// Jump is a rule in a built-in chain sending traffic to one of ours.
type Jump struct {
	Table, Chain string
	// Rule is the rule's arguments after the chain name.
	Rule []string
}

// Jumps are the rules hooking our chains into the built-in ones; they are
// kept apart from the restore input because --noflush cannot flush a
// built-in chain of ours and must not flush anyone else's.
func Jumps(cfg RuleConfig) []Jump {
	cfg = cfg.withDefaults()
	cm := func(s string) []string { return []string{"-m", "comment", "--comment", s} }
	return []Jump{
		{"nat", "PREROUTING", append(cm("drover service portals"), "-j", cfg.services())},
		{"nat", "OUTPUT", append(cm("drover service portals"), "-j", cfg.services())},
		{"nat", "POSTROUTING", append(cm("drover postrouting rules"), "-j", cfg.postrouting())},
		{"filter", "INPUT", append(cm("drover services without endpoints"), "-m", "conntrack", "--ctstate", "NEW", "-j", cfg.services())},
		{"filter", "OUTPUT", append(cm("drover services without endpoints"), "-m", "conntrack", "--ctstate", "NEW", "-j", cfg.services())},
		{"filter", "FORWARD", append(cm("drover services without endpoints"), "-m", "conntrack", "--ctstate", "NEW", "-j", cfg.services())},
		{"filter", "FORWARD", append(cm("drover forwarding rules"), "-j", cfg.forward())},
	}
}

// Rules renders t as iptables-restore input (for --noflush) that replaces
// every chain we own: each chain is declared (which flushes it) and
// filled; chains in existing that the table no longer needs are deleted.
// existing and the result name the chains of ours in each table ("nat",
// "filter"): Rules returns the input and the chains it declares, which are
// the existing chains of the next call.
//
// The shape is kube-proxy's: nat PREFIX-SERVICES matches each cluster
// IP:port and jumps to PREFIX-SVC-<hash>, which picks an endpoint chain
// PREFIX-SEP-<hash> with "statistic random" probabilities 1/n, 1/(n-1),
// ... (and "recent" for ClientIP affinity); the endpoint chain marks
// hairpin traffic for masquerading and DNATs. Node ports (addrtype LOCAL)
// go through PREFIX-NODEPORTS → PREFIX-EXT-<hash>, which marks for
// masquerading. Ports without backends are rejected in the filter table's
// PREFIX-SERVICES, so clients fail at once rather than time out.
func Rules(t Table, cfg RuleConfig, existing map[string][]string) ([]byte, map[string][]string, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	mark := fmt.Sprintf("%#x", cfg.MasqueradeMark)
	var natChains, natRules, filterRules []string
	filterChains := []string{cfg.services(), cfg.forward()}
	natChains = append(natChains, cfg.services(), cfg.nodePorts(), cfg.postrouting(), cfg.markMasq())
	add := func(dst *[]string, chain string, args ...string) {
		*dst = append(*dst, "-A "+chain+" "+strings.Join(args, " "))
	}
	nat := func(chain string, args ...string) { add(&natRules, chain, args...) }
	filter := func(chain string, args ...string) { add(&filterRules, chain, args...) }

	nat(cfg.markMasq(), "-j", "MARK", "--or-mark", mark)
	nat(cfg.postrouting(), "-m", "mark", "!", "--mark", mark+"/"+mark, "-j", "RETURN")
	nat(cfg.postrouting(), "-j", "MARK", "--xor-mark", mark)
	nat(cfg.postrouting(), "-m", "comment", "--comment", `"drover service traffic requiring SNAT"`, "-j", "MASQUERADE", "--random-fully")
	filter(cfg.forward(), "-m", "comment", "--comment", `"drover forwarding rules"`, "-m", "mark", "--mark", mark+"/"+mark, "-j", "ACCEPT")
	filter(cfg.forward(), "-m", "comment", "--comment", `"drover forwarding conntrack rule"`, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")

	epChains := map[string]bool{}
	for i := range t.Routes {
		r := &t.Routes[i]
		key := r.Key()
		proto := strings.ToLower(string(r.Protocol))
		comment := fmt.Sprintf("%q", key)
		svcChain := cfg.chain("SVC", key)
		extChain := cfg.chain("EXT", key)
		if len(r.Backends) == 0 {
			for _, ip := range r.ClusterIPs {
				filter(cfg.services(), "-m", "comment", "--comment", fmt.Sprintf("%q", key+" has no endpoints"),
					"-d", ip.String()+"/32", "-p", proto, "-m", proto, "--dport", itoa(r.Port), reject(r.Protocol))
			}
		} else {
			natChains = append(natChains, svcChain)
			for _, ip := range r.ClusterIPs {
				nat(cfg.services(), "-m", "comment", "--comment", fmt.Sprintf("%q", key+" cluster IP"),
					"-d", ip.String()+"/32", "-p", proto, "-m", proto, "--dport", itoa(r.Port), "-j", svcChain)
				if cfg.ClusterCIDR.IsValid() {
					nat(svcChain, "-m", "comment", "--comment", fmt.Sprintf("%q", key+" cluster IP"),
						"!", "-s", cfg.ClusterCIDR.String(), "-d", ip.String()+"/32", "-p", proto, "-m", proto, "--dport", itoa(r.Port), "-j", cfg.markMasq())
				}
			}
			balance(nat, &natChains, epChains, cfg, svcChain, key, r, r.Backends)
		}
		if r.NodePort == 0 {
			continue
		}
		if len(r.ExternalBackends) == 0 {
			filter(cfg.services(), "-m", "comment", "--comment", fmt.Sprintf("%q", key+" has no endpoints"),
				"-m", "addrtype", "--dst-type", "LOCAL", "-p", proto, "-m", proto, "--dport", itoa(r.NodePort), reject(r.Protocol))
			continue
		}
		natChains = append(natChains, extChain)
		nat(cfg.nodePorts(), "-m", "comment", "--comment", comment, "-p", proto, "-m", proto, "--dport", itoa(r.NodePort), "-j", extChain)
		nat(extChain, "-m", "comment", "--comment", `"masquerade traffic for `+key+` external destinations"`, "-j", cfg.markMasq())
		if slices.Equal(r.ExternalBackends, r.Backends) {
			nat(extChain, "-j", svcChain)
		} else {
			balance(nat, &natChains, epChains, cfg, extChain, key, r, r.ExternalBackends)
		}
	}
	// Node ports last: cluster IPs match first.
	nat(cfg.services(), "-m", "comment", "--comment", `"drover service nodeports; NOTE: this must be the last rule in this chain"`,
		"-m", "addrtype", "--dst-type", "LOCAL", "-j", cfg.nodePorts())

	declared := map[string][]string{"filter": filterChains, "nat": natChains}
	var b bytes.Buffer
	write := func(table string, chains, rules []string) {
		fmt.Fprintf(&b, "*%s\n", table)
		for _, c := range chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		var stale []string
		for _, c := range existing[table] {
			if !slices.Contains(chains, c) && ownedBy(c, cfg.Prefix) {
				stale = append(stale, c)
				fmt.Fprintf(&b, ":%s - [0:0]\n", c) // flush first: stale chains may jump to each other
			}
		}
		for _, r := range rules {
			b.WriteString(r)
			b.WriteByte('\n')
		}
		for _, c := range stale {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	// iptables-restore commits table by table (nft backend included). nat
	// goes first: while a service gains its first endpoints, a connection
	// made between the two commits finds the DNAT already there, rather
	// than neither the DNAT nor the REJECT.
	write("nat", natChains, natRules)
	write("filter", filterChains, filterRules)
	return b.Bytes(), declared, nil
}

// balance fills chain with the jumps to the endpoint chains of backends.
func balance(nat func(string, ...string), natChains *[]string, epChains map[string]bool, cfg RuleConfig, chain, key string, r *Route, backends []Backend) {
	proto := strings.ToLower(string(r.Protocol))
	sep := func(b Backend) string { return cfg.chain("SEP", key, b.String()) }
	if r.Affinity > 0 {
		for _, b := range backends {
			nat(chain, "-m", "comment", "--comment", fmt.Sprintf("%q", key+" -> "+b.String()),
				"-m", "recent", "--name", sep(b), "--rcheck", "--seconds", itoa(int32(r.Affinity.Seconds())), "--reap", "-j", sep(b))
		}
	}
	n := len(backends)
	for i, b := range backends {
		args := []string{"-m", "comment", "--comment", fmt.Sprintf("%q", key+" -> "+b.String())}
		if left := n - i; left > 1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%0.10f", 1/float64(left)))
		}
		nat(chain, append(args, "-j", sep(b))...)
		c := sep(b)
		if epChains[c] {
			continue
		}
		epChains[c] = true
		*natChains = append(*natChains, c)
		nat(c, "-m", "comment", "--comment", fmt.Sprintf("%q", key), "-s", b.IP.String()+"/32", "-j", cfg.markMasq())
		dnat := []string{"-m", "comment", "--comment", fmt.Sprintf("%q", key), "-p", proto}
		if r.Affinity > 0 {
			dnat = append(dnat, "-m", "recent", "--name", c, "--set")
		}
		nat(c, append(dnat, "-m", proto, "-j", "DNAT", "--to-destination", b.String())...)
	}
}

// reject is the target refusing new connections to a port without
// endpoints. TCP gets a reset rather than kube-proxy's ICMP port
// unreachable: the kernel rate-limits ICMP (a burst of 50), after which
// SYNs would be dropped silently and clients wait a second to retransmit.
func reject(proto corev1.Protocol) string {
	if proto == corev1.ProtocolTCP {
		return "-j REJECT --reject-with tcp-reset"
	}
	return "-j REJECT"
}

// ownedBy reports whether chain is one of the chains prefix names.
func ownedBy(chain, prefix string) bool {
	return strings.HasPrefix(chain, prefix+"-")
}

func itoa(n int32) string { return fmt.Sprint(n) }
