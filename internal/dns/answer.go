package dns

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// DefaultDomain is the cluster's DNS domain.
const DefaultDomain = "cluster.local"

// DefaultTTL is the TTL of the records the server makes up (CoreDNS's
// kubernetes plugin uses 5 seconds too): short, because endpoints move.
const DefaultTTL = 5

// Index is what the server knows about the cluster, built from services
// and EndpointSlices; it answers questions without I/O. Build a new one
// when they change (it is immutable, safe for concurrent use).
type Index struct {
	zone     string // "cluster.local."
	ttl      uint32
	services map[string]*svcEntry // "name.namespace"
	ns       map[string]bool      // namespaces with services
}

type svcEntry struct {
	name, namespace string
	clusterIPs      []netip.Addr // nil for headless
	headless        bool
	externalName    string
	ports           []corev1.ServicePort
	endpoints       []endpoint // ready ones, for headless services
}

type endpoint struct {
	ip       netip.Addr
	hostname string            // the pod's hostname when it set subdomain = service
	ports    map[string]portNo // by "name/protocol"
}

type portNo struct {
	name  string
	proto corev1.Protocol
	port  int32
}

// NewIndex indexes services and their EndpointSlices for zone domain
// (default DefaultDomain) with record TTL ttl (0 = DefaultTTL).
// Only ready endpoints (conditions.ready true or unset) are published,
// which includes not-ready pods of services with publishNotReadyAddresses,
// as the endpoint controller marks them ready.
func NewIndex(domain string, ttl uint32, services []*corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) *Index {
	if domain == "" {
		domain = DefaultDomain
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	ix := &Index{zone: mdns.CanonicalName(domain), ttl: ttl, services: map[string]*svcEntry{}, ns: map[string]bool{}}
	for _, s := range services {
		if s.DeletionTimestamp != nil {
			continue
		}
		e := &svcEntry{name: strings.ToLower(s.Name), namespace: strings.ToLower(s.Namespace), ports: s.Spec.Ports}
		switch {
		case s.Spec.Type == corev1.ServiceTypeExternalName:
			e.externalName = mdns.CanonicalName(s.Spec.ExternalName)
		case s.Spec.ClusterIP == corev1.ClusterIPNone:
			e.headless = true
		default:
			ips := s.Spec.ClusterIPs
			if len(ips) == 0 && s.Spec.ClusterIP != "" {
				ips = []string{s.Spec.ClusterIP}
			}
			for _, ip := range ips {
				if a, err := netip.ParseAddr(ip); err == nil {
					e.clusterIPs = append(e.clusterIPs, a)
				}
			}
			if len(e.clusterIPs) == 0 {
				continue // not allocated yet
			}
		}
		ix.services[e.name+"."+e.namespace] = e
		ix.ns[e.namespace] = true
	}
	for _, es := range endpointSlices {
		e := ix.services[strings.ToLower(es.Labels[discoveryv1.LabelServiceName]+"."+es.Namespace)]
		if e == nil || !e.headless {
			continue
		}
		ports := map[string]portNo{}
		for _, p := range es.Ports {
			pn := portNo{proto: corev1.ProtocolTCP}
			if p.Name != nil {
				pn.name = *p.Name
			}
			if p.Protocol != nil {
				pn.proto = *p.Protocol
			}
			if p.Port == nil {
				continue
			}
			pn.port = *p.Port
			ports[pn.name+"/"+string(pn.proto)] = pn
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil || slices.ContainsFunc(e.endpoints, func(x endpoint) bool { return x.ip == ip }) {
					continue
				}
				x := endpoint{ip: ip, ports: ports}
				if ep.Hostname != nil {
					x.hostname = strings.ToLower(*ep.Hostname)
				}
				e.endpoints = append(e.endpoints, x)
			}
		}
	}
	for _, e := range ix.services {
		slices.SortFunc(e.endpoints, func(a, b endpoint) int { return a.ip.Compare(b.ip) })
	}
	return ix
}

// Result is the answer to one question.
type Result struct {
	// Forward means the name is outside the cluster zone: ask upstream.
	Forward bool
	// Rcode is mdns.RcodeSuccess or mdns.RcodeNameError (NXDOMAIN).
	Rcode int
	// Answer and Extra are the records; an empty Answer with RcodeSuccess
	// means the name exists without records of the asked type (NODATA).
	Answer, Extra []mdns.RR
	// Ns holds the zone's SOA for negative answers.
	Ns []mdns.RR
}

// Answer answers q for the cluster zone:
//
//   - <svc>.<ns>.svc.<zone> A: the cluster IP; for a headless service
//     the ready endpoints' IPs; for ExternalName a CNAME;
//   - _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV: for each named port,
//     the service (target <svc>.<ns>.svc.<zone>) or, headless, every
//     ready endpoint (target <hostname or a-b-c-d>.<svc>.<ns>.svc.<zone>),
//     with their A records as extras;
//   - <hostname>.<svc>.<ns>.svc.<zone> A: a headless service's endpoint
//     whose pod set hostname and subdomain (or the dashed-IP name);
//   - <a-b-c-d>.<ns>.pod.<zone> A: a.b.c.d (as CoreDNS "pods insecure");
//   - the zone, svc.<zone>, <ns>.svc.<zone> and existing names asked for
//     other types: NODATA; anything else in the zone: NXDOMAIN.
//
// Names outside the zone are to be forwarded.
func (ix *Index) Answer(q mdns.Question) Result {
	name := mdns.CanonicalName(q.Name)
	if !mdns.IsSubDomain(ix.zone, name) {
		return Result{Forward: true}
	}
	rel := strings.TrimSuffix(strings.TrimSuffix(name, ix.zone), ".")
	var labels []string
	if rel != "" {
		labels = strings.Split(rel, ".")
	}
	n := len(labels)
	switch {
	case n == 0:
		if q.Qtype == mdns.TypeSOA {
			return Result{Answer: []mdns.RR{ix.soa()}}
		}
		return ix.nodata()
	case n == 1 && (labels[0] == "svc" || labels[0] == "pod"):
		return ix.nodata()
	case n == 2 && labels[1] == "svc":
		if ix.ns[labels[0]] {
			return ix.nodata()
		}
	case n == 2 && labels[1] == "pod":
		return ix.nodata() // any namespace may have pods
	case n == 3 && labels[2] == "svc":
		if e := ix.services[labels[0]+"."+labels[1]]; e != nil {
			return ix.service(q, name, e)
		}
	case n == 3 && labels[2] == "pod":
		if ip, ok := dashedIP(labels[0]); ok {
			if q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY {
				return Result{Answer: []mdns.RR{ix.a(name, ip)}}
			}
			return ix.nodata()
		}
	case n == 4 && labels[3] == "svc":
		if e := ix.services[labels[1]+"."+labels[2]]; e != nil && e.headless {
			for _, ep := range e.endpoints {
				if ep.hostname == labels[0] || dashed(ep.ip) == labels[0] {
					if q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY {
						return Result{Answer: []mdns.RR{ix.a(name, ep.ip)}}
					}
					return ix.nodata()
				}
			}
		}
	case n == 5 && labels[4] == "svc" && strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_"):
		if e := ix.services[labels[2]+"."+labels[3]]; e != nil {
			return ix.srv(q, name, e, labels[0][1:], labels[1][1:])
		}
	}
	return Result{Rcode: mdns.RcodeNameError, Ns: []mdns.RR{ix.soa()}}
}

// service answers for <svc>.<ns>.svc.<zone>.
func (ix *Index) service(q mdns.Question, name string, e *svcEntry) Result {
	if e.externalName != "" {
		if q.Qtype == mdns.TypeCNAME || q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY {
			return Result{Answer: []mdns.RR{&mdns.CNAME{Hdr: ix.hdr(name, mdns.TypeCNAME), Target: e.externalName}}}
		}
		return ix.nodata()
	}
	var ans []mdns.RR
	switch q.Qtype {
	case mdns.TypeA, mdns.TypeAAAA, mdns.TypeANY:
		want4 := q.Qtype != mdns.TypeAAAA
		ips := e.clusterIPs
		if e.headless {
			for _, ep := range e.endpoints {
				ips = append(ips, ep.ip)
			}
		}
		for _, ip := range ips {
			if ip.Is4() == want4 || q.Qtype == mdns.TypeANY {
				ans = append(ans, ix.a(name, ip))
			}
		}
	case mdns.TypeSRV:
		return ix.srv(q, name, e, "", "")
	}
	if len(ans) == 0 {
		return ix.nodata()
	}
	return Result{Answer: ans}
}

// srv answers SRV questions for a service's named ports (port and proto
// "" match all named ports).
func (ix *Index) srv(q mdns.Question, name string, e *svcEntry, port, proto string) Result {
	if q.Qtype != mdns.TypeSRV && q.Qtype != mdns.TypeANY {
		if port == "" {
			return ix.nodata()
		}
		if ix.matchPorts(e, port, proto) {
			return ix.nodata()
		}
		return Result{Rcode: mdns.RcodeNameError, Ns: []mdns.RR{ix.soa()}}
	}
	base := e.name + "." + e.namespace + ".svc." + ix.zone
	var ans, extra []mdns.RR
	for _, sp := range e.ports {
		if sp.Name == "" || !portMatches(sp, port, proto) {
			continue
		}
		pr := sp.Protocol
		if pr == "" {
			pr = corev1.ProtocolTCP
		}
		if !e.headless {
			if e.externalName != "" {
				continue
			}
			ans = append(ans, &mdns.SRV{Hdr: ix.hdr(name, mdns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(sp.Port), Target: base})
			for _, ip := range e.clusterIPs {
				extra = append(extra, ix.a(base, ip))
			}
			continue
		}
		for _, ep := range e.endpoints {
			pn, ok := ep.ports[sp.Name+"/"+string(pr)]
			if !ok {
				continue
			}
			host := ep.hostname
			if host == "" {
				host = dashed(ep.ip)
			}
			target := host + "." + base
			ans = append(ans, &mdns.SRV{Hdr: ix.hdr(name, mdns.TypeSRV), Priority: 0, Weight: uint16(100 / max(1, len(e.endpoints))), Port: uint16(pn.port), Target: target})
			extra = append(extra, ix.a(target, ep.ip))
		}
	}
	if len(ans) == 0 {
		if port == "" || ix.matchPorts(e, port, proto) {
			return ix.nodata()
		}
		return Result{Rcode: mdns.RcodeNameError, Ns: []mdns.RR{ix.soa()}}
	}
	slices.SortStableFunc(ans, func(a, b mdns.RR) int { return cmp.Compare(a.(*mdns.SRV).Target, b.(*mdns.SRV).Target) })
	return Result{Answer: ans, Extra: dedupe(extra)}
}

func (ix *Index) matchPorts(e *svcEntry, port, proto string) bool {
	return slices.ContainsFunc(e.ports, func(sp corev1.ServicePort) bool { return sp.Name != "" && portMatches(sp, port, proto) })
}

// portMatches matches a service port with the _port._proto labels.
func portMatches(sp corev1.ServicePort, port, proto string) bool {
	if port == "" {
		return true
	}
	p := string(sp.Protocol)
	if p == "" {
		p = string(corev1.ProtocolTCP)
	}
	return strings.EqualFold(sp.Name, port) && strings.EqualFold(p, proto)
}

func (ix *Index) hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ix.ttl}
}

func (ix *Index) a(name string, ip netip.Addr) mdns.RR {
	if ip.Is4() {
		return &mdns.A{Hdr: ix.hdr(name, mdns.TypeA), A: ip.AsSlice()}
	}
	return &mdns.AAAA{Hdr: ix.hdr(name, mdns.TypeAAAA), AAAA: ip.AsSlice()}
}

// soa is the zone's SOA, for negative answers (its minimum TTL bounds
// negative caching).
func (ix *Index) soa() mdns.RR {
	return &mdns.SOA{
		Hdr: ix.hdr(ix.zone, mdns.TypeSOA), Ns: "ns.dns." + ix.zone, Mbox: "hostmaster." + ix.zone,
		Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: ix.ttl,
	}
}

func (ix *Index) nodata() Result {
	return Result{Ns: []mdns.RR{ix.soa()}}
}

// dashed writes 10.0.0.1 as 10-0-0-1.
func dashed(ip netip.Addr) string {
	return strings.ReplaceAll(strings.ReplaceAll(ip.String(), ".", "-"), ":", "-")
}

// dashedIP reads an IPv4 address written a-b-c-d.
func dashedIP(s string) (netip.Addr, bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 255 || strconv.Itoa(v) != p {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

func dedupe(rrs []mdns.RR) []mdns.RR {
	var out []mdns.RR
	seen := map[string]bool{}
	for _, rr := range rrs {
		if k := rr.String(); !seen[k] {
			seen[k] = true
			out = append(out, rr)
		}
	}
	return out
}
