package proxy

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func sampleTable(t *testing.T) Table {
	t.Helper()
	a := nodePort(svc("web", "10.96.0.10", port("http", 80)), 30080)
	b := svc("sticky", "10.96.0.11", port("", 53))
	b.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	empty := nodePort(svc("empty", "10.96.0.12", port("", 80)), 30081)
	return Compute([]*corev1.Service{a, b, empty}, []*discoveryv1.EndpointSlice{
		slice("web", "web-1", []slicePortSpec{{"http", 8080}}, ep("10.244.0.2"), ep("10.244.0.3"), ep("10.244.0.4")),
		slice("sticky", "sticky-1", []slicePortSpec{{"", 5353}}, ep("127.0.2.5")),
	}, "n1")
}

func TestRules(t *testing.T) {
	tab := sampleTable(t)
	cfg := RuleConfig{Prefix: "DRT", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	in, declared, err := Rules(tab, cfg, map[string][]string{"nat": {"DRT-SVC-STALE", "KUBE-SVC-X"}})
	if err != nil {
		t.Fatal(err)
	}
	text := string(in)
	lines := strings.Split(text, "\n")
	has := func(re string) {
		t.Helper()
		r := regexp.MustCompile(re)
		for _, l := range lines {
			if r.MatchString(l) {
				return
			}
		}
		t.Errorf("no line matches %q in\n%s", re, text)
	}
	count := func(re string) int {
		r := regexp.MustCompile(re)
		n := 0
		for _, l := range lines {
			if r.MatchString(l) {
				n++
			}
		}
		return n
	}
	// Cluster IP → service chain; three endpoints balanced 1/3, 1/2, rest.
	has(`^-A DRT-SERVICES .*-d 10\.96\.0\.10/32 -p tcp -m tcp --dport 80 -j DRT-SVC-\w{16}$`)
	has(`^-A DRT-SVC-\w{16} .*--probability 0\.3333333333 -j DRT-SEP-\w{16}$`)
	has(`^-A DRT-SVC-\w{16} .*--probability 0\.5000000000 -j DRT-SEP-\w{16}$`)
	has(`^-A DRT-SVC-\w{16} -m comment --comment "default/web:http/TCP -> 10\.244\.0\.4:8080" -j DRT-SEP-\w{16}$`)
	has(`^-A DRT-SEP-\w{16} .*-p tcp -m tcp -j DNAT --to-destination 10\.244\.0\.2:8080$`)
	// Hairpin and off-cluster traffic masqueraded.
	has(`^-A DRT-SEP-\w{16} .*-s 10\.244\.0\.2/32 -j DRT-MARK-MASQ$`)
	has(`^-A DRT-SVC-\w{16} .*! -s 10\.244\.0\.0/16 -d 10\.96\.0\.10/32 .*-j DRT-MARK-MASQ$`)
	has(`^-A DRT-POSTROUTING .*-j MASQUERADE --random-fully$`)
	// Node port through an EXT chain that marks for masquerading.
	has(`^-A DRT-NODEPORTS .*-p tcp -m tcp --dport 30080 -j DRT-EXT-\w{16}$`)
	has(`^-A DRT-EXT-\w{16} .*-j DRT-MARK-MASQ$`)
	has(`^-A DRT-SERVICES .*-m addrtype --dst-type LOCAL -j DRT-NODEPORTS$`)
	// Affinity with recent.
	has(`^-A DRT-SVC-\w{16} .*-m recent --name DRT-SEP-\w{16} --rcheck --seconds 10800 --reap -j DRT-SEP-\w{16}$`)
	has(`^-A DRT-SEP-\w{16} .*-p tcp -m recent --name DRT-SEP-\w{16} --set -m tcp -j DNAT --to-destination 127\.0\.2\.5:5353$`)
	// No endpoints: REJECT in filter, for both the cluster IP and node port.
	has(`^-A DRT-SERVICES .*-d 10\.96\.0\.12/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset$`)
	has(`^-A DRT-SERVICES .*--dst-type LOCAL -p tcp -m tcp --dport 30081 -j REJECT --reject-with tcp-reset$`)
	// Stale chain of ours flushed and deleted; others' left alone.
	has(`^-X DRT-SVC-STALE$`)
	if strings.Contains(text, "KUBE-SVC-X") {
		t.Errorf("touched a chain that is not ours:\n%s", text)
	}
	// The node-port jump is the last rule of nat DRT-SERVICES; nat is
	// committed before filter.
	var last, table string
	var order []string
	for _, l := range lines {
		if strings.HasPrefix(l, "*") {
			table = l[1:]
			order = append(order, table)
		}
		if table == "nat" && strings.HasPrefix(l, "-A DRT-SERVICES ") {
			last = l
		}
	}
	if !strings.HasSuffix(last, "-j DRT-NODEPORTS") {
		t.Errorf("last nat DRT-SERVICES rule = %q, want the node-port jump", last)
	}
	if !slices.Equal(order, []string{"nat", "filter"}) {
		t.Errorf("tables in order %v, want nat then filter", order)
	}
	// Every chain jumped to is declared; declared chains are what Rules reports.
	for _, c := range regexp.MustCompile(`-j (DRT-[\w-]+)`).FindAllStringSubmatch(text, -1) {
		if !slices.Contains(declared["nat"], c[1]) && !slices.Contains(declared["filter"], c[1]) {
			t.Errorf("jump to undeclared chain %s", c[1])
		}
	}
	if n := count(`^:DRT-SEP-`); n != 4 {
		t.Errorf("%d endpoint chains declared, want 4", n)
	}
	// Deterministic.
	again, _, _ := Rules(tab, cfg, map[string][]string{"nat": {"DRT-SVC-STALE", "KUBE-SVC-X"}})
	if !bytes.Equal(in, again) {
		t.Errorf("Rules is not deterministic")
	}
	// A second sync with the declared chains deletes nothing.
	next, _, _ := Rules(tab, cfg, declared)
	if strings.Contains(string(next), "\n-X ") {
		t.Errorf("resync deletes chains:\n%s", next)
	}
}

func TestRulesRejectsLongPrefix(t *testing.T) {
	if _, _, err := Rules(Table{}, RuleConfig{Prefix: "TOOLONGPREFIX"}, nil); err == nil {
		t.Fatal("want an error for a prefix that makes chain names too long")
	}
}

// TestRulesParse has iptables-restore --test check the syntax (it changes
// nothing). It needs root and iptables.
func TestRulesParse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := iptablesUsable(ctx); err != nil {
		if os.Getenv("DROVER_E2E") == "1" {
			t.Fatalf("iptables not usable: %v", err)
		}
		t.Skipf("needs root and iptables (DROVER_E2E=1 makes this fail): %v", err)
	}
	in, _, err := Rules(sampleTable(t), RuleConfig{Prefix: "DRT"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "iptables-restore", "--test", "--noflush")
	cmd.Stdin = bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("iptables-restore --test: %v: %s\ninput:\n%s", err, out, in)
	}
}
