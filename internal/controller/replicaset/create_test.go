package replicaset

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/kubeclient"
	"github.com/drover/drover/internal/testenv"
)

// sentRequest is what a client sent, as the server would see it.
type sentRequest struct {
	method, url, contentType, accept, userAgent string
	body                                        []byte
}

type recorder struct {
	mu   sync.Mutex
	sent []sentRequest
}

func (r *recorder) wrap(rt http.RoundTripper) http.RoundTripper {
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
		r.sent = append(r.sent, sentRequest{req.Method, req.URL.String(), req.Header.Get("Content-Type"), req.Header.Get("Accept"), req.UserAgent(), body})
		r.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newClient returns a client of cfg, protobuf or not, whose requests rec
// records.
func newClient(t *testing.T, cfg *rest.Config, proto bool, rec *recorder) kubernetes.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	if proto {
		cfg = kubeclient.Protobuf(cfg)
	}
	cfg.WrapTransport = rec.wrap
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestPodCreatorSendsTypedCreate: each of a podCreator's creations is the
// typed protobuf client's Create request byte for byte (whatever content
// type the client is configured for), and returns the name the server
// generated; a refused create is the same API error.
func TestPodCreatorSendsTypedCreate(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: map[string]string{"app": "web", "tier": "front"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	ref := &recorder{}
	typed, err := newClient(t, env.Config, true, ref).CoreV1().Pods("default").Create(ctx, pod.DeepCopy(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := ref.sent[0]
	for _, proto := range []bool{true, false} {
		t.Run(fmt.Sprintf("protobuf=%v", proto), func(t *testing.T) {
			rec := &recorder{}
			creator, err := newPodCreator(newClient(t, env.Config, proto, rec), "default", pod)
			if err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{typed.Name: true}
			for range 2 {
				name, err := creator.create(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got, err := env.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("the pod create named %q: %v", name, err)
				}
				if names[got.Name] || got.GenerateName != "web-" || got.Labels["tier"] != "front" {
					t.Errorf("created %q (generateName %q, labels %v) after %v: want another generated name, the template's labels", got.Name, got.GenerateName, got.Labels, names)
				}
				names[got.Name] = true
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.sent) != 2 {
				t.Fatalf("%d requests sent, want 2", len(rec.sent))
			}
			for _, b := range rec.sent {
				if want.method != b.method || want.url != b.url || want.contentType != b.contentType || want.accept != b.accept || want.userAgent != b.userAgent || !bytes.Equal(want.body, b.body) {
					t.Errorf("create sent %s %s (Content-Type %q, Accept %q, User-Agent %q, %d bytes), want the typed Create's %s %s (%q, %q, %q, %d bytes)",
						b.method, b.url, b.contentType, b.accept, b.userAgent, len(b.body), want.method, want.url, want.contentType, want.accept, want.userAgent, len(want.body))
				}
			}
		})
	}
	invalid := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "Not_Valid"}}
	creator, err := newPodCreator(env.Kube, "default", invalid)
	if err != nil {
		t.Fatal(err)
	}
	_, err = creator.create(ctx)
	_, wantErr := env.Kube.CoreV1().Pods("default").Create(ctx, invalid, metav1.CreateOptions{})
	if err == nil || wantErr == nil || err.Error() != wantErr.Error() {
		t.Errorf("invalid pod: create's error %v, want the typed Create's %v", err, wantErr)
	}
}
