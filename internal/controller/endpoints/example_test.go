package endpoints_test

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drover/drover/internal/controller/endpoints"
)

// Two pods behind a service with a named target port: the ready one is an
// address, the unready one a not-ready address, each with the container
// port its own spec gives the name.
func ExampleSubsets() {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector:  map[string]string{"app": "web"},
			ClusterIP: "10.96.0.10",
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	mk := func(name, ip string, port int32, ready corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{
				Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
			}}},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
			},
		}
	}
	pods := []*corev1.Pod{
		mk("web-1", "10.244.0.5", 8080, corev1.ConditionTrue),
		mk("web-2", "10.244.0.6", 9090, corev1.ConditionFalse),
	}
	for _, s := range endpoints.Subsets(svc, pods) {
		for _, a := range s.Addresses {
			fmt.Printf("ready     %s:%d (%s)\n", a.IP, s.Ports[0].Port, a.TargetRef.Name)
		}
		for _, a := range s.NotReadyAddresses {
			fmt.Printf("not ready %s:%d (%s)\n", a.IP, s.Ports[0].Port, a.TargetRef.Name)
		}
	}
	// Output:
	// ready     10.244.0.5:8080 (web-1)
	// not ready 10.244.0.6:9090 (web-2)
}
