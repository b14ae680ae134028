package simfleet

import (
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Over https the fleet's client speaks HTTP/2 through its own transport,
// verifying the server with the config's CA, through the config's dialer
// and WrapTransport (failover's), with client-go's user agent and bearer
// token on every request; many concurrent requests share one connection.
func TestRESTConfigHTTP2OverTLS(t *testing.T) {
	var (
		mu    sync.Mutex
		bad   []string
		calls atomic.Int32
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		if r.ProtoMajor != 2 || r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("User-Agent") != "fleet-test" {
			mu.Lock()
			bad = append(bad, r.Proto+" "+r.Header.Get("Authorization")+" "+r.Header.Get("User-Agent"))
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"`+r.URL.Path[len("/api/v1/namespaces/"):]+`"}}`)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	var dials, wraps atomic.Int32
	in := &rest.Config{
		Host:            srv.URL,
		BearerToken:     "tok",
		UserAgent:       "fleet-test",
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			wraps.Add(1)
			return rt
		},
	}
	out := RESTConfig(in)
	if _, ok := out.Transport.(*http2.Transport); !ok {
		t.Fatalf("fleet transport %T, want *http2.Transport", out.Transport)
	}
	if in.Transport != nil || in.CAData == nil {
		t.Error("RESTConfig changed its argument")
	}
	kube, err := kubernetes.NewForConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if wraps.Load() == 0 {
		t.Error("the config's WrapTransport was not applied")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			ns, err := kube.CoreV1().Namespaces().Get(context.Background(), "ns"+string(rune('a'+i%26)), metav1.GetOptions{})
			if err == nil && ns.Name == "" {
				err = io.ErrUnexpectedEOF
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 50 || dials.Load() != 1 {
		t.Errorf("server saw %d requests over %d connections, want 50 over 1", calls.Load(), dials.Load())
	}
	if len(bad) > 0 {
		t.Errorf("requests without HTTP/2, token or user agent: %q", bad)
	}

	// A server whose certificate the config does not trust is refused.
	untrusting := RESTConfig(&rest.Config{Host: srv.URL})
	kube, err = kubernetes.NewForConfig(untrusting)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Namespaces().Get(context.Background(), "x", metav1.GetOptions{}); err == nil {
		t.Error("a server with an unknown CA was accepted")
	}
}

// A plain-HTTP server, or a config that has a transport of its own, keeps
// client-go's transport (with coalesced writes below it).
func TestRESTConfigKeepsClientGoTransport(t *testing.T) {
	for _, in := range []*rest.Config{
		{Host: "http://127.0.0.1:8080"},
		{Host: "https://127.0.0.1:6443", Transport: http.DefaultTransport},
		{Host: "https://127.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{NextProtos: []string{"http/1.1"}}},
	} {
		out := RESTConfig(in)
		if out.Transport != in.Transport {
			t.Errorf("%s: transport %T, want %T", in.Host, out.Transport, in.Transport)
		}
		if in.Transport == nil && out.Dial == nil {
			t.Errorf("%s: no coalescing dialer", in.Host)
		}
	}
}
