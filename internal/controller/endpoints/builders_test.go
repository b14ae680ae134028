package endpoints

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// podB builds test pods.
type podB struct{ p *corev1.Pod }

// mkPod is a ready running pod "name" in namespace ns with IP ip on
// node-1, labelled app=web.
func mkPod(name, ip string) *podB {
	return &podB{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": "web"},
		},
		Spec: corev1.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1.Container{{Name: "c"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0)}},
		},
	}}
}

func (b *podB) unready() *podB {
	b.p.Status.Conditions[0].Status = corev1.ConditionFalse
	return b
}

func (b *podB) readyAt(t time.Time) *podB {
	b.p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(t)
	return b
}

func (b *podB) terminating() *podB {
	now := metav1.NewTime(t0)
	b.p.DeletionTimestamp = &now
	return b
}

func (b *podB) phase(ph corev1.PodPhase) *podB {
	b.p.Status.Phase = ph
	return b
}

func (b *podB) noIP() *podB {
	b.p.Status.PodIP, b.p.Status.PodIPs = "", nil
	return b
}

func (b *podB) node(n string) *podB {
	b.p.Spec.NodeName = n
	return b
}

func (b *podB) port(name string, n int32) *podB {
	c := &b.p.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: corev1.ProtocolTCP})
	return b
}

func (b *podB) hostname(host, subdomain string) *podB {
	b.p.Spec.Hostname, b.p.Spec.Subdomain = host, subdomain
	return b
}

func (b *podB) obj() *corev1.Pod { return b.p }

func pods(bs ...*podB) []*corev1.Pod {
	out := make([]*corev1.Pod, len(bs))
	for i, b := range bs {
		out[i] = b.p
	}
	return out
}

// readyPods returns n ready pods p0..p(n-1) with IPs 10.0.x.y.
func readyPods(n int) []*corev1.Pod {
	out := make([]*corev1.Pod, n)
	for i := range n {
		out[i] = mkPod(fmt.Sprintf("p%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)).obj()
	}
	return out
}

// svcB builds test services.
type svcB struct{ s *corev1.Service }

// mkSvc is service "web" in ns selecting app=web, port 80 → 8080 TCP.
func mkSvc() *svcB {
	return &svcB{&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "ns", UID: "svc-uid",
			CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour)),
		},
		Spec: corev1.ServiceSpec{
			Selector:   map[string]string{"app": "web"},
			ClusterIP:  "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}}
}

func (b *svcB) ports(ps ...corev1.ServicePort) *svcB {
	b.s.Spec.Ports = ps
	return b
}

func (b *svcB) headless() *svcB {
	b.s.Spec.ClusterIP = corev1.ClusterIPNone
	return b
}

func (b *svcB) publishNotReady() *svcB {
	b.s.Spec.PublishNotReadyAddresses = true
	return b
}

func (b *svcB) labels(l map[string]string) *svcB {
	b.s.Labels = l
	return b
}

func (b *svcB) obj() *corev1.Service { return b.s }

func svcPort(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: target, Protocol: corev1.ProtocolTCP}
}

// addr is the endpoint address of mkPod(name, ip).
func addr(name, ip string) corev1.EndpointAddress {
	return corev1.EndpointAddress{
		IP: ip, NodeName: ptrTo("node-1"),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
	}
}

func epPort(name string, port int32) corev1.EndpointPort {
	return corev1.EndpointPort{Name: name, Port: port, Protocol: corev1.ProtocolTCP}
}
