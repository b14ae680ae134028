package proxy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// DefaultAffinityTimeout is how long a ClientIP session sticks to its
// backend when the service does not say (upstream's 3 hours).
const DefaultAffinityTimeout = 10800 * time.Second

// Backend is one endpoint traffic may go to.
type Backend struct {
	// IP and Port are where connections are sent.
	IP   netip.Addr
	Port int32
	// NodeName is the node the endpoint runs on ("" if unknown).
	NodeName string
}

// String is "ip:port".
func (b Backend) String() string {
	return netip.AddrPortFrom(b.IP, uint16(b.Port)).String()
}

// AddrPort is the backend's address as a netip.AddrPort.
func (b Backend) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(b.IP, uint16(b.Port))
}

// Route is one service port and where its traffic goes.
type Route struct {
	// Namespace, Service and PortName name the service port.
	Namespace, Service, PortName string
	// Protocol is TCP, UDP or SCTP.
	Protocol corev1.Protocol
	// ClusterIPs are the service's virtual IPs (IPv4 only for now).
	ClusterIPs []netip.Addr
	// Port is the service port on the cluster IPs.
	Port int32
	// NodePort is the port on every node, 0 if none.
	NodePort int32
	// Backends take traffic to the cluster IPs, sorted by address.
	Backends []Backend
	// ExternalBackends take traffic to the node port: Backends, or only
	// this node's with externalTrafficPolicy Local.
	ExternalBackends []Backend
	// Affinity is the ClientIP session affinity timeout; 0 means none.
	Affinity time.Duration
}

// Key names the route: "namespace/service:port/protocol" (port is the
// port's name, or its number when unnamed).
func (r *Route) Key() string {
	p := r.PortName
	if p == "" {
		p = strconv.Itoa(int(r.Port))
	}
	return fmt.Sprintf("%s/%s:%s/%s", r.Namespace, r.Service, p, r.Protocol)
}

// Table is the routing state of a node: every service port it proxies,
// sorted by Key.
type Table struct {
	Routes []Route
}

// HasBackend reports whether any route sends traffic (cluster or node
// port) to ip: an agent may wait, after an endpoint turned terminating,
// until its proxy's table no longer has the pod's IP before stopping it.
func (t Table) HasBackend(ip netip.Addr) bool {
	for i := range t.Routes {
		r := &t.Routes[i]
		for _, bs := range [][]Backend{r.Backends, r.ExternalBackends} {
			for _, b := range bs {
				if b.IP == ip {
					return true
				}
			}
		}
	}
	return false
}

// Compute derives the routing table from services and their
// EndpointSlices, as kube-proxy does, for node nodeName:
//
//   - every port of a service with a cluster IP (not headless, not
//     ExternalName) is a route; NodePort and LoadBalancer services also
//     get their node ports;
//   - a service's endpoints are those of the slices labelled
//     kubernetes.io/service-name with its name, matched to the service
//     port by port name and protocol; an address seen in several slices
//     counts once (a ready copy wins);
//   - backends are the ready endpoints (conditions.ready true or unset)
//     that are not terminating; when there are none, the serving
//     terminating ones, so that a service whose pods are all stopping keeps
//     answering until they are gone (upstream's fallback); not-ready
//     endpoints never take new connections;
//   - internalTrafficPolicy Local keeps only this node's backends for
//     the cluster IPs, externalTrafficPolicy Local for the node port;
//   - sessionAffinity ClientIP sets Affinity (default timeout 3 hours).
//
// The result is deterministic: routes by Key, backends by address.
func Compute(services []*corev1.Service, endpointSlices []*discoveryv1.EndpointSlice, nodeName string) Table {
	byService := map[string][]*discoveryv1.EndpointSlice{}
	for _, es := range endpointSlices {
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" || es.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		k := es.Namespace + "/" + name
		byService[k] = append(byService[k], es)
	}
	var t Table
	for _, svc := range services {
		if !proxied(svc) {
			continue
		}
		var cips []netip.Addr
		for _, s := range clusterIPs(svc) {
			if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
				cips = append(cips, a)
			}
		}
		if len(cips) == 0 {
			continue
		}
		var affinity time.Duration
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			affinity = DefaultAffinityTimeout
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
				affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
			}
		}
		sl := byService[svc.Namespace+"/"+svc.Name]
		for _, sp := range svc.Spec.Ports {
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			all := Backends(sl, sp.Name, proto)
			r := Route{
				Namespace: svc.Namespace, Service: svc.Name, PortName: sp.Name,
				Protocol: proto, ClusterIPs: cips, Port: sp.Port, Affinity: affinity,
			}
			if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
				r.NodePort = sp.NodePort
			}
			r.Backends = all
			if p := svc.Spec.InternalTrafficPolicy; p != nil && *p == corev1.ServiceInternalTrafficPolicyLocal {
				r.Backends = onNode(all, nodeName)
			}
			r.ExternalBackends = all
			if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
				r.ExternalBackends = onNode(all, nodeName)
			}
			t.Routes = append(t.Routes, r)
		}
	}
	slices.SortFunc(t.Routes, func(a, b Route) int { return cmp.Compare(a.Key(), b.Key()) })
	return t
}

// proxied reports whether svc has virtual IPs to route.
func proxied(svc *corev1.Service) bool {
	if svc.DeletionTimestamp != nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

func clusterIPs(svc *corev1.Service) []string {
	if len(svc.Spec.ClusterIPs) > 0 {
		return svc.Spec.ClusterIPs
	}
	return []string{svc.Spec.ClusterIP}
}

// candidate is an endpoint address with its conditions.
type candidate struct {
	b                           Backend
	ready, serving, terminating bool
}

// Backends picks, from a service's slices, the backends of its port named
// portName with protocol proto: the ready, non-terminating endpoints, or,
// when there are none, the serving terminating ones. Sorted by address.
func Backends(endpointSlices []*discoveryv1.EndpointSlice, portName string, proto corev1.Protocol) []Backend {
	seen := map[netip.AddrPort]int{}
	var cands []candidate
	for _, es := range endpointSlices {
		port, ok := slicePort(es, portName, proto)
		if !ok {
			continue
		}
		for _, ep := range es.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			c := candidate{b: Backend{IP: ip, Port: port}}
			if ep.NodeName != nil {
				c.b.NodeName = *ep.NodeName
			}
			c.ready = ep.Conditions.Ready == nil || *ep.Conditions.Ready
			c.serving = c.ready
			if ep.Conditions.Serving != nil {
				c.serving = *ep.Conditions.Serving
			}
			c.terminating = ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			key := c.b.AddrPort()
			if i, dup := seen[key]; dup {
				if !cands[i].ready && c.ready {
					cands[i] = c
				}
				continue
			}
			seen[key] = len(cands)
			cands = append(cands, c)
		}
	}
	var ready, fallback []Backend
	for _, c := range cands {
		switch {
		case c.ready && !c.terminating:
			ready = append(ready, c.b)
		case c.serving && c.terminating:
			fallback = append(fallback, c.b)
		}
	}
	out := ready
	if len(out) == 0 {
		out = fallback
	}
	slices.SortFunc(out, func(a, b Backend) int { return a.AddrPort().Compare(b.AddrPort()) })
	return out
}

// slicePort finds the slice's port for a service port name and protocol.
func slicePort(es *discoveryv1.EndpointSlice, name string, proto corev1.Protocol) (int32, bool) {
	for _, p := range es.Ports {
		pn := ""
		if p.Name != nil {
			pn = *p.Name
		}
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pn == name && pp == proto && p.Port != nil {
			return *p.Port, true
		}
	}
	return 0, false
}

// onNode keeps the backends on node.
func onNode(bs []Backend, node string) []Backend {
	var out []Backend
	for _, b := range bs {
		if b.NodeName == node {
			out = append(out, b)
		}
	}
	return out
}
