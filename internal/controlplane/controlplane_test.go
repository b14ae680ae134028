package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drover/drover/internal/auth"
)

// started is a control plane running in the background of a test.
type started struct {
	info   Info
	cancel context.CancelFunc
	done   chan error
}

// start runs a control plane in dir on a free loopback port and waits until
// it is ready.
func start(t *testing.T, dir string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			DataDir: dir,
			Listen:  "127.0.0.1:0",
			Version: "v1.37.2-test",
			Logger:  testLogger(t),
			Ready:   func(i Info) { ready <- i },
		})
	}()
	s := &started{cancel: cancel, done: done}
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.info = <-ready:
	case err := <-done:
		done <- err // let stop see it too
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("control plane not ready within 2 minutes")
	}
	return s
}

// stop cancels the control plane and checks it exits cleanly.
func (s *started) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	begin := time.Now()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
		t.Logf("control plane stopped in %v", time.Since(begin).Round(time.Millisecond))
	case <-time.After(time.Minute):
		t.Error("Run did not return within a minute of cancel")
	}
}

func TestRunServesRestartsAndReusesCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, dir)

	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	if s.info.KubeconfigPath != filepath.Join(dir, KubeconfigFile) {
		t.Errorf("kubeconfig path = %q", s.info.KubeconfigPath)
	}
	if !strings.HasPrefix(s.info.URL, "https://127.0.0.1:") {
		t.Errorf("URL = %q, want https://127.0.0.1:PORT", s.info.URL)
	}

	ca := readFile(t, filepath.Join(dir, PKIDir, auth.CACertFile))
	httpc := caClient(t, ca)
	waitHealthy(t, httpc, s.info.URL)

	// Without credentials: 401.
	resp, err := httpc.Get(s.info.URL + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated list: status %d, want 401", resp.StatusCode)
	}
	// With a wrong token: 401 as well.
	req, _ := http.NewRequest(http.MethodGet, s.info.URL+"/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer not-the-token")
	if resp, err = httpc.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", resp.StatusCode)
	}

	// The kubeconfig file works with client-go, and the system namespaces exist.
	assertSystemNamespaces(t, s.info.KubeconfigPath)

	// Metrics are served to the admin and count the requests above.
	req, _ = http.NewRequest(http.MethodGet, s.info.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(readFile(t, filepath.Join(dir, TokenFile)))))
	if resp, err = httpc.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `apiserver_request_total{code="201",group="",resource="namespaces"`) {
		t.Errorf("/metrics: status %d; no count of namespace creations in:\n%.2000s", resp.StatusCode, body)
	}

	token := readFile(t, filepath.Join(dir, TokenFile))
	firstURL := s.info.URL
	s.stop(t)

	// The port is released.
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(firstURL, "https://"), time.Second); err == nil {
		c.Close()
		t.Error("API port still accepts connections after Run returned")
	}

	// Restart on the same dir: same CA and token, state kept.
	s2 := start(t, dir)
	if got := readFile(t, filepath.Join(dir, PKIDir, auth.CACertFile)); !bytes.Equal(got, ca) {
		t.Error("restart generated a new CA")
	}
	if got := readFile(t, filepath.Join(dir, TokenFile)); !bytes.Equal(got, token) {
		t.Error("restart generated a new admin token")
	}
	waitHealthy(t, caClient(t, ca), s2.info.URL)
	assertSystemNamespaces(t, s2.info.KubeconfigPath)
	s2.stop(t)
}

func TestRunFailsFastWhenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = Run(ctx, Config{DataDir: dir, Listen: ln.Addr().String(), Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run on a taken port = %v, want an 'address already in use' error", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	// Nothing else started: no etcd data, no credentials.
	if _, err := os.Stat(filepath.Join(dir, EtcdDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etcd dir exists after a failed bind (err %v)", err)
	}
}

func TestRunFailsOnUnhealthyExternalEtcd(t *testing.T) {
	// A port with nothing behind it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = Run(ctx, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", EtcdEndpoints: []string{dead}, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "etcd") {
		t.Fatalf("Run with dead etcd = %v, want an etcd error", err)
	}
}

func TestAdvertiseHost(t *testing.T) {
	cases := []struct{ advertise, listen, want string }{
		{"", ":6443", "127.0.0.1"},
		{"", "0.0.0.0:6443", "127.0.0.1"},
		{"", "[::]:6443", "127.0.0.1"},
		{"", "10.0.0.5:6443", "10.0.0.5"},
		{"", "127.0.0.1:0", "127.0.0.1"},
		{"api.example.test", ":6443", "api.example.test"},
		{"10.0.0.9:7443", ":6443", "10.0.0.9"},
		{"fd00::1", ":6443", "fd00::1"},
	}
	for _, tc := range cases {
		got, err := advertiseHost(tc.advertise, tc.listen)
		if err != nil || got != tc.want {
			t.Errorf("advertiseHost(%q, %q) = %q, %v; want %q", tc.advertise, tc.listen, got, err, tc.want)
		}
	}
	if _, err := advertiseHost("", "no-port"); err == nil {
		t.Error("advertiseHost accepted a listen address without a port")
	}
}

func assertSystemNamespaces(t *testing.T, kubeconfig string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list namespaces with the admin kubeconfig: %v", err)
	}
	var names []string
	for _, ns := range list.Items {
		names = append(names, ns.Name)
	}
	for _, want := range SystemNamespaces {
		if !slices.Contains(names, want) {
			t.Errorf("namespace %q missing; have %v", want, names)
		}
	}
}

func caClient(t *testing.T, caPEM []byte) *http.Client {
	t.Helper()
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in PEM")
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca}},
	}
}

// waitHealthy polls /healthz until it answers 200 (it needs no credentials).
func waitHealthy(t *testing.T, c *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not OK within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testLogger collects logs and prints them only if the test fails, so
// goroutines logging during shutdown never write to a finished test.
func testLogger(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("control plane logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
