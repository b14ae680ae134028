package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/controlplane"
	"github.com/drover/drover/internal/testenv"
)

func TestAgentNeedsAServer(t *testing.T) {
	_, stderr, err := drover(t, nil, "agent", "--runtime", "sim", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(stderr, "drover: give --kubeconfig FILE, or --server URL and --token TOKEN") {
		t.Errorf("agent without a server: err %v, stderr %q", err, stderr)
	}
}

// TestAgentJoinsAndStopsOnSIGTERM runs `drover agent --runtime sim
// --server URL --token NODE_TOKEN` against a real control plane: the agent
// joins for a node certificate (no admin credentials in its data dir), the
// node registers, and SIGTERM stops the agent with exit status 0.
func TestAgentJoinsAndStopsOnSIGTERM(t *testing.T) {
	info := startControlPlane(t)
	dataDir := filepath.Join(t.TempDir(), "agent")
	cmd := exec.Command(os.Args[0], "agent", "--runtime", "sim", "--node-name", "cmd-node",
		"--server", info.URL, "--token", info.NodeToken, "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DROVER_TEST_MAIN=1")
	var out, errOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	admin := kubernetes.NewForConfigOrDie(info.RestConfig)
	testenv.Eventually(t, 30*time.Second, func() error {
		if _, err := admin.CoreV1().Nodes().Get(context.Background(), "cmd-node", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("%w; agent stderr: %s", err, errOut.String())
		}
		if !strings.Contains(out.String(), "Node cmd-node registered") {
			return fmt.Errorf("registration not announced yet; stdout %q", out.String())
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent after SIGTERM: %v; stderr %s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(out.String(), "runtime sim (chosen with --runtime)") || !strings.Contains(out.String(), "Node cmd-node registered") {
		t.Errorf("stdout %q, want the runtime and the registration announced", out.String())
	}
	cred, ok, err := auth.LoadClientCredential(filepath.Join(dataDir, agentPKIDir), controlplane.NodeCredentialName)
	if err != nil || !ok || cred.Cert.Subject.CommonName != "system:node:cmd-node" {
		t.Fatalf("node credential in the agent's data dir: %v %v %v", cred, ok, err)
	}
	adminToken, err := os.ReadFile(filepath.Join(filepath.Dir(info.KubeconfigPath), controlplane.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	assertNotInDir(t, dataDir, strings.TrimSpace(string(adminToken)))
}

// startControlPlane runs a single server in a temporary data dir for the test.
func startControlPlane(t *testing.T) controlplane.Info {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan controlplane.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- controlplane.Run(ctx, controlplane.Config{
			DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: testenv.Logger(t),
			Ready: func(i controlplane.Info) { ready <- i },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case info := <-ready:
		return info
	case err := <-done:
		t.Fatalf("control plane: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("control plane not ready within 2 minutes")
	}
	return controlplane.Info{}
}

// assertNotInDir fails if any file under dir contains secret.
func assertNotInDir(t *testing.T, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("%s holds the admin token", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
