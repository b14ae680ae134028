package rawapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/testenv"
)

func event(name string) *corev1.Event {
	now := metav1.Now().Rfc3339Copy()
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p", UID: "uid-p", APIVersion: "v1"},
		Reason:         "Started", Message: "Started container app", Type: corev1.EventTypeNormal, Count: 1,
		FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet", Host: "n"},
	}
}

// A request sent through Do is what the typed client would send: the
// object stored is the one encoded, the answer's resourceVersion is the
// stored one, and the server's refusals are the API errors client-go
// returns.
func TestDoAgainstTheAPIServer(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	c := New(env.Kube.CoreV1().RESTClient())
	if c == nil {
		t.Fatal("New: nil for a clientset's REST client")
	}
	ev := event("p.1")
	raw, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body, err := Envelope("v1", "Event", raw)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := c.Do(ctx, http.MethodPost, "/namespaces/default/events", Protobuf, body)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	rv, err := ResourceVersion(answer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.Kube.CoreV1().Events("default").Get(ctx, "p.1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != rv || got.Reason != "Started" || got.Message != ev.Message || got.InvolvedObject != ev.InvolvedObject || got.Source != ev.Source {
		t.Errorf("stored %+v (answer's resourceVersion %s), want the event sent", got, rv)
	}
	if _, err := c.Do(ctx, http.MethodPost, "/namespaces/default/events", Protobuf, body); !apierrors.IsAlreadyExists(err) {
		t.Errorf("create again: %v, want AlreadyExists", err)
	}
	patch := []byte(`{"count":2,"message":"again"}`)
	if _, err := c.Do(ctx, http.MethodPatch, "/namespaces/default/events/p.1", StrategicMergePatch, patch); err != nil {
		t.Fatalf("patch: %v", err)
	}
	if got, _ := env.Kube.CoreV1().Events("default").Get(ctx, "p.1", metav1.GetOptions{}); got.Count != 2 || got.Message != "again" {
		t.Errorf("patched event count %d message %q", got.Count, got.Message)
	}
	if _, err := c.Do(ctx, http.MethodPatch, "/namespaces/default/events/nobody", StrategicMergePatch, patch); !apierrors.IsNotFound(err) {
		t.Errorf("patch of a missing event: %v, want NotFound", err)
	}
	bad := event("bad.1")
	bad.InvolvedObject.Namespace = "elsewhere"
	raw, _ = bad.Marshal()
	body, _ = Envelope("v1", "Event", raw)
	if _, err := c.Do(ctx, http.MethodPost, "/namespaces/default/events", Protobuf, body); !apierrors.IsInvalid(err) {
		t.Errorf("invalid event: %v, want Invalid", err)
	}
}

// An answer of 429 or 503 with Retry-After is waited out and the request
// sent again, body and all, up to MaxRetries times; without Retry-After
// it is the error.
func TestDoRetriesAfter(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []string
		status = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
	)
	retryAfter := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		b := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(b)
		bodies = append(bodies, string(b))
		if len(status) > 0 {
			if retryAfter {
				w.Header().Set("Retry-After", "2")
			}
			w.WriteHeader(status[0])
			status = status[1:]
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"metadata":{"resourceVersion":"7"}}`))
	}))
	defer srv.Close()
	kube, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	c := New(kube.CoreV1().RESTClient())
	var waits []time.Duration
	c.wait = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	answer, err := c.Do(context.Background(), http.MethodPut, "/namespaces/a/pods/b/status", Protobuf, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if rv, _ := ResourceVersion(answer); rv != "7" {
		t.Errorf("answer %q", answer)
	}
	if len(bodies) != 3 || bodies[0] != "x" || bodies[2] != "x" || len(waits) != 2 || waits[0] != 2*time.Second {
		t.Errorf("sent %q, waited %v; want 3 sends of the body and 2 waits of 2s", bodies, waits)
	}

	status, retryAfter = []int{http.StatusTooManyRequests}, false
	if _, err := c.Do(context.Background(), http.MethodPut, "/x", Protobuf, nil); !apierrors.IsTooManyRequests(err) {
		t.Errorf("429 without Retry-After: %v, want TooManyRequests", err)
	}
	status, retryAfter = make([]int, MaxRetries+1), true
	for i := range status {
		status[i] = http.StatusTooManyRequests
	}
	waits = nil
	if _, err := c.Do(context.Background(), http.MethodPut, "/x", Protobuf, nil); !apierrors.IsTooManyRequests(err) || len(waits) != MaxRetries {
		t.Errorf("429 every time: %v after %d waits, want TooManyRequests after %d", err, len(waits), MaxRetries)
	}
}

func TestResourceVersionRejectsGarbage(t *testing.T) {
	for _, body := range [][]byte{nil, []byte("{}"), []byte("k8s\x00\xff\xff"), []byte("not json")} {
		if rv, err := ResourceVersion(body); err == nil {
			t.Errorf("ResourceVersion(%q) = %q, want an error", body, rv)
		}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "42", Labels: map[string]string{"a": "b"}},
		Spec: corev1.PodSpec{NodeName: "n"}}
	raw, _ := pod.Marshal()
	body, _ := Envelope("v1", "Pod", raw)
	if rv, err := ResourceVersion(body); rv != "42" || err != nil {
		t.Errorf("ResourceVersion of a protobuf pod = %q, %v; want 42", rv, err)
	}
}

func TestNewWithoutARESTClient(t *testing.T) {
	if c := New(nil); c != nil {
		t.Error("New(nil) is not nil")
	}
}
