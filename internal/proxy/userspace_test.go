package proxy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

// TestUserspaceNodePort runs the userspace proxy against a real API
// server and real backends: only ready endpoints take new connections, an
// endpoint turning not ready leaves at once while a keep-alive connection
// to it completes its next request, a dead endpoint is skipped, and a
// service without endpoints refuses.
func TestUserspaceNodePort(t *testing.T) {
	env := testenv.Start(t)
	ips := loopbackIPs(3)
	a := startBackend(t, "a", ips[0], 0)
	b := startBackend(t, "b", ips[1], 0)
	c := startBackend(t, "c", ips[2], 0)
	s := createService(t, env.Kube, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	})
	np := s.Spec.Ports[0].NodePort
	if np == 0 {
		t.Fatal("no node port allocated")
	}
	applySlice(t, env.Kube, endpointSlice("web", "web-a", a, "http", true))
	applySlice(t, env.Kube, endpointSlice("web", "web-b", b, "http", true))
	applySlice(t, env.Kube, endpointSlice("web", "web-c", c, "http", false))

	pr := startProxy(t, env.Kube, Options{Mode: ModeUserspace, NodeName: "n1", NodePortAddress: "127.0.0.1"})
	url := fmt.Sprintf("http://127.0.0.1:%d/", np)
	const key = "default/web:http/TCP"
	testenv.Eventually(t, 10*time.Second, func() error {
		bs, _ := pr.backendsOf(key)
		if len(bs) != 2 {
			return fmt.Errorf("backends %v, want a and b", bs)
		}
		return nil
	})
	seen, err := tally(url, 20)
	if err != nil {
		t.Fatalf("requests through the node port failed: %v", err)
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["c"] != 0 || len(seen) != 2 {
		t.Fatalf("answers %v, want a and b (round robin), never the unready c", seen)
	}

	// A keep-alive connection that landed on a.
	var ka *keepAlive
	for range 10 {
		k := newKeepAlive()
		body, err := k.get(url)
		if err != nil {
			t.Fatal(err)
		}
		if body == "a" {
			ka = k
			break
		}
		k.tr.CloseIdleConnections()
	}
	if ka == nil {
		t.Fatal("no connection reached backend a in 10 tries")
	}
	defer ka.tr.CloseIdleConnections()

	// a turns not ready: it leaves the table, new connections avoid it,
	// the open one still completes on a.
	applySlice(t, env.Kube, endpointSlice("web", "web-a", a, "http", false))
	testenv.Eventually(t, 10*time.Second, func() error {
		bs, _ := pr.backendsOf(key)
		if len(bs) != 1 || bs[0].IP.String() != b.ip {
			return fmt.Errorf("backends %v, want only b", bs)
		}
		return nil
	})
	seen, err = tally(url, 10)
	if err != nil || len(seen) != 1 || seen["b"] != 10 {
		t.Fatalf("after a turned not ready: answers %v (err %v), want only b", seen, err)
	}
	body, err := ka.get(url)
	if err != nil || body != "a" {
		t.Fatalf("open keep-alive connection: %q, %v; want a to still answer", body, err)
	}

	// c turns ready but is dead: the proxy tries the next backend.
	c.srv.Close()
	applySlice(t, env.Kube, endpointSlice("web", "web-c", c, "http", true))
	testenv.Eventually(t, 10*time.Second, func() error {
		bs, _ := pr.backendsOf(key)
		if !slices.ContainsFunc(bs, func(x Backend) bool { return x.IP.String() == c.ip }) {
			return fmt.Errorf("backends %v, want c among them", bs)
		}
		return nil
	})
	seen, err = tally(url, 10)
	if err != nil || seen["b"] != 10 {
		t.Fatalf("with c dead: answers %v (err %v), want every request answered by b", seen, err)
	}

	// No endpoints at all: the connection is closed without an answer.
	for _, n := range []string{"web-b", "web-c"} {
		if err := env.Kube.DiscoveryV1().EndpointSlices("default").Delete(context.Background(), n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if bs, _ := pr.backendsOf(key); len(bs) != 0 {
			return fmt.Errorf("backends %v, want none", bs)
		}
		return nil
	})
	if body, err := get(url); err == nil {
		t.Fatalf("request without endpoints answered %q, want an error", body)
	}

	// The service goes: its node port closes.
	if err := env.Kube.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, ok := pr.backendsOf(key); ok {
			return fmt.Errorf("route still present")
		}
		if _, err := get(url); err == nil {
			return fmt.Errorf("node port still answers")
		}
		return nil
	})
}

// TestUserspaceAffinity checks that ClientIP affinity keeps a client on
// one backend.
func TestUserspaceAffinity(t *testing.T) {
	env := testenv.Start(t)
	ips := loopbackIPs(2)
	a := startBackend(t, "a", ips[0], 0)
	b := startBackend(t, "b", ips[1], 0)
	s := createService(t, env.Kube, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sticky"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, SessionAffinity: corev1.ServiceAffinityClientIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	})
	applySlice(t, env.Kube, endpointSlice("sticky", "sticky-a", a, "http", true))
	applySlice(t, env.Kube, endpointSlice("sticky", "sticky-b", b, "http", true))
	pr := startProxy(t, env.Kube, Options{Mode: ModeUserspace, NodePortAddress: "127.0.0.1"})
	testenv.Eventually(t, 10*time.Second, func() error {
		if bs, _ := pr.backendsOf("default/sticky:http/TCP"); len(bs) != 2 {
			return fmt.Errorf("backends %v, want 2", bs)
		}
		return nil
	})
	seen, err := tally(fmt.Sprintf("http://127.0.0.1:%d/", s.Spec.Ports[0].NodePort), 20)
	if err != nil || len(seen) != 1 {
		t.Fatalf("answers %v (err %v), want all from one backend", seen, err)
	}
}
