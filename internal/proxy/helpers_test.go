package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/testenv"
)

// backend is a real HTTP server answering its name.
type backend struct {
	name string
	ip   string
	port int32
	srv  *http.Server

	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

// busy counts the connections that are new or serving a request.
func (b *backend) busy() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, st := range b.conns {
		if st == http.StateNew || st == http.StateActive {
			n++
		}
	}
	return n
}

// startBackend serves name on ip (port 0 = any free port).
func startBackend(t testing.TB, name, ip string, port int) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &backend{name: name, ip: ip, port: int32(ln.Addr().(*net.TCPAddr).Port), conns: map[net.Conn]http.ConnState{}}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}), ConnState: func(c net.Conn, st http.ConnState) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if st == http.StateClosed || st == http.StateHijacked {
			delete(b.conns, c)
		} else {
			b.conns[c] = st
		}
	}}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// proxyRun runs the proxy until the test ends and reports its syncs.
type proxyRun struct {
	mu    sync.Mutex
	table Table
	syncs int
	err   error
}

func (p *proxyRun) onSync(t Table, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.table, p.err = t, err
	p.syncs++
}

// backendsOf returns the current cluster backends of the route key.
func (p *proxyRun) backendsOf(key string) ([]Backend, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.table.Routes {
		if r.Key() == key {
			return r.Backends, true
		}
	}
	return nil, false
}

func startProxy(t testing.TB, client kubernetes.Interface, opts Options) *proxyRun {
	t.Helper()
	pr := &proxyRun{}
	opts.OnSync = pr.onSync
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, client, testenv.Logger(t), opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy.Run: %v", err)
		}
	})
	return pr
}

// createService creates a selector-less service whose endpoints the test
// writes itself.
func createService(t testing.TB, client kubernetes.Interface, s *corev1.Service) *corev1.Service {
	t.Helper()
	got, err := client.CoreV1().Services(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	return got
}

// endpointSlice is a one-endpoint slice for service svc.
func endpointSlice(svcName, name string, b *backend, portName string, ready bool) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(portName), Port: ptr(b.port), Protocol: ptr(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{b.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready), Serving: ptr(ready), Terminating: ptr(false)},
		}},
	}
}

func applySlice(t testing.TB, client kubernetes.Interface, es *discoveryv1.EndpointSlice) {
	t.Helper()
	ctx := context.Background()
	cur, err := client.DiscoveryV1().EndpointSlices(es.Namespace).Get(ctx, es.Name, metav1.GetOptions{})
	if err == nil {
		es.ResourceVersion = cur.ResourceVersion
		_, err = client.DiscoveryV1().EndpointSlices(es.Namespace).Update(ctx, es, metav1.UpdateOptions{})
	} else {
		_, err = client.DiscoveryV1().EndpointSlices(es.Namespace).Create(ctx, es, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("writing endpoint slice %s: %v", es.Name, err)
	}
}

// get fetches url on a new connection and returns the body.
func get(url string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(b), nil
}

// tally sends n requests on new connections and counts the answers.
func tally(url string, n int) (map[string]int, error) {
	seen := map[string]int{}
	var errs []error
	for range n {
		body, err := get(url)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen[body]++
	}
	return seen, errors.Join(errs...)
}

// keepAlive is one client connection reused for several requests.
type keepAlive struct {
	client *http.Client
	tr     *http.Transport
}

func newKeepAlive() *keepAlive {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	return &keepAlive{client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, tr: tr}
}

func (k *keepAlive) get(url string) (string, error) {
	resp, err := k.client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// loopbackIPs are n loopback addresses in a /24 chosen at random, unlikely
// to be used by anyone else (pods of the process runtime use 127.0.2.0 on).
func loopbackIPs(n int) []string {
	third := byte(100 + time.Now().UnixNano()%150)
	var out []string
	for i := range n {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, third, byte(i + 1)}).String())
	}
	return out
}
