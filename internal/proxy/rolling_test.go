package proxy

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/testenv"
)

// load sends requests to url from several clients until stopped, half on
// kept-alive connections, half on new ones, counting answers and failures.
type load struct {
	mu       sync.Mutex
	answers  map[string]int // of requests started after cut
	failures []error
	cut      atomic.Int64 // UnixNano; 0 = count every request
	total    atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(url string, clients int) *load {
	l := &load{answers: map[string]int{}, stop: make(chan struct{})}
	for i := range clients {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: i%2 == 1}}
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now().UnixNano()
				body, err := func() (string, error) {
					resp, err := c.Get(url)
					if err != nil {
						return "", err
					}
					defer resp.Body.Close()
					b := make([]byte, 64)
					n, _ := resp.Body.Read(b)
					if resp.StatusCode != http.StatusOK {
						return "", fmt.Errorf("status %s", resp.Status)
					}
					return string(b[:n]), nil
				}()
				l.total.Add(1)
				l.mu.Lock()
				if err != nil {
					l.failures = append(l.failures, err)
				} else if start >= l.cut.Load() {
					l.answers[body]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) end() (map[string]int, []error) {
	close(l.stop)
	l.wg.Wait()
	return l.answers, l.failures
}

// countFromNow forgets the answers so far and counts only those of
// requests started from now on.
func (l *load) countFromNow() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut.Store(time.Now().UnixNano())
	l.answers = map[string]int{}
}

// rollingSlice is a slice with one endpoint in the given state.
func rollingSlice(name string, b *backend, ready, terminating bool) *discoveryv1.EndpointSlice {
	es := endpointSlice("web", name, b, "http", ready)
	es.Endpoints[0].Conditions.Serving = ptr(true)
	es.Endpoints[0].Conditions.Terminating = ptr(terminating)
	return es
}

// rollOut replaces the v1 backends by v2 ones one at a time under load,
// as a Deployment's rolling update with Drover's ordering does: the new
// pod becomes ready, the old one turns terminating, leaves the proxy's
// backends, and only then stops (finishing the requests it has).
func rollOut(t *testing.T, client kubernetes.Interface, pr *proxyRun, url string) {
	const key = "default/web:http/TCP"
	ips := loopbackIPs(6)
	var old []*backend
	for i := range 3 {
		b := startBackend(t, "v1", ips[i], 0)
		old = append(old, b)
		applySlice(t, client, rollingSlice(fmt.Sprintf("web-v1-%d", i), b, true, false))
	}
	hasBackends := func(want []*backend) func() error {
		return func() error {
			bs, _ := pr.backendsOf(key)
			var got, exp []string
			for _, b := range bs {
				got = append(got, b.String())
			}
			for _, b := range want {
				exp = append(exp, fmt.Sprintf("%s:%d", b.ip, b.port))
			}
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				return fmt.Errorf("backends %v, want %v", got, exp)
			}
			return nil
		}
	}
	testenv.Eventually(t, 10*time.Second, hasBackends(old))

	l := startLoad(url, 4)
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := l.total.Load(); n < 100 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})
	current := slices.Clone(old)
	for i := range 3 {
		nb := startBackend(t, "v2", ips[3+i], 0)
		applySlice(t, client, rollingSlice(fmt.Sprintf("web-v2-%d", i), nb, true, false))
		current = append(current, nb)
		testenv.Eventually(t, 10*time.Second, hasBackends(current))
		// The old pod terminates: out of the proxy first, then stopped.
		applySlice(t, client, rollingSlice(fmt.Sprintf("web-v1-%d", i), old[i], false, true))
		current = slices.DeleteFunc(current, func(b *backend) bool { return b == old[i] })
		testenv.Eventually(t, 10*time.Second, hasBackends(current))
		// As a server given SIGTERM should: finish what it has started
		// (Shutdown then closes the idle keep-alive connections, which
		// clients retry elsewhere).
		testenv.Eventually(t, 10*time.Second, func() error {
			if n := old[i].busy(); n > 0 {
				return fmt.Errorf("old backend has %d connections in use", n)
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := old[i].srv.Shutdown(ctx); err != nil {
			t.Errorf("stopping old backend: %v", err)
		}
		cancel()
	}
	l.countFromNow()
	before := l.total.Load()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := l.total.Load() - before; n < 100 {
			return fmt.Errorf("%d requests since the rollout", n)
		}
		return nil
	})
	after, failures := l.end()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during the rollout; first: %v", len(failures), l.total.Load(), failures[0])
	}
	if after["v1"] != 0 || after["v2"] == 0 {
		t.Fatalf("answers after the rollout %v, want only v2", after)
	}
	t.Logf("%d requests, none failed", l.total.Load())
}

// TestRollingUpdateUserspace: zero failed requests through the userspace
// proxy while every backend is replaced.
func TestRollingUpdateUserspace(t *testing.T) {
	env := testenv.Start(t)
	s := nodePortService(t, env.Kube, "web")
	pr := startProxy(t, env.Kube, Options{Mode: ModeUserspace, NodePortAddress: "127.0.0.1"})
	rollOut(t, env.Kube, pr, fmt.Sprintf("http://127.0.0.1:%d/", s.Spec.Ports[0].NodePort))
}

// TestRollingUpdateIPTables: zero failed requests through the cluster IP
// in iptables mode while every backend is replaced.
func TestRollingUpdateIPTables(t *testing.T) {
	requireIPTables(t)
	env := testenv.Start(t)
	s := nodePortService(t, env.Kube, "web")
	pr := startProxy(t, env.Kube, Options{Mode: ModeIPTables, ChainPrefix: testPrefix(t)})
	rollOut(t, env.Kube, pr, fmt.Sprintf("http://%s:80/", s.Spec.ClusterIP))
}
