package failover

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/testenv"
)

func TestParseURLs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "https://a:6443", want: []string{"https://a:6443"}},
		{in: " https://a:6443/ , https://b:6443,,https://a:6443", want: []string{"https://a:6443", "https://b:6443"}},
		{in: "https://[::1]:6443", want: []string{"https://[::1]:6443"}},
		{in: "", want: nil},
		{in: "a:6443", wantErr: "want https://HOST[:PORT]"},
		{in: "ftp://a", wantErr: "want https://HOST[:PORT]"},
		{in: "https://a:6443/api", wantErr: "without path"},
		{in: "https://u:p@a:6443", wantErr: "without path"},
		{in: "https://:6443", wantErr: "no host"},
	} {
		got, err := ParseURLs(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseURLs(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseURLs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New without servers: no error")
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestFailoverOrder(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var switches []string
	s, err := New([]string{"https://a:1", "https://b:1"}, WithClock(c.now), WithDownFor(10*time.Second),
		OnSwitch(func(from, to string, _ error) { switches = append(switches, from+">"+to) }))
	if err != nil {
		t.Fatal(err)
	}
	if s.Current() != "https://a:1" {
		t.Fatalf("current = %s, want the first seed", s.Current())
	}
	// Learned servers come after the seeds, sorted; empty keeps the list.
	if !s.SetLearned([]string{"https://c:1", "https://b:1", "bad url", "https://c:1"}) {
		t.Error("SetLearned: no change reported")
	}
	if s.SetLearned(nil) || s.SetLearned([]string{"https://b:1", "https://c:1"}) {
		t.Error("SetLearned reported a change for an empty or equal list")
	}
	if got, want := s.List(), []string{"https://a:1", "https://b:1", "https://c:1"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}

	// a fails: b is current; b fails: c; a is skipped while down.
	errDown := errors.New("down")
	s.Failed("https://a:1", errDown)
	if s.Current() != "https://b:1" {
		t.Fatalf("after a failed, current = %s, want b", s.Current())
	}
	if got := s.pick(nil); got != "https://b:1" {
		t.Errorf("pick = %s, want b", got)
	}
	s.Failed("https://b:1", errDown)
	if s.Current() != "https://c:1" {
		t.Fatalf("after b failed, current = %s, want c", s.Current())
	}
	if got := s.pick([]string{"https://c:1"}); got != "https://a:1" {
		t.Errorf("pick with c tried and a, b down = %s, want a (down ones in order once the rest are tried)", got)
	}
	if got := s.pick([]string{"https://a:1", "https://b:1", "https://c:1"}); got != "" {
		t.Errorf("pick with every server tried = %q, want none", got)
	}
	// A failure of a server that is not current changes nothing.
	s.Failed("https://a:1", errDown)
	if s.Current() != "https://c:1" {
		t.Fatalf("current = %s, want c still", s.Current())
	}
	// c fails too: every server is down, the next in order is tried first.
	s.Failed("https://c:1", errDown)
	if s.Current() != "https://a:1" {
		t.Fatalf("all down: current = %s, want a (next after c)", s.Current())
	}
	// Time passes: a is tried first again; success keeps it.
	c.t = c.t.Add(11 * time.Second)
	if got := s.pick(nil); got != "https://a:1" {
		t.Errorf("pick after the down time = %s, want a", got)
	}
	s.Succeeded("https://b:1")
	if s.Current() != "https://b:1" {
		t.Errorf("after b answered, current = %s", s.Current())
	}
	want := []string{"https://a:1>https://b:1", "https://b:1>https://c:1", "https://c:1>https://a:1", "https://a:1>https://b:1"}
	if !slices.Equal(switches, want) {
		t.Errorf("switches = %v, want %v", switches, want)
	}
	// The order goes round the list from the current server.
	s.SetLearned([]string{"https://d:1"})
	if got := s.order(); !slices.Equal(got, []string{"https://b:1", "https://d:1", "https://a:1"}) {
		t.Errorf("order = %v", got)
	}
}

// backend is a TLS server that counts the requests it answers, and may
// drop connections instead of answering.
type backend struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	drop   bool
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{}
	b.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		drop := b.drop
		b.bodies = append(b.bodies, r.Method+" "+string(body))
		b.mu.Unlock()
		if drop {
			// The server dies after reading the request.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) got() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bodies)
}

// deadURL is an https URL nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "https://" + addr
}

func TestTransportFailsOver(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	// Both present httptest's certificate, valid for 127.0.0.1: TLS is
	// verified against the server dialed.
	pool := x509.NewCertPool()
	pool.AddCert(a.Certificate())
	dead := deadURL(t)
	s, err := New([]string{dead, a.URL, b.URL})
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: &transport{servers: s, next: base}}
	do := func(method, body string) (string, error) {
		req, err := http.NewRequest(method, dead+"/x", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return string(data), err
	}

	// The first seed refuses connections: the POST goes to a, whole.
	got, err := do(http.MethodPost, "one")
	if err != nil || got != "a" {
		t.Fatalf("POST with the first server dead = %q, %v; want a's answer", got, err)
	}
	if s.Current() != a.URL || !slices.Equal(a.got(), []string{"POST one"}) {
		t.Fatalf("current %s, a got %v", s.Current(), a.got())
	}

	// a dies after reading a POST: it may have acted, so the POST is not
	// sent again; the next request goes to b.
	a.mu.Lock()
	a.drop = true
	a.mu.Unlock()
	if got, err := do(http.MethodPost, "two"); err == nil {
		t.Fatalf("POST to a server that died mid-request = %q, want an error", got)
	}
	if len(b.got()) != 0 {
		t.Fatalf("the POST was sent again to b: %v", b.got())
	}
	if s.Current() != b.URL {
		t.Fatalf("after a failed, current = %s, want b", s.Current())
	}
	if got, err := do(http.MethodPost, "three"); err != nil || got != "b" {
		t.Fatalf("next POST = %q, %v; want b's answer", got, err)
	}

	// b dies mid-request: a GET may be sent again, and is, to a (back up).
	a.mu.Lock()
	a.drop = false
	a.mu.Unlock()
	b.mu.Lock()
	b.drop = true
	b.mu.Unlock()
	if got, err := do(http.MethodGet, ""); err != nil || got != "a" {
		t.Fatalf("GET with b dropping = %q, %v; want a's answer", got, err)
	}
	if s.Current() != a.URL {
		t.Errorf("current = %s, want a", s.Current())
	}

	// Every server down: the error of the last one.
	a.Close()
	b.Close()
	if _, err := do(http.MethodGet, ""); err == nil {
		t.Fatal("GET with every server down: no error")
	}

	// A request its caller gave up on says nothing of the server.
	s2, _ := New([]string{a.URL, b.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if _, err := (&http.Client{Transport: &transport{servers: s2, next: base}}).Do(req); err == nil {
		t.Fatal("canceled request: no error")
	}
	if s2.Current() != a.URL {
		t.Errorf("a canceled request moved the current server to %s", s2.Current())
	}
}

// TestTransportPassesOverAHangingServer: a server that accepts connections
// but never answers (as a machine that vanished looks once connected)
// costs the request that waited on it its deadline; the next request
// goes to another server.
func TestTransportPassesOverAHangingServer(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	live := newBackend(t, "live")
	pool := x509.NewCertPool()
	pool.AddCert(live.Certificate())
	s, err := New([]string{"https://" + hang.Addr().String(), live.URL})
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: &transport{servers: s, next: base}}
	get := func(timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, live.URL+"/", nil)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return string(data), err
	}
	if _, err := get(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GET from a hanging server: %v, want the deadline exceeded", err)
	}
	if got, err := get(10 * time.Second); err != nil || got != "live" {
		t.Fatalf("next GET = %q, %v; want the live server's answer", got, err)
	}
}

func TestReachable(t *testing.T) {
	live := newBackend(t, "live")
	dead := deadURL(t)
	ctx := context.Background()
	if got := Reachable(ctx, []string{dead, live.URL}, time.Second); got != live.URL {
		t.Errorf("Reachable = %s, want the live %s", got, live.URL)
	}
	if got := Reachable(ctx, []string{dead}, time.Second); got != dead {
		t.Errorf("Reachable with none live = %s, want the first", got)
	}
	if got := Reachable(ctx, nil, time.Second); got != "" {
		t.Errorf("Reachable of nothing = %q", got)
	}
}

// TestClientGoFailsOver: a clientset configured by Configure reaches a
// real API server when the first server named is dead, and learns the
// servers from the default/kubernetes Endpoints.
func TestClientGoFailsOver(t *testing.T) {
	env := testenv.Start(t)
	dead := "http://" + strings.TrimPrefix(deadURL(t), "https://")
	s, err := New([]string{dead, env.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	s.Configure(cfg)
	if cfg.Host != dead {
		t.Fatalf("Host = %s, want the first seed", cfg.Host)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 1000)
	if _, err := kube.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "via-failover"}, BinaryData: map[string][]byte{"b": body},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create through a dead first server: %v", err)
	}
	got, err := env.Kube.CoreV1().ConfigMaps("default").Get(ctx, "via-failover", metav1.GetOptions{})
	if err != nil || !bytes.Equal(got.BinaryData["b"], body) {
		t.Fatalf("the object written through failover: %v, %v", got, err)
	}
	if s.Current() != env.URL {
		t.Errorf("current = %s, want %s", s.Current(), env.URL)
	}

	// Servers listed in the cluster: endpoints first, else the configmap.
	if _, err := FromCluster(ctx, kube); err == nil {
		t.Error("FromCluster with neither endpoints nor configmap: no error")
	}
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: serversNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.CoreV1().ConfigMaps(serversNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: serversConfigMap},
		Data:       map[string]string{serversKey: "https://s1.example:6443,https://10.0.0.2:6443"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	urls, err := FromCluster(ctx, kube)
	if want := []string{"https://s1.example:6443", "https://10.0.0.2:6443"}; err != nil || !slices.Equal(urls, want) {
		t.Errorf("FromCluster from the configmap = %v, %v; want %v", urls, err, want)
	}
	if _, err := env.Kube.CoreV1().Endpoints("default").Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
		Subsets: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}}, Ports: []corev1.EndpointPort{{Name: "https", Port: 6443}}},
			{Addresses: []corev1.EndpointAddress{{IP: "fd00::1"}}, Ports: []corev1.EndpointPort{{Name: "https", Port: 7443}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	urls, err = FromCluster(ctx, kube)
	if want := []string{"https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://[fd00::1]:7443"}; err != nil || !slices.Equal(urls, want) {
		t.Errorf("FromCluster from the endpoints = %v, %v; want %v", urls, err, want)
	}

	// Keep learns them at once, and keeps the seeds.
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Keep(kctx, time.Hour, func(ctx context.Context) ([]string, error) { return FromCluster(ctx, kube) }, testenv.Logger(t))
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := s.List(); len(got) != 5 || got[0] != dead || got[1] != env.URL {
			return fmt.Errorf("List = %v, want the 2 seeds then 3 learned", got)
		}
		return nil
	})
	cancel()
	<-done
}

// TestRedirectLeavesTheCallersRequest: a request already addressed to the
// server is sent as it is; one for another server, or sent again, is a
// copy with its own URL (and a fresh body), the caller's left unchanged.
func TestRedirectLeavesTheCallersRequest(t *testing.T) {
	req, err := http.NewRequest(http.MethodPut, "https://10.0.0.1:6443/api/v1/x?y=1", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "1")
	same, err := redirect(req, "https://10.0.0.1:6443", false)
	if err != nil || same != req {
		t.Fatalf("to its own server: %p, %v; want the request itself (%p)", same, err, req)
	}
	other, err := redirect(req, "http://10.0.0.2:8080", false)
	if err != nil {
		t.Fatal(err)
	}
	if other == req || other.URL == req.URL {
		t.Fatal("to another server: not a copy")
	}
	if got := other.URL.String(); got != "http://10.0.0.2:8080/api/v1/x?y=1" {
		t.Errorf("copy's URL %s", got)
	}
	if got := req.URL.String(); got != "https://10.0.0.1:6443/api/v1/x?y=1" {
		t.Errorf("the caller's URL became %s", got)
	}
	if other.Header.Get("X-Test") != "1" || other.Method != http.MethodPut {
		t.Errorf("copy lost the header or method: %v %s", other.Header, other.Method)
	}
	again, err := redirect(req, "https://10.0.0.1:6443", true)
	if err != nil {
		t.Fatal(err)
	}
	if again == req || again.Body == req.Body {
		t.Fatal("sent again: not a copy with a fresh body")
	}
	if b, _ := io.ReadAll(again.Body); string(b) != "body" {
		t.Errorf("fresh body %q", b)
	}
	if _, err := redirect(req, "10.0.0.3", false); err == nil {
		t.Error("server without a scheme: no error")
	}
}
