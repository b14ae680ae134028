package restwrite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/drover/drover/internal/kubeclient"
	"github.com/drover/drover/internal/testenv"
)

func testEvent(name string) *corev1.Event {
	now := metav1.Now().Rfc3339Copy()
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p", UID: "uid-p", APIVersion: "v1"},
		Reason:         "Started", Message: "Started container app", Type: corev1.EventTypeNormal, Count: 1,
		FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet", Host: "n"},
	}
}

func restClient(t testing.TB, cfg *rest.Config) *rest.RESTClient {
	t.Helper()
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kube.CoreV1().RESTClient().(*rest.RESTClient)
}

func postEvent(ctx context.Context, rc *rest.RESTClient, ev *corev1.Event) error {
	e := *ev
	e.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Event"}
	body, err := Encode(&e)
	if err != nil {
		return err
	}
	_, err = Do(ctx, rc, Request{Method: http.MethodPost, Path: "/api/v1/namespaces/" + ev.Namespace + "/events",
		Body: body, Resource: corev1.Resource("events")})
	return err
}

// A write reaches the API server and is stored; the server's refusals
// come back as its Status errors, as client-go's would.
func TestDoWritesAndReturnsStatusErrors(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	rc := restClient(t, kubeclient.Protobuf(env.Config))
	if err := postEvent(ctx, rc, testEvent("p.1")); err != nil {
		t.Fatal(err)
	}
	got, err := env.Kube.CoreV1().Events("default").Get(ctx, "p.1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Reason != "Started" || got.InvolvedObject.UID != "uid-p" || got.Source.Host != "n" {
		t.Errorf("stored event %+v", got)
	}
	if err := postEvent(ctx, rc, testEvent("p.1")); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second creation: %v, want AlreadyExists", err)
	}
	_, err = Do(ctx, rc, Request{Method: http.MethodPatch, Path: "/api/v1/namespaces/default/events/gone",
		Body: []byte(`{"count":2}`), ContentType: "application/strategic-merge-patch+json", Resource: corev1.Resource("events"), Name: "gone"})
	if !apierrors.IsNotFound(err) {
		t.Errorf("patch of a missing event: %v, want NotFound", err)
	}
	bad := testEvent("bad.1")
	bad.InvolvedObject.Namespace = "elsewhere"
	if err := postEvent(ctx, rc, bad); !apierrors.IsInvalid(err) {
		t.Errorf("invalid event: %v, want Invalid", err)
	}
}

// captured is one request as a server saw it.
type captured struct {
	method, path, accept, contentType, userAgent, auth string
	body                                               string
}

// The request sent is the typed client's: method, path, headers (those
// the REST client's transport adds too) and body byte for byte.
func TestDoSendsTheTypedClientsRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, captured{r.Method, r.URL.RequestURI(), r.Header.Get("Accept"), r.Header.Get("Content-Type"),
			r.Header.Get("User-Agent"), r.Header.Get("Authorization"), string(body)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"kind":"Event","apiVersion":"v1","metadata":{"name":"p.1","namespace":"default","resourceVersion":"5"}}`)
	}))
	defer srv.Close()
	// A config's timeout is a query parameter of every request (an agent's
	// config has one).
	for _, timeout := range []time.Duration{0, 30 * time.Second} {
		seen = nil
		cfg := kubeclient.Protobuf(&rest.Config{Host: srv.URL, BearerToken: "tok", UserAgent: "ua-test", Timeout: timeout})
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := kube.CoreV1().Events("default").Create(ctx, testEvent("p.1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := postEvent(ctx, kube.CoreV1().RESTClient().(*rest.RESTClient), testEvent("p.1")); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 2 {
			t.Fatalf("timeout %v: server saw %d requests, want 2", timeout, len(seen))
		}
		if seen[0] != seen[1] {
			t.Errorf("timeout %v: typed client sent %+v\nrestwrite sent %+v", timeout, seen[0], seen[1])
		}
		if seen[1].auth != "Bearer tok" || seen[1].userAgent != "ua-test" || !strings.HasPrefix(seen[1].path, "/api/v1/namespaces/default/events") {
			t.Errorf("timeout %v: transport headers or path missing: %+v", timeout, seen[1])
		}
	}
}

// A 429 with Retry-After is waited for and the request sent again, as
// client-go does; without Retry-After it is the answer.
func TestDoHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case n == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case string(body) != "payload":
			w.WriteHeader(http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	rc := restClient(t, &rest.Config{Host: srv.URL})
	ctx := context.Background()
	got, err := Do(ctx, rc, Request{Method: http.MethodPut, Path: "/x", Body: []byte("payload")})
	if err != nil || string(got) != "ok" || calls.Load() != 2 {
		t.Errorf("Do = %q, %v after %d calls; want ok after 2 (the body sent again)", got, err, calls.Load())
	}
	calls.Store(10)
	if _, err := Do(ctx, rc, Request{Method: http.MethodPut, Path: "/busy", Name: "b"}); !apierrors.IsTooManyRequests(err) || calls.Load() != 11 {
		t.Errorf("429 without Retry-After: %v after %d calls, want TooManyRequests at once", err, calls.Load()-10)
	}
}

// countingLimiter counts the waits of a client's rate limiter.
type countingLimiter struct {
	flowcontrol.RateLimiter
	waits atomic.Int32
}

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.waits.Add(1)
	return l.RateLimiter.Wait(ctx)
}

// Every attempt waits for the client's rate limiter, as client-go's
// requests do: an agent's writes keep to its QPS.
func TestDoWaitsForTheRateLimiter(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	limiter := &countingLimiter{RateLimiter: flowcontrol.NewFakeAlwaysRateLimiter()}
	rc := restClient(t, &rest.Config{Host: srv.URL, RateLimiter: limiter})
	if _, err := Do(context.Background(), rc, Request{Method: http.MethodPut, Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || limiter.waits.Load() != 2 {
		t.Errorf("%d attempts, %d waits for the rate limiter; want 2 and 2", calls.Load(), limiter.waits.Load())
	}
}

// BenchmarkEventPost posts an event with the typed client and with Do.
func BenchmarkEventPost(b *testing.B) {
	env := testenv.Start(b)
	ctx := context.Background()
	cfg := kubeclient.Protobuf(env.Config)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rc := kube.CoreV1().RESTClient().(*rest.RESTClient)
	seq := 0
	name := func() string { seq++; return "ev." + strconv.Itoa(seq) }
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := kube.CoreV1().Events("default").Create(ctx, testEvent(name()), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restwrite", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := postEvent(ctx, rc, testEvent(name())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func cachedHosts() int {
	n := 0
	hosts.Range(func(_, _ any) bool { n++; return true })
	return n
}

// A REST client's cached base URL is its own, and goes with the client.
func TestBaseIsCachedPerClientAndDropped(t *testing.T) {
	before := cachedHosts()
	func() {
		a := restClient(t, &rest.Config{Host: "https://a.test:6443/prefix"})
		b := restClient(t, &rest.Config{Host: "https://b.test"})
		for range 2 {
			if got, err := base(a); err != nil || got != (baseURL{prefix: "https://a.test:6443/prefix"}) {
				t.Errorf("base(a) = %+v, %v", got, err)
			}
			if got, err := base(b); err != nil || got != (baseURL{prefix: "https://b.test"}) {
				t.Errorf("base(b) = %+v, %v", got, err)
			}
		}
		if n := cachedHosts(); n != before+2 {
			t.Errorf("%d cached base URLs, want %d", n, before+2)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for cachedHosts() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d cached base URLs after the clients went, want %d", cachedHosts(), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine after a GC
	}
}

// Path is the path client-go builds from the same segments, in the core
// group and another, under a server path prefix too.
func TestPathIsTheTypedClientsURL(t *testing.T) {
	for _, host := range []string{"https://127.0.0.1:6443", "https://example.test/prefix/"} {
		kube, err := kubernetes.NewForConfig(&rest.Config{Host: host})
		if err != nil {
			t.Fatal(err)
		}
		for _, rc := range []*rest.RESTClient{kube.CoreV1().RESTClient().(*rest.RESTClient), kube.AppsV1().RESTClient().(*rest.RESTClient)} {
			for _, seg := range [][3]string{{"pods", "", ""}, {"pods", "web-1.a", ""}, {"pods", "web-1.a", "status"}} {
				want := rc.Put().Namespace("kube-system").Resource(seg[0]).Name(seg[1]).SubResource(seg[2]).URL()
				got := rc.Put().AbsPath(Path(rc.APIVersion(), "kube-system", seg[0], seg[1], seg[2])).URL()
				if got.String() != want.String() {
					t.Errorf("host %s, %s %v: path %s, want %s", host, rc.APIVersion(), seg, got, want)
				}
			}
		}
	}
}

// Metadata reads what the server answered, protobuf or JSON, and refuses
// what is not an object with a resourceVersion.
func TestMetadata(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	for _, proto := range []bool{true, false} {
		cfg := rest.CopyConfig(env.Config)
		if proto {
			cfg = kubeclient.Protobuf(cfg)
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		body, err := kube.CoreV1().RESTClient().Post().Namespace("default").Resource("events").
			Body(testEvent(fmt.Sprintf("md.%v", proto))).Do(ctx).Raw()
		if err != nil {
			t.Fatal(err)
		}
		m, err := Metadata(body)
		if err != nil || m.Name != fmt.Sprintf("md.%v", proto) || m.ResourceVersion == "" {
			t.Errorf("protobuf %v: Metadata = %q rv %q, %v", proto, m.Name, m.ResourceVersion, err)
		}
	}
	for _, body := range [][]byte{nil, []byte("{}"), []byte("k8s\x00\xff\xff"), []byte("not json")} {
		if m, err := Metadata(body); err == nil {
			t.Errorf("Metadata(%q) = %+v, want an error", body, m)
		}
	}
}

// BenchmarkMetadata decodes a created pod's metadata from its protobuf
// response, as the writers do, against decoding the whole pod, as the
// typed client does.
func BenchmarkMetadata(b *testing.B) {
	env := testenv.Start(b)
	kube, err := kubernetes.NewForConfig(kubeclient.Protobuf(rest.CopyConfig(env.Config)))
	if err != nil {
		b.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: map[string]string{"app": "web", "pod-template-hash": "abc"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	body, err := kube.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Body(pod).Do(context.Background()).Raw()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("metadata", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Metadata(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("whole-pod", func(b *testing.B) {
		b.ReportAllocs()
		dec := scheme.Codecs.UniversalDeserializer()
		for b.Loop() {
			var p corev1.Pod
			if _, _, err := dec.Decode(body, nil, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
