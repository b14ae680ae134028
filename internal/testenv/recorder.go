package testenv

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/kubeclient"
)

// SentRequest is one request as a client sent it, for tests that compare
// two ways of making the same request.
type SentRequest struct {
	Method, URL, ContentType, Accept, UserAgent string
	Body                                        []byte
}

// Equal reports whether r and o are the same request, body byte for byte.
func (r SentRequest) Equal(o SentRequest) bool {
	return r.Method == o.Method && r.URL == o.URL && r.ContentType == o.ContentType &&
		r.Accept == o.Accept && r.UserAgent == o.UserAgent && bytes.Equal(r.Body, o.Body)
}

// Recorder records the requests of the clients it makes.
type Recorder struct {
	mu   sync.Mutex
	sent []SentRequest
}

// Client returns a client of cfg, protobuf if proto, whose requests r
// records before sending them.
func (r *Recorder) Client(t testing.TB, cfg *rest.Config, proto bool) kubernetes.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	if proto {
		cfg = kubeclient.Protobuf(cfg)
	}
	cfg.WrapTransport = r.wrap
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// Sent returns the requests recorded so far.
func (r *Recorder) Sent() []SentRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

func (r *Recorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			var err error
			if body, err = io.ReadAll(req.Body); err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		r.mu.Lock()
		r.sent = append(r.sent, SentRequest{req.Method, req.URL.String(), req.Header.Get("Content-Type"), req.Header.Get("Accept"), req.UserAgent(), body})
		r.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
