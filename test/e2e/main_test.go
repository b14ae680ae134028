// Package e2e drives the built drover binary the way users do: the real
// kubectl (drover kubectl) and client-go against a real server process.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// droverBin is the binary built once for the whole package.
var droverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drover-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	droverBin = filepath.Join(dir, "drover")
	build := exec.Command("go", "build", "-o", droverBin, "../../cmd/drover")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building drover:", err)
		os.Exit(1)
	}
	// The nodes' service proxies write iptables chains that outlive
	// them: this run's have a prefix of their own, removed at the end.
	chains := fmt.Sprintf("DRE%04d", os.Getpid()%10000)
	os.Setenv("DROVER_PROXY_CHAIN_PREFIX", chains)
	code := m.Run()
	cleanupChains(chains)
	os.RemoveAll(dir)
	os.Exit(code)
}

// serverProc is a running `drover server`.
type serverProc struct {
	cmd        *exec.Cmd
	dataDir    string
	listen     string
	kubeconfig string
	log        *syncBuffer
	exited     chan struct{}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs `drover server` on dataDir and waits until it is ready.
func startServer(t testing.TB, dataDir, listen string) *serverProc {
	t.Helper()
	return startControlPlane(t, "server", dataDir, listen)
}

// startControlPlane runs `drover COMMAND --data-dir DIR --listen ADDR
// EXTRA...` (server or up) and waits until its API is ready.
func startControlPlane(t testing.TB, command, dataDir, listen string, extra ...string) *serverProc {
	t.Helper()
	p := &serverProc{dataDir: dataDir, listen: listen, kubeconfig: filepath.Join(dataDir, "admin.kubeconfig"), log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(droverBin, append([]string{command, "--data-dir", dataDir, "--listen", listen}, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("drover server exited early:\n%s", p.log)
		default:
		}
		if p.ready() {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("drover server not ready after 60s:\n%s", p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ready reports that the kubeconfig exists and the API answers with it.
func (p *serverProc) ready() bool {
	if _, err := os.Stat(p.kubeconfig); err != nil {
		return false
	}
	cs, err := p.clientsetErr()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || string(body) != "ok" {
		return false
	}
	_, err = cs.CoreV1().Namespaces().Get(ctx, "default", metaGet)
	return err == nil
}

func (p *serverProc) clientsetErr() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", p.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0
	return kubernetes.NewForConfig(cfg)
}

func (p *serverProc) clientset(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	cs, err := p.clientsetErr()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// kill9 kills the server without warning.
func (p *serverProc) kill9(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the server to stop and checks it exits cleanly.
func (p *serverProc) stop(t testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("drover server did not stop within 30s of SIGTERM:\n%s", p.log)
	}
}

// kubectl runs `drover kubectl` against the server and returns its output.
func (p *serverProc) kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(droverBin, append([]string{"kubectl", "--kubeconfig", p.kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// mustKubectl runs kubectl and fails the test on error.
func (p *serverProc) mustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := p.kubectl(t, args...)
	if err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, tail(p.log.String(), 40))
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// httpGet is a plain unauthenticated GET that skips TLS verification.
func httpGetCode(url string) int {
	resp, err := insecureClient.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for the child process's output copier
// and the test goroutine at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it returns nil, failing the test with its last
// error after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
