package scheduler

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/kubeclient"
	"github.com/drover/drover/internal/testenv"
)

// sentRequest is a request as the server receives it.
type sentRequest struct {
	method, url, contentType, accept, userAgent string
	body                                        []byte
}

// recordingClient returns a protobuf client of cfg whose requests go to
// *sent too.
func recordingClient(t *testing.T, cfg *rest.Config, mu *sync.Mutex, sent *[]sentRequest) kubernetes.Interface {
	t.Helper()
	cfg = kubeclient.Protobuf(rest.CopyConfig(cfg))
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			mu.Lock()
			*sent = append(*sent, sentRequest{req.Method, req.URL.String(), req.Header.Get("Content-Type"), req.Header.Get("Accept"), req.UserAgent(), body})
			mu.Unlock()
			return rt.RoundTrip(req)
		})
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// bindPod sends the typed client's Bind request byte for byte, binds the
// pod, and a refused binding is the server's error (409 once bound).
func TestBindPodSendsTypedBind(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	var mu sync.Mutex
	var sent []sentRequest
	client := recordingClient(t, env.Config, &mu, &sent)
	var pods [2]*corev1.Pod
	for i, name := range []string{"a", "b"} {
		p, err := env.Kube.CoreV1().Pods("default").Create(ctx, mkPod(name).obj(), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods[i] = p
	}
	// The typed client binds pod b, and bindPod binds it again (refused,
	// but sent): the two requests carry the same pod, to be compared.
	if err := client.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: pods[1].Name, UID: pods[1].UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: "n1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := bindPod(ctx, client, pods[1], "n1")
	if !apierrors.IsConflict(err) {
		t.Errorf("binding a bound pod: %v, want a Conflict", err)
	}
	if err := bindPod(ctx, client, pods[0], "n2"); err != nil {
		t.Fatal(err)
	}
	got, err := env.Kube.CoreV1().Pods("default").Get(ctx, pods[0].Name, metav1.GetOptions{})
	if err != nil || got.Spec.NodeName != "n2" {
		t.Fatalf("after bindPod: %v, node %q; want n2", err, got.Spec.NodeName)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 3 {
		t.Fatalf("%d requests sent, want 3", len(sent))
	}
	a, b := sent[0], sent[1]
	if a.method != b.method || a.url != b.url || a.contentType != b.contentType || a.accept != b.accept || a.userAgent != b.userAgent || !bytes.Equal(a.body, b.body) {
		t.Errorf("bindPod sent %s %s (Content-Type %q, Accept %q, User-Agent %q, %d bytes), want the typed Bind's %s %s (%q, %q, %q, %d bytes)",
			b.method, b.url, b.contentType, b.accept, b.userAgent, len(b.body), a.method, a.url, a.contentType, a.accept, a.userAgent, len(a.body))
	}
}
