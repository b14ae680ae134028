package registry

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNormalization covers what upstream does in version conversion and
// we do in Default: write-only and alias fields folded into their real ones.
func TestNormalization(t *testing.T) {
	s := &corev1.Secret{Data: map[string][]byte{"a": []byte("old"), "b": []byte("kept")}, StringData: map[string]string{"a": "new", "c": "added"}}
	Secrets().Default(s)
	if string(s.Data["a"]) != "new" || string(s.Data["b"]) != "kept" || string(s.Data["c"]) != "added" || s.StringData != nil {
		t.Errorf("stringData not merged: data %q stringData %v", s.Data, s.StringData)
	}

	pod := newPod()
	pod.Spec.DeprecatedServiceAccount = "builder"
	pod.Status.PodIP = "10.0.0.7"
	pod.Status.HostIPs = []corev1.HostIP{{IP: "192.168.0.2"}}
	Pods().Default(pod)
	if pod.Spec.ServiceAccountName != "builder" {
		t.Errorf("serviceAccountName = %q", pod.Spec.ServiceAccountName)
	}
	if len(pod.Status.PodIPs) != 1 || pod.Status.PodIPs[0].IP != "10.0.0.7" || pod.Status.HostIP != "192.168.0.2" {
		t.Errorf("IPs not synced: %+v", pod.Status)
	}

	svc := newService()
	svc.Spec.ClusterIP = "10.96.0.5"
	Services().Default(svc)
	if len(svc.Spec.ClusterIPs) != 1 || svc.Spec.ClusterIPs[0] != "10.96.0.5" {
		t.Errorf("clusterIPs = %v", svc.Spec.ClusterIPs)
	}

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.3.0/24"}}}
	Nodes().Default(node)
	if node.Spec.PodCIDR != "10.244.3.0/24" {
		t.Errorf("podCIDR = %q", node.Spec.PodCIDR)
	}
}
