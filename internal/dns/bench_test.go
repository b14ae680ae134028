package dns

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

// BenchmarkAnswer measures the pure lookup in an index of 5000 services.
func BenchmarkAnswer(b *testing.B) {
	var svcs []*corev1.Service
	for i := range 5000 {
		svcs = append(svcs, service("ns", fmt.Sprintf("svc%d", i), fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), sport("http", 80, corev1.ProtocolTCP)))
	}
	ix := NewIndex("", 0, svcs, []*discoveryv1.EndpointSlice{})
	q := mdns.Question{Name: "svc4999.ns.svc.cluster.local.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET}
	b.ResetTimer()
	for range b.N {
		if r := ix.Answer(q); len(r.Answer) != 1 {
			b.Fatal(r)
		}
	}
}

// BenchmarkServerUDP measures a query over UDP to the running server,
// client and server on loopback.
func BenchmarkServerUDP(b *testing.B) {
	env := testenv.Start(b)
	if _, err := env.Kube.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, env.Kube, slog.New(slog.DiscardHandler), Options{Addr: "127.0.0.1:0", Upstreams: []string{}, OnReady: func(a string) { ready <- a }})
	}()
	defer func() { cancel(); <-done }()
	addr := <-ready
	c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
	conn, err := c.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	m := new(mdns.Msg).SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
	b.ResetTimer()
	for range b.N {
		r, _, err := c.ExchangeWithConn(m, conn)
		if err != nil || len(r.Answer) != 1 {
			b.Fatalf("%v %v", r, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
