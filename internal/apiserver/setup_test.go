package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
)

const adminToken = "test-admin-token"

// shared is one etcd member for the whole test binary; tests isolate
// themselves by namespace.
var shared struct {
	member *embedded.Member
	store  *etcd.Store
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apiserver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	member, err := embedded.Start(ctx, embedded.Config{DataDir: dir, Name: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting etcd:", err)
		os.Exit(1)
	}
	shared.member = member
	shared.store = etcd.New(member.Client(), etcd.Options{})
	code := m.Run()
	member.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testServer is an API server over the shared etcd, served by httptest.
type testServer struct {
	server *apiserver.Server
	url    string
	config *rest.Config
	client kubernetes.Interface
	store  storage.Interface
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	return serveOver(t, shared.store)
}

// serveOver starts an API server with every resource over backend (the
// shared etcd, or something in front of it), an admin token, and a
// client-go client; store is the shared etcd either way.
func serveOver(t testing.TB, backend storage.Interface) *testServer {
	t.Helper()
	authn := auth.NewTokenAuthenticator()
	authn.Add(adminToken, auth.User{Name: "admin", Groups: []string{"system:masters"}})
	h, err := apiserver.New(apiserver.Config{
		Storage:       backend,
		Resources:     registry.All(),
		Authenticator: authn,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := &rest.Config{Host: srv.URL, BearerToken: adminToken, QPS: -1}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{server: h, url: srv.URL, config: cfg, client: client, store: shared.store}
}

// namespace creates a fresh namespace for one test.
func (ts *testServer) namespace(t testing.TB, name string) string {
	t.Helper()
	_, err := ts.client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}
