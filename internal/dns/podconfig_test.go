package dns

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestForPod(t *testing.T) {
	host := ResolverConfig{Servers: []string{"10.255.255.53"}, Searches: []string{"corp.example"}, Options: []string{"edns0"}}
	pod := func(policy corev1.DNSPolicy, hostNet bool, dc *corev1.PodDNSConfig) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "p"},
			Spec: corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: dc}}
	}
	clusterSearch := "[prod.svc.cluster.local svc.cluster.local cluster.local corp.example]"
	tests := []struct {
		name       string
		pod        *corev1.Pod
		clusterDNS []string
		want       string
	}{
		{"ClusterFirst", pod(corev1.DNSClusterFirst, false, nil), []string{"192.0.2.2"},
			"[192.0.2.2] " + clusterSearch + " [ndots:5]"},
		{"unset policy is ClusterFirst", pod("", false, nil), []string{"192.0.2.2"},
			"[192.0.2.2] " + clusterSearch + " [ndots:5]"},
		{"ClusterFirst with hostNetwork falls back to Default", pod(corev1.DNSClusterFirst, true, nil), []string{"192.0.2.2"},
			"[10.255.255.53] [corp.example] [edns0]"},
		{"ClusterFirstWithHostNet", pod(corev1.DNSClusterFirstWithHostNet, true, nil), []string{"192.0.2.2"},
			"[192.0.2.2] " + clusterSearch + " [ndots:5]"},
		{"ClusterFirst without cluster DNS falls back to Default", pod(corev1.DNSClusterFirst, false, nil), nil,
			"[10.255.255.53] [corp.example] [edns0]"},
		{"Default", pod(corev1.DNSDefault, false, nil), []string{"192.0.2.2"},
			"[10.255.255.53] [corp.example] [edns0]"},
		{"None takes only dnsConfig", pod(corev1.DNSNone, false, &corev1.PodDNSConfig{
			Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr("2")}}}),
			[]string{"192.0.2.2"}, "[1.1.1.1] [a.example] [ndots:2]"},
		{"dnsConfig appended, duplicates dropped, options overridden", pod(corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{
			Nameservers: []string{"192.0.2.2", "1.1.1.1", "8.8.8.8", "9.9.9.9"}, Searches: []string{"svc.cluster.local.", "b.example"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr("1")}, {Name: "single-request"}}}),
			[]string{"192.0.2.2"},
			"[192.0.2.2 1.1.1.1 8.8.8.8] [prod.svc.cluster.local svc.cluster.local cluster.local corp.example b.example] [ndots:1 single-request]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ForPod(tt.pod, tt.clusterDNS, "", host)
			if got := fmt.Sprint(c.Servers, " ", c.Searches, " ", c.Options); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestReadResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# comment\nnameserver 10.0.0.1\nnameserver 10.0.0.2 # second\ndomain old.example\nsearch a.example b.example\noptions ndots:2 edns0\n"), 0o644)
	c, err := ReadResolvConf(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Servers, c.Searches, c.Options); got != "[10.0.0.1 10.0.0.2] [a.example b.example] [ndots:2 edns0]" {
		t.Errorf("got %s", got)
	}
	if c, err := ReadResolvConf(filepath.Join(t.TempDir(), "missing")); err != nil || len(c.Servers) != 0 {
		t.Errorf("missing file: %v, %v; want an empty configuration", c, err)
	}
}
