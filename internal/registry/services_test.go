package registry

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func newService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
}

func TestServiceDefaults(t *testing.T) {
	svc := newService()
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	requireNoErrors(t, create(Services(), svc))
	s := svc.Spec
	if s.Type != corev1.ServiceTypeClusterIP || s.SessionAffinity != corev1.ServiceAffinityNone ||
		s.Ports[0].Protocol != corev1.ProtocolTCP || s.Ports[0].TargetPort != intstr.FromInt32(80) ||
		s.InternalTrafficPolicy == nil || *s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster {
		t.Errorf("defaults wrong: %+v", s)
	}
	if s.ExternalTrafficPolicy != "" {
		t.Errorf("ClusterIP service got externalTrafficPolicy %q", s.ExternalTrafficPolicy)
	}
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Error("create must clear status")
	}

	np := newService()
	np.Spec.Type = corev1.ServiceTypeNodePort
	np.Spec.Ports[0].TargetPort = intstr.FromString("http")
	requireNoErrors(t, create(Services(), np))
	if np.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
		t.Errorf("NodePort externalTrafficPolicy = %q", np.Spec.ExternalTrafficPolicy)
	}
	if np.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Error("a named targetPort was overwritten")
	}
}

func TestServiceValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.Service)
		path   string
		typ    field.ErrorType
	}{
		{"name not a DNS label", func(s *corev1.Service) { s.Name = "web.frontend" }, "metadata.name", field.ErrorTypeInvalid},
		{"name starts with digit", func(s *corev1.Service) { s.Name = "1web" }, "metadata.name", field.ErrorTypeInvalid},
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil }, "spec.ports", field.ErrorTypeRequired},
		{"type", func(s *corev1.Service) { s.Spec.Type = "Magic" }, "spec.type", field.ErrorTypeNotSupported},
		{"port zero", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, "spec.ports[0].port", field.ErrorTypeInvalid},
		{"protocol", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }, "spec.ports[0].protocol", field.ErrorTypeNotSupported},
		{"unnamed ports when several", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Port: 443}}
		}, "spec.ports[1].name", field.ErrorTypeRequired},
		{"duplicate port names", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "http", Port: 443}}
		}, "spec.ports[1].name", field.ErrorTypeDuplicate},
		{"nodePort on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }, "spec.ports[0].nodePort", field.ErrorTypeForbidden},
		{"nodePort out of range", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 8080
		}, "spec.ports[0].nodePort", field.ErrorTypeInvalid},
		{"bad targetPort name", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("Not_Valid") }, "spec.ports[0].targetPort", field.ErrorTypeInvalid},
		{"bad clusterIP", func(s *corev1.Service) { s.Spec.ClusterIP = "10.0.0.300" }, "spec.clusterIP", field.ErrorTypeInvalid},
		{"session affinity", func(s *corev1.Service) { s.Spec.SessionAffinity = "Cookie" }, "spec.sessionAffinity", field.ErrorTypeNotSupported},
		{"externalTrafficPolicy on ClusterIP", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }, "spec.externalTrafficPolicy", field.ErrorTypeInvalid},
		{"ExternalName without name", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.Ports = nil
		}, "spec.externalName", field.ErrorTypeRequired},
		{"selector label", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "not valid"} }, "spec.selector", field.ErrorTypeInvalid},
	}
	requireNoErrors(t, create(Services(), newService()))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newService()
			tt.mutate(svc)
			requireError(t, create(Services(), svc), tt.path, tt.typ)
		})
	}

	headless := newService()
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	headless.Spec.Ports = nil
	requireNoErrors(t, create(Services(), headless))

	external := newService()
	external.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com."}
	requireNoErrors(t, create(Services(), external))

	np := newService()
	np.Spec.Type = corev1.ServiceTypeNodePort
	np.Spec.Ports[0].NodePort = 30080
	requireNoErrors(t, create(Services(), np))

	gen := newService()
	gen.Name, gen.GenerateName = "", "Web-"
	requireError(t, create(Services(), gen), "metadata.generateName", field.ErrorTypeInvalid)
}

func TestServiceUpdate(t *testing.T) {
	old := newService()
	old.Spec.Type = corev1.ServiceTypeNodePort
	requireNoErrors(t, create(Services(), old))
	old.Spec.ClusterIP, old.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	old.Spec.Ports[0].NodePort = 30123

	// A client replacing the service without the allocated fields keeps them.
	replaced := newService()
	replaced.Spec.Type = corev1.ServiceTypeNodePort
	replaced.Spec.Ports[0].Port = 80
	requireNoErrors(t, update(Services(), replaced, old))
	if replaced.Spec.ClusterIP != "10.96.0.10" || replaced.Spec.Ports[0].NodePort != 30123 {
		t.Errorf("allocated fields not kept: clusterIP %q nodePort %d", replaced.Spec.ClusterIP, replaced.Spec.Ports[0].NodePort)
	}

	moved := old.DeepCopy()
	moved.Spec.ClusterIP, moved.Spec.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"}
	errs := update(Services(), moved, old)
	requireError(t, errs, "spec.clusterIP", field.ErrorTypeInvalid)
	requireMessage(t, errs, "field is immutable")
}

func TestServiceTable(t *testing.T) {
	tests := []struct {
		name                                      string
		mutate                                    func(*corev1.Service)
		typ, clusterIP, external, ports, selector string
	}{
		{"cluster ip", func(s *corev1.Service) {
			s.Spec.ClusterIPs = []string{"10.96.0.1"}
		}, "ClusterIP", "10.96.0.1", "<none>", "80/TCP", "app=web"},
		{"node port", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053}}
		}, "NodePort", "<none>", "<none>", "80:30080/TCP,53:30053/UDP", "app=web"},
		{"pending load balancer", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }, "LoadBalancer", "<none>", "<pending>", "80/TCP", "app=web"},
		{"load balancer", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		}, "LoadBalancer", "<none>", "203.0.113.7", "80/TCP", "app=web"},
		{"external name", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}
		}, "ExternalName", "<none>", "db.example.com", "<none>", "<none>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newService()
			Services().Default(svc)
			tt.mutate(svc)
			Services().Default(svc)
			svc.CreationTimestamp = ago(3 * 24 * time.Hour)
			row := cells(t, Services(), svc)
			want := []interface{}{tt.typ, tt.clusterIP, tt.external, tt.ports, "3d", tt.selector}
			for i := range want {
				if row[i] != want[i] {
					t.Errorf("%s = %#v, want %#v", Services().TableColumns[i].Name, row[i], want[i])
				}
			}
		})
	}
}
