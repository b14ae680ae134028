package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/drover/drover/internal/proxy"
)

func TestNodeServicesPlan(t *testing.T) {
	ctx := context.Background()
	f := nodeServiceFlags{proxyMode: proxy.ModeUserspace, chainPrefix: "DRX", clusterDomain: "cluster.local"}
	s, err := f.plan(ctx, "cri", "10.245.3.0/24", "", "n1", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if s.proxy == nil || s.proxy.Mode != proxy.ModeUserspace || s.proxy.ClusterCIDR != "10.245.3.0/24" || s.proxy.ChainPrefix != "DRX" {
		t.Errorf("proxy = %+v", s.proxy)
	}
	if !slices.Equal(s.clusterDNS, []string{"10.245.3.1"}) || s.dnsAddr != "10.245.3.1:53" {
		t.Errorf("cluster DNS %v on %q, want the pods' gateway 10.245.3.1", s.clusterDNS, s.dnsAddr)
	}

	f.proxyMode = "auto"
	if s, err = f.plan(ctx, "sim", "", "", "n1", ""); err != nil || s.proxy != nil || s.dnsAddr != "" {
		t.Errorf("sim: %+v, %v; want neither proxy nor DNS", s, err)
	}
	f.proxyMode, f.clusterDNS = "none", "none"
	if s, err = f.plan(ctx, "cri", "", "", "n1", ""); err != nil || s.proxy != nil || s.dnsAddr != "" || !strings.Contains(s.describe(), "no service proxy") {
		t.Errorf("none: %+v, %v", s, err)
	}
	f.proxyMode, f.clusterDNS = "userspace", ""
	if s, err = f.plan(ctx, "process", "", "", "n1", ""); err != nil || s.dnsAddr != "" {
		t.Errorf("process runtime: DNS on %q (%v), want none (its pods use the host's resolver)", s.dnsAddr, err)
	}
	for _, bad := range []nodeServiceFlags{{proxyMode: "ipvs"}, {proxyMode: "none", clusterDNS: "ten.one"}} {
		if _, err := bad.plan(ctx, "cri", "", "", "n1", ""); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
