package inprocess_test

// The transport under the real API server (over a real etcd member) and
// client-go. This file sorts after inprocess_test.go, so the unit tests'
// goroutine counts run before etcd starts.

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/inprocess"
	"github.com/drover/drover/internal/kubeclient"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
)

const adminToken = "inprocess-test-admin"

// etcdEnv is one etcd member for the test binary, started by the first
// test that needs it; tests isolate themselves by namespace.
var etcdEnv struct {
	once   sync.Once
	dir    string
	member *embedded.Member
	store  *etcd.Store
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if etcdEnv.store != nil {
		etcdEnv.store.Close()
	}
	if etcdEnv.member != nil {
		etcdEnv.member.Close()
	}
	if etcdEnv.dir != "" {
		os.RemoveAll(etcdEnv.dir)
	}
	os.Exit(code)
}

var names atomic.Int64

// uniqueName is base with a suffix no other test of this binary (run with
// any -count) uses over the shared etcd.
func uniqueName(base string) string {
	return fmt.Sprintf("%s-%d", base, names.Add(1))
}

// countingHandler counts the watch requests its handler is serving.
type countingHandler struct {
	next    http.Handler
	watches atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("watch") == "true" {
		c.watches.Add(1)
		defer c.watches.Add(-1)
	}
	c.next.ServeHTTP(w, r)
}

// newAPIServer is a real API server with every resource over the shared
// etcd member, with an admin token.
func newAPIServer(t testing.TB) *countingHandler {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	etcdEnv.once.Do(func() {
		if etcdEnv.dir, etcdEnv.err = os.MkdirTemp("", "inprocess-test-"); etcdEnv.err != nil {
			return
		}
		etcdEnv.member, etcdEnv.err = embedded.Start(context.Background(), embedded.Config{DataDir: etcdEnv.dir, Name: "inprocess", Logger: quiet})
		if etcdEnv.err == nil {
			etcdEnv.store = etcd.New(etcdEnv.member.Client(), etcd.Options{ProgressInterval: time.Second})
		}
	})
	if etcdEnv.err != nil {
		t.Fatalf("starting etcd: %v", etcdEnv.err)
	}
	authn := auth.NewTokenAuthenticator()
	authn.Add(adminToken, auth.User{Name: "admin", Groups: []string{"system:masters"}})
	h, err := apiserver.New(apiserver.Config{
		Storage:       etcdEnv.store,
		Resources:     registry.All(),
		Authenticator: authn,
		Logger:        quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &countingHandler{next: h}
}

// inprocessConfig is an admin client config that reaches h in process.
func inprocessConfig(h http.Handler) *rest.Config {
	return &rest.Config{Host: "http://inprocess", BearerToken: adminToken, QPS: -1, Transport: inprocess.New(h)}
}

// serveGoroutines counts the goroutines running a handler for the
// transport.
func serveGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "inprocess.(*Transport).serve(")
}

// waitWatchesEnded waits until h serves no watch and no goroutine serves a
// request of the transport.
func waitWatchesEnded(t *testing.T, h *countingHandler) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, g := h.watches.Load(), serveGoroutines()
		if n == 0 && g == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d watches still served, %d handler goroutines, after the client stopped", n, g)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recordContentTypes wraps the client's transport to note the response
// content types it receives.
type recordContentTypes struct {
	mu    sync.Mutex
	types map[string]bool
}

func (rc *recordContentTypes) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			rc.mu.Lock()
			rc.types[resp.Header.Get("Content-Type")] = true
			rc.mu.Unlock()
		}
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClientGoCRUD(t *testing.T) {
	h := newAPIServer(t)
	for _, proto := range []bool{false, true} {
		t.Run(fmt.Sprintf("protobuf=%v", proto), func(t *testing.T) {
			cfg := inprocessConfig(h)
			if proto {
				cfg = kubeclient.Protobuf(cfg)
			}
			seen := &recordContentTypes{types: map[string]bool{}}
			cfg.WrapTransport = seen.wrap
			c, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			crud(t, c, uniqueName(fmt.Sprintf("crud-proto-%v", proto)))
			want := "application/json"
			if proto {
				want = "application/vnd.kubernetes.protobuf"
			}
			if !seen.types[want] {
				t.Errorf("no response in %s; saw %v", want, seen.types)
			}
		})
	}
}

// TestClientGoAs: a client-go clientset over Transport.As, with no token
// nor user agent in its config, is authenticated by the API server as the
// token's user and shows the user agent, as one with them in its config;
// without As the same clientset is anonymous, and refused.
func TestClientGoAs(t *testing.T) {
	h := newAPIServer(t)
	var mu sync.Mutex
	agents := map[string]bool{}
	recording := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents[r.UserAgent()] = true
		mu.Unlock()
		h.ServeHTTP(w, r)
	})
	tr := inprocess.New(recording)
	cfg := kubeclient.Protobuf(&rest.Config{Host: "http://inprocess", QPS: -1})
	c, err := kubernetes.NewForConfigAndClient(cfg, &http.Client{Transport: tr.As(inprocess.Identity{BearerToken: adminToken, UserAgent: "drover-test/as"})})
	if err != nil {
		t.Fatal(err)
	}
	crud(t, c, uniqueName("crud-as"))
	mu.Lock()
	if len(agents) != 1 || !agents["drover-test/as"] {
		t.Errorf("the server saw user agents %v, want only drover-test/as", agents)
	}
	mu.Unlock()

	anon, err := kubernetes.NewForConfigAndClient(cfg, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, "anonymous list", metav1.StatusReasonUnauthorized, http.StatusUnauthorized, func() error {
		_, err := anon.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
		return err
	})
}

func crud(t *testing.T, c kubernetes.Interface, ns string) {
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	cms := c.CoreV1().ConfigMaps(ns)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"k": "v1"}}
	created, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	got, err := cms.Get(ctx, "cm", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v1" || got.UID != created.UID {
		t.Fatalf("get: %v, %+v", err, got)
	}
	got.Data["k"] = "v2"
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 || list.Items[0].Data["k"] != "v2" {
		t.Fatalf("list: %v, %+v", err, list)
	}
	expectStatus(t, "create again", metav1.StatusReasonAlreadyExists, 409, func() error {
		_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		return err
	})
	expectStatus(t, "invalid name", metav1.StatusReasonInvalid, 422, func() error {
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Not_A_Name"}}, metav1.CreateOptions{})
		return err
	})
	if err := cms.Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	expectStatus(t, "get deleted", metav1.StatusReasonNotFound, 404, func() error {
		_, err := cms.Get(ctx, "cm", metav1.GetOptions{})
		return err
	})

	pods := c.CoreV1().Pods(ns)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	podList, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=x"})
	if err != nil || len(podList.Items) != 1 || podList.Items[0].Spec.Containers[0].Image != "busybox" {
		t.Fatalf("list pods: %v, %+v", err, podList)
	}
	p, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	p.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update pod status: %v", err)
	}
	if p, err = pods.Get(ctx, "p", metav1.GetOptions{}); err != nil || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("get pod after status update: %v, phase %q", err, p.Status.Phase)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	expectStatus(t, "get deleted pod", metav1.StatusReasonNotFound, 404, func() error {
		_, err := pods.Get(ctx, "p", metav1.GetOptions{})
		return err
	})
}

func expectStatus(t *testing.T, what string, reason metav1.StatusReason, code int32, call func() error) {
	t.Helper()
	err := call()
	var status *apierrors.StatusError
	if !errors.As(err, &status) {
		t.Fatalf("%s: %v (%T), want a *StatusError", what, err, err)
	}
	if status.ErrStatus.Reason != reason || status.ErrStatus.Code != code {
		t.Errorf("%s: reason %q code %d, want %q %d", what, status.ErrStatus.Reason, status.ErrStatus.Code, reason, code)
	}
}

func TestClientGoWatch(t *testing.T) {
	h := newAPIServer(t)
	c, err := kubernetes.NewForConfig(kubeclient.Protobuf(inprocessConfig(h)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := uniqueName("watch")
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cms := c.CoreV1().ConfigMaps(ns)

	w, err := cms.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Data: map[string]string{"k": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Data: map[string]string{"k": "2"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ watch.EventType
		val string
	}{{watch.Added, "1"}, {watch.Modified, "2"}} {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch ended early")
			}
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			if ev.Type != want.typ || !isCM || cm.Name != "a" || cm.Data["k"] != want.val {
				t.Fatalf("event %s %#v, want %s of a with k=%s", ev.Type, ev.Object, want.typ, want.val)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", want.typ)
		}
	}
	if h.watches.Load() != 1 {
		t.Errorf("%d watches served, want 1", h.watches.Load())
	}
	w.Stop()
	waitWatchesEnded(t, h)

	// An informer: lists, watches, sees a change, and its watch ends with it.
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	added := make(chan string, 10)
	if _, err := factory.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { added <- obj.(*corev1.ConfigMap).Name },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	factory.Start(stop)
	for typ, ok := range factory.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("%v did not sync", typ)
		}
	}
	if name := <-added; name != "a" {
		t.Fatalf("informer listed %q, want a", name)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-added:
		if name != "b" {
			t.Fatalf("informer saw %q added, want b", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the informer did not see b added")
	}
	close(stop)
	factory.Shutdown()
	waitWatchesEnded(t, h)
}

// BenchmarkGetConfigMap gets one ConfigMap (from etcd) with a protobuf
// client-go client, as the controllers do, and BenchmarkServerVersion gets
// /version (no storage: the transport's share of a request shows best), in
// process and through the same server over loopback: HTTP/2 with TLS
// (production's path) and plain HTTP/1.1. Allocations and CPU count both
// ends, as both run in this process (as does etcd); cpu-ns/op is user+system
// CPU time of the whole process per request.
func BenchmarkGetConfigMap(b *testing.B) {
	benchmarkPaths(b, func(b *testing.B, c kubernetes.Interface) error {
		_, err := c.CoreV1().ConfigMaps("bench").Get(context.Background(), "cm", metav1.GetOptions{})
		return err
	})
}

func BenchmarkServerVersion(b *testing.B) {
	benchmarkPaths(b, func(b *testing.B, c kubernetes.Interface) error {
		_, err := c.Discovery().ServerVersion()
		return err
	})
}

func benchmarkPaths(b *testing.B, op func(*testing.B, kubernetes.Interface) error) {
	h := newAPIServer(b)
	setup, err := kubernetes.NewForConfig(inprocessConfig(h))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const ns = "bench"
	if _, err := setup.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"key": strings.Repeat("v", 512)}}
	if _, err := setup.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}

	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	tlsSrv.StartTLS()
	b.Cleanup(tlsSrv.Close)
	plainSrv := httptest.NewServer(h)
	b.Cleanup(plainSrv.Close)

	for _, tc := range []struct {
		name   string
		cfg    *rest.Config
		client *http.Client // nil: client-go's own for cfg
	}{
		{"inprocess", inprocessConfig(h), nil},
		// client-go's bearer token and user agent RoundTrippers left out:
		// the transport sets both.
		{"inprocess-as", &rest.Config{Host: "http://inprocess", QPS: -1}, &http.Client{Transport: inprocess.New(h).As(inprocess.Identity{BearerToken: adminToken, UserAgent: benchUserAgent})}},
		{"tls-http2", &rest.Config{Host: tlsSrv.URL, BearerToken: adminToken, QPS: -1, TLSClientConfig: rest.TLSClientConfig{
			CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}),
		}}, nil},
		{"http1", &rest.Config{Host: plainSrv.URL, BearerToken: adminToken, QPS: -1}, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.cfg.UserAgent == "" && tc.client == nil {
				tc.cfg.UserAgent = benchUserAgent // as the control plane's clients have
			}
			var c kubernetes.Interface
			var err error
			if tc.client != nil {
				c, err = kubernetes.NewForConfigAndClient(kubeclient.Protobuf(tc.cfg), tc.client)
			} else {
				c, err = kubernetes.NewForConfig(kubeclient.Protobuf(tc.cfg))
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := op(b, c); err != nil { // connect outside the timing
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				if err := op(b, c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// benchUserAgent is the benchmarks' clients' user agent.
const benchUserAgent = "drover-bench"

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
