package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/testenv"
)

// requireIPTables skips the test unless iptables can be programmed here
// (root); with DROVER_E2E=1 it fails instead.
func requireIPTables(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := iptablesUsable(ctx); err != nil {
		if os.Getenv("DROVER_E2E") == "1" {
			t.Fatalf("iptables mode needs root and iptables: %v", err)
		}
		t.Skipf("iptables mode needs root and iptables (DROVER_E2E=1 makes this fail): %v", err)
	}
}

// testPrefix is a chain prefix of the test's own, so it cannot disturb a
// proxy running on the machine; the chains are removed when the test ends.
func testPrefix(t testing.TB) string {
	p := fmt.Sprintf("DRT%04d", rand.IntN(10000))
	t.Cleanup(func() {
		if err := Cleanup(context.Background(), p); err != nil {
			t.Errorf("cleanup of %s: %v", p, err)
		}
	})
	return p
}

// randomClusterIP is an address in the service range that other test
// environments (which allocate from 10.96.0.1 up) are unlikely to use.
func randomClusterIP() string {
	return fmt.Sprintf("10.%d.%d.%d", 100+rand.IntN(10), rand.IntN(256), 1+rand.IntN(254))
}

// nodeIP is the address of the interface of the default route.
func nodeIP(t testing.TB) string {
	c, err := net.Dial("udp", "192.0.2.250:9")
	if err != nil {
		t.Skipf("no default route: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

func nodePortService(t testing.TB, client kubernetes.Interface, name string) *corev1.Service {
	return createService(t, client, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: randomClusterIP(),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	})
}

// TestIPTables programs real NAT rules: the cluster IP and the node port
// (on 127.0.0.1 and the node's address) reach backends on loopback
// addresses, a backend turning not ready stops getting new connections at
// once while an open connection to it still works (conntrack), the rules
// outlive the proxy, and Cleanup removes them.
func TestIPTables(t *testing.T) {
	requireIPTables(t)
	env := testenv.Start(t)
	prefix := testPrefix(t)
	ips := loopbackIPs(2)
	a := startBackend(t, "a", ips[0], 0)
	b := startBackend(t, "b", ips[1], 0)
	s := nodePortService(t, env.Kube, "web")
	applySlice(t, env.Kube, endpointSlice("web", "web-a", a, "http", true))
	applySlice(t, env.Kube, endpointSlice("web", "web-b", b, "http", true))

	ctx, stop := context.WithCancel(context.Background())
	pr := &proxyRun{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, env.Kube, testenv.Logger(t), Options{Mode: ModeIPTables, NodeName: "n1", ChainPrefix: prefix, OnSync: pr.onSync})
	}()
	stopped := false
	defer func() {
		if !stopped {
			stop()
			<-done
		}
	}()
	const key = "default/web:http/TCP"
	testenv.Eventually(t, 10*time.Second, func() error {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		if pr.err != nil {
			return pr.err
		}
		if bs, _ := pr.backendsOf2(key); len(bs) != 2 {
			return fmt.Errorf("backends %v", bs)
		}
		return nil
	})

	urls := map[string]string{
		"cluster IP":            fmt.Sprintf("http://%s:80/", s.Spec.ClusterIP),
		"node port on loopback": fmt.Sprintf("http://127.0.0.1:%d/", s.Spec.Ports[0].NodePort),
		"node port on node IP":  fmt.Sprintf("http://%s:%d/", nodeIP(t), s.Spec.Ports[0].NodePort),
	}
	for what, url := range urls {
		seen, err := tally(url, 30)
		if err != nil || seen["a"] == 0 || seen["b"] == 0 {
			t.Fatalf("%s %s: answers %v (err %v), want both a and b", what, url, seen, err)
		}
	}

	// A keep-alive connection through the cluster IP that landed on a.
	var ka *keepAlive
	for range 30 {
		k := newKeepAlive()
		if body, err := k.get(urls["cluster IP"]); err == nil && body == "a" {
			ka = k
			break
		}
		k.tr.CloseIdleConnections()
	}
	if ka == nil {
		t.Fatal("no connection reached a in 30 tries")
	}
	defer ka.tr.CloseIdleConnections()
	applySlice(t, env.Kube, endpointSlice("web", "web-a", a, "http", false))
	testenv.Eventually(t, 10*time.Second, func() error {
		if bs, _ := pr.backendsOf(key); len(bs) != 1 || bs[0].IP.String() != b.ip {
			return fmt.Errorf("backends %v, want only b", bs)
		}
		return nil
	})
	for what, url := range urls {
		seen, err := tally(url, 20)
		if err != nil || seen["b"] != 20 {
			t.Fatalf("%s after a turned not ready: answers %v (err %v), want only b", what, seen, err)
		}
	}
	if body, err := ka.get(urls["cluster IP"]); err != nil || body != "a" {
		t.Fatalf("open connection to a after it turned not ready: %q, %v; want a", body, err)
	}

	// The rules outlive the proxy.
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	stopped = true
	if seen, err := tally(urls["cluster IP"], 5); err != nil || seen["b"] != 5 {
		t.Fatalf("after the proxy stopped: %v (err %v), want b to keep answering", seen, err)
	}

	// Cleanup removes every chain and jump.
	if err := Cleanup(context.Background(), prefix); err != nil {
		t.Fatal(err)
	}
	chains, err := ownChains(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains["nat"])+len(chains["filter"]) != 0 {
		t.Fatalf("chains left after cleanup: %v", chains)
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), prefix+"-") {
			t.Fatalf("%s table still mentions %s:\n%s", table, prefix, out)
		}
	}
	if body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", s.Spec.Ports[0].NodePort)); err == nil {
		t.Fatalf("node port still answers %q after cleanup", body)
	}
}

// backendsOf2 is backendsOf for a caller that holds p.mu.
func (p *proxyRun) backendsOf2(key string) ([]Backend, bool) {
	for _, r := range p.table.Routes {
		if r.Key() == key {
			return r.Backends, true
		}
	}
	return nil, false
}

// TestIPTablesRestart: a proxy started over the rules of a previous one
// (an agent restart) takes them over: a service deleted meanwhile loses
// its chains, the others keep working throughout.
func TestIPTablesRestart(t *testing.T) {
	requireIPTables(t)
	env := testenv.Start(t)
	prefix := testPrefix(t)
	ips := loopbackIPs(2)
	a := startBackend(t, "a", ips[0], 0)
	g := startBackend(t, "gone", ips[1], 0)
	keep := nodePortService(t, env.Kube, "web")
	gone := nodePortService(t, env.Kube, "gone")
	applySlice(t, env.Kube, endpointSlice("web", "web-a", a, "http", true))
	applySlice(t, env.Kube, endpointSlice("gone", "gone-a", g, "http", true))

	runOnce := func(until func(*proxyRun) error) {
		ctx, stop := context.WithCancel(context.Background())
		pr := &proxyRun{}
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, env.Kube, testenv.Logger(t), Options{Mode: ModeIPTables, ChainPrefix: prefix, OnSync: pr.onSync})
		}()
		testenv.Eventually(t, 10*time.Second, func() error { return until(pr) })
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	synced := func(routes int) func(*proxyRun) error {
		return func(pr *proxyRun) error {
			pr.mu.Lock()
			defer pr.mu.Unlock()
			if pr.syncs == 0 || pr.err != nil || len(pr.table.Routes) != routes {
				return fmt.Errorf("syncs %d, err %v, routes %d", pr.syncs, pr.err, len(pr.table.Routes))
			}
			return nil
		}
	}
	runOnce(synced(2))
	before, err := ownChains(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	goneURL := fmt.Sprintf("http://%s:80/", gone.Spec.ClusterIP)
	webURL := fmt.Sprintf("http://%s:80/", keep.Spec.ClusterIP)
	for url, want := range map[string]string{webURL: "a", goneURL: "gone"} {
		if body, err := get(url); err != nil || body != want {
			t.Fatalf("with the proxy stopped, %s: %q, %v; want %q", url, body, err, want)
		}
	}
	if err := env.Kube.CoreV1().Services("default").Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	runOnce(synced(1))
	after, err := ownChains(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(after["nat"]) >= len(before["nat"]) {
		t.Fatalf("nat chains before %v, after %v: the deleted service's chains remain", before["nat"], after["nat"])
	}
	if body, err := get(webURL); err != nil || body != "a" {
		t.Fatalf("web after restart: %q, %v", body, err)
	}
	if body, err := get(goneURL); err == nil {
		t.Fatalf("deleted service still answers %q", body)
	}
}
