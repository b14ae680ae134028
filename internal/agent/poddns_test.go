package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodDNS checks the resolver configuration sandboxes get: the cluster
// DNS with the namespace's search path for ClusterFirst pods, the host's
// for hostNetwork pods and without a cluster DNS, and dnsPolicy None.
func TestPodDNS(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := func(mut func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"}}
		if mut != nil {
			mut(p)
		}
		return p
	}
	manager := func(clusterDNS ...string) *podManager {
		return &podManager{a: &agent{cfg: Config{ClusterDNS: clusterDNS, ResolvConf: resolv}, log: slog.Default()}}
	}
	got := manager("10.244.0.1").podDNS(pod(nil))
	if got == nil || !slices.Equal(got.Servers, []string{"10.244.0.1"}) ||
		!slices.Equal(got.Searches, []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}) ||
		!slices.Equal(got.Options, []string{"ndots:5"}) {
		t.Errorf("ClusterFirst: %+v", got)
	}
	if got := manager("10.244.0.1").podDNS(pod(func(p *corev1.Pod) { p.Spec.HostNetwork = true })); got == nil || !slices.Equal(got.Servers, []string{"192.0.2.53"}) {
		t.Errorf("hostNetwork: %+v, want the host's", got)
	}
	if got := manager().podDNS(pod(nil)); got != nil {
		t.Errorf("no cluster DNS: %+v, want nil (the host's file)", got)
	}
	none := manager().podDNS(pod(func(p *corev1.Pod) {
		p.Spec.DNSPolicy = corev1.DNSNone
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.1"}}
	}))
	if none == nil || !slices.Equal(none.Servers, []string{"192.0.2.1"}) || len(none.Searches) != 0 {
		t.Errorf("None: %+v", none)
	}
}
