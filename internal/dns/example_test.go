package dns_test

import (
	"fmt"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/dns"
)

// An Index answers for the cluster zone and says what to forward.
func ExampleIndex_Answer() {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.20", Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	ix := dns.NewIndex("cluster.local", 5, []*corev1.Service{svc}, nil)
	for _, q := range []mdns.Question{
		{Name: "web.prod.svc.cluster.local.", Qtype: mdns.TypeA},
		{Name: "_http._tcp.web.prod.svc.cluster.local.", Qtype: mdns.TypeSRV},
		{Name: "db.prod.svc.cluster.local.", Qtype: mdns.TypeA},
		{Name: "example.org.", Qtype: mdns.TypeA},
	} {
		r := ix.Answer(q)
		switch {
		case r.Forward:
			fmt.Println(q.Name, "forward")
		case len(r.Answer) > 0:
			fmt.Println(r.Answer[0])
		default:
			fmt.Println(q.Name, mdns.RcodeToString[r.Rcode])
		}
	}
	// Output:
	// web.prod.svc.cluster.local.	5	IN	A	10.96.0.20
	// _http._tcp.web.prod.svc.cluster.local.	5	IN	SRV	0 100 80 web.prod.svc.cluster.local.
	// db.prod.svc.cluster.local. NXDOMAIN
	// example.org. forward
}
