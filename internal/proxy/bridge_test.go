package proxy

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/dns"
	"github.com/drover/drover/internal/testenv"
)

// podNet is a Linux bridge with "pods" in network namespaces on it, the
// way the CNI bridge plugin wires containerd's pods: a veth pair per pod,
// the bridge holding the pods' gateway address.
type podNet struct {
	t      *testing.T
	bridge string
	subnet string // "10.251.N"
	pods   []string
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newPodNet(t *testing.T) *podNet {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs iproute2: %v", err)
	}
	n := rand.IntN(250) + 1
	p := &podNet{t: t, bridge: fmt.Sprintf("drtbr%d", n), subnet: fmt.Sprintf("10.251.%d", n)}
	t.Cleanup(p.close)
	run(t, "ip", "link", "add", p.bridge, "type", "bridge")
	run(t, "ip", "addr", "add", p.subnet+".1/24", "dev", p.bridge)
	run(t, "ip", "link", "set", p.bridge, "up")
	return p
}

// addPod makes namespace number i with address subnet.(i+1).
func (p *podNet) addPod(i int) (ns, ip string) {
	t := p.t
	ns = fmt.Sprintf("%s-p%d", p.bridge, i)
	host := fmt.Sprintf("%sv%d", p.bridge, i)
	ip = fmt.Sprintf("%s.%d", p.subnet, i+1)
	run(t, "ip", "netns", "add", ns)
	p.pods = append(p.pods, ns)
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run(t, "ip", "link", "set", host, "master", p.bridge, "up")
	run(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", ns, "route", "add", "default", "via", p.subnet+".1")
	return ns, ip
}

// start runs the test binary in namespace ns as a helper (see TestMain).
func (p *podNet) start(ns string, env ...string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// getFrom fetches url from inside namespace ns.
func (p *podNet) getFrom(ns, url string, env ...string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"=get", "DROVER_PROXY_URL="+url), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("get %s from %s: %w: %s", url, ns, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (p *podNet) close() {
	for _, ns := range p.pods {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", p.bridge).Run()
}

// TestIPTablesBridge checks pod-to-service traffic on a bridge like the
// CNI one: a client pod reaches a service whose backend is a pod on the
// same bridge (the reply goes pod to pod through the bridge, so it is
// un-NATed only if bridged traffic passes iptables: br_netfilter with
// bridge-nf-call-iptables=1, which the proxy sets), the host reaches it
// too, and a pod reaching its own service (hairpin) is answered.
func TestIPTablesBridge(t *testing.T) {
	requireIPTables(t)
	env := testenv.Start(t)
	prefix := testPrefix(t)
	pn := newPodNet(t)
	serverNS, serverIP := pn.addPod(1)
	clientNS, _ := pn.addPod(2)
	// Like the CNI bridge with hairpinMode: a pod may reach itself.
	run(t, "ip", "link", "set", fmt.Sprintf("%sv%d", pn.bridge, 1), "type", "bridge_slave", "hairpin", "on")
	pn.start(serverNS, helperEnv+"=serve", "DROVER_PROXY_ADDR="+serverIP+":8080", "DROVER_PROXY_NAME=pod")
	testenv.Eventually(t, 20*time.Second, func() error {
		body, err := get("http://" + serverIP + ":8080/")
		if err == nil && body != "pod" {
			return fmt.Errorf("backend answered %q", body)
		}
		return err
	})

	s := nodePortService(t, env.Kube, "web")
	applySlice(t, env.Kube, endpointSlice("web", "web-pod", &backend{ip: serverIP, port: 8080}, "http", true))
	pr := startProxy(t, env.Kube, Options{Mode: ModeIPTables, ChainPrefix: prefix, ClusterCIDR: pn.subnet + ".0/24"})
	testenv.Eventually(t, 10*time.Second, func() error {
		if bs, _ := pr.backendsOf("default/web:http/TCP"); len(bs) != 1 {
			return fmt.Errorf("backends %v", bs)
		}
		return nil
	})
	cip := fmt.Sprintf("http://%s:80/", s.Spec.ClusterIP)
	for _, c := range []struct{ what, ns, url string }{
		{"pod to cluster IP, backend on the same bridge", clientNS, cip},
		{"pod to its own service (hairpin)", serverNS, cip},
		{"pod to node port on the node", clientNS, fmt.Sprintf("http://%s:%d/", nodeIP(t), s.Spec.Ports[0].NodePort)},
	} {
		body, err := pn.getFrom(c.ns, c.url)
		if err != nil || body != "pod" {
			t.Errorf("%s: %q, %v; want the pod's answer", c.what, body, err)
		}
	}
	if body, err := get(cip); err != nil || body != "pod" {
		t.Errorf("host to cluster IP: %q, %v", body, err)
	}

	// Another machine (here a pod) reaching a node port whose backend is
	// a host process on a loopback address, as the process runtime's pods
	// are: DNAT to 127.x needs route_localnet and masquerading.
	lo := startBackend(t, "loopback", loopbackIPs(1)[0], 0)
	ls := createService(t, env.Kube, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "local"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: randomClusterIP(),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	})
	applySlice(t, env.Kube, endpointSlice("local", "local-a", lo, "http", true))
	testenv.Eventually(t, 10*time.Second, func() error {
		if bs, _ := pr.backendsOf("default/local:http/TCP"); len(bs) != 1 {
			return fmt.Errorf("backends %v", bs)
		}
		return nil
	})
	if body, err := pn.getFrom(clientNS, fmt.Sprintf("http://%s:%d/", nodeIP(t), ls.Spec.Ports[0].NodePort)); err != nil || body != "loopback" {
		t.Errorf("remote client to node port, backend on loopback: %q, %v", body, err)
	}

	// A pod resolves the service by name with the cluster DNS, served on
	// the bridge's address (the pods' gateway), and reaches it.
	dnsCtx, stopDNS := context.WithCancel(context.Background())
	dnsReady := make(chan string, 1)
	dnsDone := make(chan error, 1)
	go func() {
		dnsDone <- dns.Run(dnsCtx, env.Kube, testenv.Logger(t), dns.Options{Addr: pn.subnet + ".1:53", Upstreams: []string{},
			OnReady: func(a string) { dnsReady <- a }})
	}()
	defer func() {
		stopDNS()
		if err := <-dnsDone; err != nil {
			t.Errorf("dns.Run: %v", err)
		}
	}()
	select {
	case addr := <-dnsReady:
		body, err := pn.getFrom(clientNS, "http://web.default.svc.cluster.local/", "DROVER_PROXY_DNS="+addr)
		if err != nil || body != "pod" {
			t.Errorf("pod to service by DNS name: %q, %v; want the pod's answer", body, err)
		}
	case err := <-dnsDone:
		t.Fatalf("dns.Run: %v", err)
	}
	if v, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil || strings.TrimSpace(string(v)) != "1" {
		t.Errorf("bridge-nf-call-iptables = %q (%v), want 1", v, err)
	}
}
