package proxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Builders.

func svc(name, cip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: cip, ClusterIPs: []string{cip}, Ports: ports},
	}
}

func port(name string, p int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: p, Protocol: corev1.ProtocolTCP}
}

func nodePort(s *corev1.Service, np ...int32) *corev1.Service {
	s.Spec.Type = corev1.ServiceTypeNodePort
	for i := range np {
		s.Spec.Ports[i].NodePort = np[i]
	}
	return s
}

type epOpt func(*discoveryv1.Endpoint)

func notReady(e *discoveryv1.Endpoint) { e.Conditions.Ready = ptr(false) }
func terminating(serving bool) epOpt {
	return func(e *discoveryv1.Endpoint) {
		e.Conditions.Ready = ptr(false)
		e.Conditions.Serving = ptr(serving)
		e.Conditions.Terminating = ptr(true)
	}
}
func onNodeOpt(n string) epOpt         { return func(e *discoveryv1.Endpoint) { e.NodeName = ptr(n) } }
func nilReady(e *discoveryv1.Endpoint) { e.Conditions = discoveryv1.EndpointConditions{} }

func ep(ip string, opts ...epOpt) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

type slicePortSpec struct {
	name string
	port int32
}

func slice(svcName, name string, ports []slicePortSpec, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
	}
	for _, p := range ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr(p.name), Port: ptr(p.port), Protocol: ptr(corev1.ProtocolTCP)})
	}
	return es
}

func ptr[T any](v T) *T { return &v }

func backends(bs []Backend) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.String())
	}
	return strings.Join(s, ",")
}

func TestCompute(t *testing.T) {
	web := []slicePortSpec{{"http", 8080}}
	tests := []struct {
		name     string
		services []*corev1.Service
		slices   []*discoveryv1.EndpointSlice
		// want maps route key to "backends|external backends|nodeport|affinity".
		want map[string]string
	}{
		{
			name:     "ready endpoints, unset ready counts as ready, not-ready left out",
			services: []*corev1.Service{svc("web", "10.96.0.10", port("http", 80))},
			slices: []*discoveryv1.EndpointSlice{slice("web", "web-1", web,
				ep("10.244.0.3"), ep("10.244.0.2", nilReady), ep("10.244.0.4", notReady))},
			want: map[string]string{"default/web:http/TCP": "10.244.0.2:8080,10.244.0.3:8080|10.244.0.2:8080,10.244.0.3:8080|0|0s"},
		},
		{
			name:     "terminating endpoints are not used while any is ready",
			services: []*corev1.Service{svc("web", "10.96.0.10", port("http", 80))},
			slices: []*discoveryv1.EndpointSlice{slice("web", "web-1", web,
				ep("10.244.0.2", terminating(true)), ep("10.244.0.3"))},
			want: map[string]string{"default/web:http/TCP": "10.244.0.3:8080|10.244.0.3:8080|0|0s"},
		},
		{
			name:     "serving terminating endpoints are the fallback when none is ready",
			services: []*corev1.Service{svc("web", "10.96.0.10", port("http", 80))},
			slices: []*discoveryv1.EndpointSlice{slice("web", "web-1", web,
				ep("10.244.0.2", terminating(true)), ep("10.244.0.3", terminating(false)), ep("10.244.0.4", notReady))},
			want: map[string]string{"default/web:http/TCP": "10.244.0.2:8080|10.244.0.2:8080|0|0s"},
		},
		{
			name:     "no endpoints at all: a route without backends",
			services: []*corev1.Service{nodePort(svc("web", "10.96.0.10", port("http", 80)), 30080)},
			want:     map[string]string{"default/web:http/TCP": "||30080|0s"},
		},
		{
			name:     "endpoints spread over slices, duplicates counted once, ready copy wins",
			services: []*corev1.Service{svc("web", "10.96.0.10", port("http", 80))},
			slices: []*discoveryv1.EndpointSlice{
				slice("web", "web-1", web, ep("10.244.0.2", notReady), ep("10.244.0.5")),
				slice("web", "web-2", web, ep("10.244.0.2"), ep("10.244.0.1")),
				slice("other", "other-1", web, ep("10.244.0.9")),
			},
			want: map[string]string{"default/web:http/TCP": "10.244.0.1:8080,10.244.0.2:8080,10.244.0.5:8080|10.244.0.1:8080,10.244.0.2:8080,10.244.0.5:8080|0|0s"},
		},
		{
			name:     "ports matched by name; slice without the port contributes nothing",
			services: []*corev1.Service{svc("web", "10.96.0.10", port("http", 80), port("metrics", 9090))},
			slices: []*discoveryv1.EndpointSlice{
				slice("web", "web-1", []slicePortSpec{{"http", 8080}, {"metrics", 9100}}, ep("10.244.0.2")),
				slice("web", "web-2", []slicePortSpec{{"http", 8081}}, ep("10.244.0.3")),
			},
			want: map[string]string{
				"default/web:http/TCP":    "10.244.0.2:8080,10.244.0.3:8081|10.244.0.2:8080,10.244.0.3:8081|0|0s",
				"default/web:metrics/TCP": "10.244.0.2:9100|10.244.0.2:9100|0|0s",
			},
		},
		{
			name: "externalTrafficPolicy Local keeps node port traffic on this node",
			services: func() []*corev1.Service {
				s := nodePort(svc("web", "10.96.0.10", port("", 80)), 30080)
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				return []*corev1.Service{s}
			}(),
			slices: []*discoveryv1.EndpointSlice{slice("web", "web-1", []slicePortSpec{{"", 8080}},
				ep("10.244.0.2", onNodeOpt("n1")), ep("10.244.1.2", onNodeOpt("n2")))},
			want: map[string]string{"default/web:80/TCP": "10.244.0.2:8080,10.244.1.2:8080|10.244.0.2:8080|30080|0s"},
		},
		{
			name: "internalTrafficPolicy Local keeps cluster IP traffic on this node",
			services: func() []*corev1.Service {
				s := svc("web", "10.96.0.10", port("", 80))
				s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
				return []*corev1.Service{s}
			}(),
			slices: []*discoveryv1.EndpointSlice{slice("web", "web-1", []slicePortSpec{{"", 8080}},
				ep("10.244.0.2", onNodeOpt("n1")), ep("10.244.1.2", onNodeOpt("n2")))},
			want: map[string]string{"default/web:80/TCP": "10.244.0.2:8080|10.244.0.2:8080,10.244.1.2:8080|0|0s"},
		},
		{
			name: "ClientIP affinity with default and given timeouts",
			services: func() []*corev1.Service {
				a := svc("a", "10.96.0.10", port("", 80))
				a.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				b := svc("b", "10.96.0.11", port("", 80))
				b.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				b.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
				return []*corev1.Service{a, b}
			}(),
			want: map[string]string{"default/a:80/TCP": "||0|3h0m0s", "default/b:80/TCP": "||0|1m0s"},
		},
		{
			name: "headless, ExternalName, unallocated and deleted services are not proxied",
			services: func() []*corev1.Service {
				h := svc("headless", "None", port("", 80))
				x := svc("ext", "", port("", 80))
				x.Spec.Type = corev1.ServiceTypeExternalName
				u := svc("unallocated", "", port("", 80))
				d := svc("deleted", "10.96.0.12", port("", 80))
				d.DeletionTimestamp = &metav1.Time{Time: time.Now()}
				return []*corev1.Service{h, x, u, d}
			}(),
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.services, tt.slices, "n1")
			gotMap := map[string]string{}
			for _, r := range got.Routes {
				gotMap[r.Key()] = backends(r.Backends) + "|" + backends(r.ExternalBackends) + "|" + itoa(r.NodePort) + "|" + r.Affinity.String()
			}
			for k, v := range tt.want {
				if gotMap[k] != v {
					t.Errorf("route %s = %q, want %q", k, gotMap[k], v)
				}
			}
			for k, v := range gotMap {
				if _, ok := tt.want[k]; !ok {
					t.Errorf("unexpected route %s = %q", k, v)
				}
			}
			if !slices.IsSortedFunc(got.Routes, func(a, b Route) int { return strings.Compare(a.Key(), b.Key()) }) {
				t.Errorf("routes not sorted by key")
			}
		})
	}
}

func TestComputeClusterIPs(t *testing.T) {
	s := svc("web", "10.96.0.10", port("", 80))
	got := Compute([]*corev1.Service{s}, nil, "")
	if len(got.Routes) != 1 || !slices.Equal(got.Routes[0].ClusterIPs, []netip.Addr{netip.MustParseAddr("10.96.0.10")}) {
		t.Fatalf("routes = %+v, want one with cluster IP 10.96.0.10", got.Routes)
	}
}

func TestHasBackend(t *testing.T) {
	s := nodePort(svc("web", "10.96.0.10", port("", 80)), 30080)
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	tab := Compute([]*corev1.Service{s}, []*discoveryv1.EndpointSlice{slice("web", "web-1", []slicePortSpec{{"", 8080}},
		ep("10.244.0.2", onNodeOpt("n1")), ep("10.244.0.3", terminating(true)))}, "n1")
	for ip, want := range map[string]bool{"10.244.0.2": true, "10.244.0.3": false, "10.96.0.10": false} {
		if got := tab.HasBackend(netip.MustParseAddr(ip)); got != want {
			t.Errorf("HasBackend(%s) = %v, want %v", ip, got, want)
		}
	}
}
