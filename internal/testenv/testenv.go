// Package testenv starts a real Drover API server (every registered
// resource, over a real embedded etcd member) for the tests of components
// that talk to it: controllers, the scheduler, the agent. Nothing is faked:
// clients reach the server over HTTP exactly as in production, only
// without TLS.
//
//	env := testenv.Start(t)
//	env.Kube.CoreV1().Namespaces().Create(...)
package testenv

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/authz"
	"github.com/drover/drover/internal/kubeclient"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
)

// AdminToken is the bearer token of the environment's admin (group
// system:masters).
const AdminToken = "testenv-admin-token"

// Env is a running API server and admin clients for it.
type Env struct {
	// URL is the server's base URL (plain HTTP).
	URL string
	// Config is the admin client configuration, unthrottled; copy it
	// before changing it.
	Config *rest.Config
	// Kube is the admin clientset.
	Kube kubernetes.Interface
	// Dynamic is the admin dynamic client.
	Dynamic dynamic.Interface
	// Store is the server's storage, for tests that check what is kept.
	Store storage.Interface
	// Etcd is the embedded etcd member holding the state.
	Etcd *embedded.Member
}

// Start runs an etcd member in a temporary directory and an API server
// serving every resource of registry.All() on it, creates the default,
// kube-system and kube-node-lease namespaces, and stops everything when
// the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, Options{})
}

// Options change what StartWith runs.
type Options struct {
	// Authorizer, if set, authorizes every request (the admin is in
	// system:masters); nil allows everything. An authorizer that reads
	// the API (authz.Cache) can be started after StartWith with Env.Kube.
	Authorizer authz.Authorizer
	// Admission, if set, checks objects before they are stored
	// (authz.Admission: RBAC escalation, node restriction).
	Admission apiserver.Admitter
	// Users are further bearer tokens and who they identify.
	Users map[string]auth.User
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Env {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	member, err := embedded.Start(context.Background(), embedded.Config{DataDir: t.TempDir(), Name: "testenv", Logger: quiet})
	if err != nil {
		t.Fatalf("testenv: starting etcd: %v", err)
	}
	store := etcd.New(member.Client(), etcd.Options{ProgressInterval: time.Second})
	t.Cleanup(func() {
		store.Close()
		member.Close()
	})
	authn := auth.NewTokenAuthenticator()
	authn.Add(AdminToken, auth.User{Name: "admin", Groups: []string{"system:masters"}})
	for token, u := range opts.Users {
		authn.Add(token, u)
	}
	handler, err := apiserver.New(apiserver.Config{
		Storage:       store,
		Resources:     registry.All(),
		Authenticator: authn,
		Authorizer:    opts.Authorizer,
		Admission:     opts.Admission,
		Logger:        quiet,
	})
	if err != nil {
		t.Fatalf("testenv: API server: %v", err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	cfg := &rest.Config{Host: srv.URL, BearerToken: AdminToken, QPS: -1}
	env := &Env{
		URL:     srv.URL,
		Config:  cfg,
		Kube:    kubernetes.NewForConfigOrDie(kubeclient.Protobuf(cfg)),
		Dynamic: dynamic.NewForConfigOrDie(cfg),
		Store:   store,
		Etcd:    member,
	}
	for _, ns := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, corev1.NamespaceNodeLease} {
		env.CreateNamespace(t, ns)
	}
	return env
}

// CreateNamespace creates a namespace and fails the test if it cannot.
func (e *Env) CreateNamespace(t testing.TB, name string) {
	t.Helper()
	_, err := e.Kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testenv: creating namespace %s: %v", name, err)
	}
}

// Logger returns a logger that writes to the test's log, so a failing
// test shows what the component under test said. Lines logged after the
// test ends (by goroutines still stopping) are dropped.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Eventually polls cond every 20ms until it returns nil or the deadline
// passes, then fails the test with cond's last error. Use it to wait on a
// condition, never on a fixed sleep.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
