package dns

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/testenv"
)

// startUpstream runs a real DNS server answering example.org A 192.0.2.80.
func startUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg).SetReply(r)
		if r.Question[0].Name == "example.org." {
			rr, _ := mdns.NewRR("example.org. 60 IN A 192.0.2.80")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go s.ActivateAndServe()
	t.Cleanup(func() { s.Shutdown() })
	return pc.LocalAddr().String()
}

func startDNS(t *testing.T, client kubernetes.Interface, opts Options) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	opts.OnReady = func(a string) { ready <- a }
	done := make(chan error, 1)
	go func() { done <- Run(ctx, client, testenv.Logger(t), opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dns.Run: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a
	case err := <-done:
		t.Fatalf("dns.Run returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("dns server not ready in 30s")
	}
	return ""
}

func query(t *testing.T, network, server, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	m := new(mdns.Msg).SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	return r
}

// TestServer runs the server against a real API server and asks it with
// a DNS client over UDP and TCP: services, headless endpoints, SRV,
// NXDOMAIN, changes seen, and forwarding.
func TestServer(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	web, err := env.Kube.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       corev1.ServiceSpec{ClusterIP: "None", Ports: []corev1.ServicePort{{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.DiscoveryV1().EndpointSlices("default").Create(ctx,
		eslice("default", "db", map[string]int32{"pg": 5432}, sep{ip: "10.244.0.7", hostname: "db-0"}, sep{ip: "10.244.0.8", ready: ptr(false)}),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	up := startUpstream(t)
	addr := startDNS(t, env.Kube, Options{Addr: "127.0.0.1:0", Upstreams: []string{up}})

	for _, network := range []string{"udp", "tcp"} {
		r := query(t, network, addr, "web.default.svc.cluster.local.", mdns.TypeA)
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != web.Spec.ClusterIP || !r.Authoritative {
			t.Errorf("%s: web: %v, want authoritative A %s", network, r, web.Spec.ClusterIP)
		}
	}
	r := query(t, "udp", addr, "db.default.svc.cluster.local.", mdns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "10.244.0.7" {
		t.Errorf("headless db: %v, want only the ready 10.244.0.7", r)
	}
	r = query(t, "udp", addr, "db-0.db.default.svc.cluster.local.", mdns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "10.244.0.7" {
		t.Errorf("db-0 hostname: %v", r)
	}
	r = query(t, "udp", addr, "_http._tcp.web.default.svc.cluster.local.", mdns.TypeSRV)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.SRV).Port != 80 || r.Answer[0].(*mdns.SRV).Target != "web.default.svc.cluster.local." || len(r.Extra) != 1 {
		t.Errorf("SRV http: %v", r)
	}
	r = query(t, "udp", addr, "nope.default.svc.cluster.local.", mdns.TypeA)
	if r.Rcode != mdns.RcodeNameError || len(r.Ns) != 1 {
		t.Errorf("unknown service: %v, want NXDOMAIN with SOA", r)
	}
	r = query(t, "udp", addr, "example.org.", mdns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "192.0.2.80" {
		t.Errorf("forwarded example.org: %v", r)
	}
	r = query(t, "tcp", addr, "example.org.", mdns.TypeA)
	if r.Rcode != mdns.RcodeServerFailure && (len(r.Answer) != 1) {
		// The upstream only serves UDP: a TCP query fails upstream.
		t.Errorf("forwarded over tcp to a udp-only upstream: %v, want SERVFAIL or an answer", r)
	}

	// A new service is answered, a deleted one no longer.
	api, err := env.Kube.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r := query(t, "udp", addr, "api.default.svc.cluster.local.", mdns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != api.Spec.ClusterIP {
			return fmt.Errorf("api: %v", r)
		}
		return nil
	})
	if err := env.Kube.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if r := query(t, "udp", addr, "web.default.svc.cluster.local.", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
			return fmt.Errorf("web after delete: %v", r)
		}
		return nil
	})
}

// TestServerRefusesWithoutUpstream: with no resolvers, outside names are
// refused, and a taken address is an error at start.
func TestServerRefusesWithoutUpstream(t *testing.T) {
	env := testenv.Start(t)
	addr := startDNS(t, env.Kube, Options{Addr: "127.0.0.1:0", Upstreams: []string{}})
	if r := query(t, "udp", addr, "example.org.", mdns.TypeA); r.Rcode != mdns.RcodeRefused {
		t.Errorf("example.org without upstreams: %v, want REFUSED", r)
	}
	err := Run(context.Background(), env.Kube, testenv.Logger(t), Options{Addr: addr})
	if err == nil {
		t.Fatal("second server on the same address started")
	}
}
