package dns

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

func service(ns, name, cip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: cip, ClusterIPs: []string{cip}, Ports: ports, Type: corev1.ServiceTypeClusterIP},
	}
}

func sport(name string, p int32, proto corev1.Protocol) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: p, Protocol: proto}
}

type sep struct {
	ip, hostname string
	ready        *bool
}

func eslice(ns, svc string, ports map[string]int32, eps ...sep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for n, p := range ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr(n), Port: ptr(p), Protocol: ptr(corev1.ProtocolTCP)})
	}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.hostname != "" {
			x.Hostname = ptr(e.hostname)
		}
		es.Endpoints = append(es.Endpoints, x)
	}
	return es
}

func testIndex() *Index {
	headless := service("prod", "db", "None", sport("pg", 5432, corev1.ProtocolTCP))
	ext := service("prod", "ext", "", sport("", 80, ""))
	ext.Spec.Type = corev1.ServiceTypeExternalName
	ext.Spec.ExternalName = "example.org"
	return NewIndex("", 0, []*corev1.Service{
		service("prod", "web", "10.96.0.20", sport("http", 80, corev1.ProtocolTCP), sport("", 8080, corev1.ProtocolTCP), sport("dns", 53, corev1.ProtocolUDP)),
		service("default", "kubernetes", "10.96.0.1", sport("https", 443, corev1.ProtocolTCP)),
		headless, ext,
		service("prod", "pending", ""),
	}, []*discoveryv1.EndpointSlice{
		eslice("prod", "db", map[string]int32{"pg": 15432},
			sep{ip: "10.244.0.7", hostname: "db-0"}, sep{ip: "10.244.0.8"}, sep{ip: "10.244.0.9", ready: ptr(false)}),
		eslice("prod", "web", map[string]int32{"http": 8080}, sep{ip: "10.244.0.3"}),
	})
}

// rrs renders records without TTLs, compactly: "name TYPE data".
func rrs(list []mdns.RR) string {
	var out []string
	for _, rr := range list {
		f := strings.Fields(rr.String())
		// name ttl class type data...
		out = append(out, f[0]+" "+strings.Join(f[3:], " "))
	}
	return strings.Join(out, "; ")
}

func TestAnswer(t *testing.T) {
	ix := testIndex()
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string
		extra  string
		fwd    bool
	}{
		{"web.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "web.prod.svc.cluster.local. A 10.96.0.20", "", false},
		{"WEB.Prod.svc.Cluster.Local.", mdns.TypeA, mdns.RcodeSuccess, "web.prod.svc.cluster.local. A 10.96.0.20", "", false},
		{"kubernetes.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "kubernetes.default.svc.cluster.local. A 10.96.0.1", "", false},
		{"web.prod.svc.cluster.local.", mdns.TypeAAAA, mdns.RcodeSuccess, "", "", false},
		{"web.prod.svc.cluster.local.", mdns.TypeTXT, mdns.RcodeSuccess, "", "", false},
		// Headless: ready endpoints only.
		{"db.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "db.prod.svc.cluster.local. A 10.244.0.7; db.prod.svc.cluster.local. A 10.244.0.8", "", false},
		{"db-0.db.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "db-0.db.prod.svc.cluster.local. A 10.244.0.7", "", false},
		{"10-244-0-8.db.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "10-244-0-8.db.prod.svc.cluster.local. A 10.244.0.8", "", false},
		{"10-244-0-9.db.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		{"db-1.db.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		{"x.web.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		// SRV on named ports.
		{"_http._tcp.web.prod.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			"_http._tcp.web.prod.svc.cluster.local. SRV 0 100 80 web.prod.svc.cluster.local.", "web.prod.svc.cluster.local. A 10.96.0.20", false},
		{"_dns._udp.web.prod.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			"_dns._udp.web.prod.svc.cluster.local. SRV 0 100 53 web.prod.svc.cluster.local.", "web.prod.svc.cluster.local. A 10.96.0.20", false},
		{"_dns._tcp.web.prod.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeNameError, "", "", false},
		{"_http._tcp.web.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "", "", false},
		{"_pg._tcp.db.prod.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			"_pg._tcp.db.prod.svc.cluster.local. SRV 0 50 15432 10-244-0-8.db.prod.svc.cluster.local.; _pg._tcp.db.prod.svc.cluster.local. SRV 0 50 15432 db-0.db.prod.svc.cluster.local.",
			"db-0.db.prod.svc.cluster.local. A 10.244.0.7; 10-244-0-8.db.prod.svc.cluster.local. A 10.244.0.8", false},
		{"web.prod.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			"web.prod.svc.cluster.local. SRV 0 100 80 web.prod.svc.cluster.local.; web.prod.svc.cluster.local. SRV 0 100 53 web.prod.svc.cluster.local.",
			"web.prod.svc.cluster.local. A 10.96.0.20", false},
		// ExternalName.
		{"ext.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "ext.prod.svc.cluster.local. CNAME example.org.", "", false},
		// Pods by dashed IP.
		{"10-244-0-3.prod.pod.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "10-244-0-3.prod.pod.cluster.local. A 10.244.0.3", "", false},
		{"10-244-0-300.prod.pod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		// Empty non-terminals exist; unknown names do not.
		{"cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "", "", false},
		{"cluster.local.", mdns.TypeSOA, mdns.RcodeSuccess, "cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5", "", false},
		{"svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "", "", false},
		{"prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "", "", false},
		{"nowhere.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		{"missing.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		{"pending.prod.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		{"web.prod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		{"a.b.c.d.e.f.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", "", false},
		// Outside the zone.
		{"example.org.", mdns.TypeA, 0, "", "", true},
		{"web.prod.svc.cluster.local.example.org.", mdns.TypeA, 0, "", "", true},
		{"notcluster.local.", mdns.TypeA, 0, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+mdns.TypeToString[tt.qtype], func(t *testing.T) {
			r := ix.Answer(mdns.Question{Name: tt.name, Qtype: tt.qtype, Qclass: mdns.ClassINET})
			if r.Forward != tt.fwd {
				t.Fatalf("Forward = %v, want %v", r.Forward, tt.fwd)
			}
			if tt.fwd {
				return
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
			}
			if got := rrs(r.Answer); got != tt.answer {
				t.Errorf("answer = %q, want %q", got, tt.answer)
			}
			if got := rrs(r.Extra); got != tt.extra {
				t.Errorf("extra = %q, want %q", got, tt.extra)
			}
			if len(r.Answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeSOA) {
				t.Errorf("negative answer without the zone's SOA: %v", r.Ns)
			}
		})
	}
}

func TestIndexOtherDomain(t *testing.T) {
	ix := NewIndex("corp.example", 30, []*corev1.Service{service("a", "web", "10.96.0.5")}, nil)
	r := ix.Answer(mdns.Question{Name: "web.a.svc.corp.example.", Qtype: mdns.TypeA})
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
		t.Fatalf("answer %v, want one A record with TTL 30", r.Answer)
	}
	if r := ix.Answer(mdns.Question{Name: "web.a.svc.cluster.local.", Qtype: mdns.TypeA}); !r.Forward {
		t.Fatalf("cluster.local outside the zone corp.example should be forwarded")
	}
}

func TestDashedIP(t *testing.T) {
	for s, ok := range map[string]bool{"10-0-0-1": true, "1-2-3": false, "01-2-3-4": false, "a-b-c-d": false, "256-1-1-1": false} {
		if _, got := dashedIP(s); got != ok {
			t.Errorf("dashedIP(%q) ok = %v, want %v", s, got, ok)
		}
	}
	if !slices.Equal([]string{"10-1-2-3"}, []string{dashed(mustAddr("10.1.2.3"))}) {
		t.Errorf("dashed(10.1.2.3) = %s", dashed(mustAddr("10.1.2.3")))
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
