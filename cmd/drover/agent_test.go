package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

func TestAgentNeedsAServer(t *testing.T) {
	_, stderr, err := drover(t, nil, "agent", "--runtime", "sim", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(stderr, "drover: give --kubeconfig FILE, or --server URL and --token TOKEN") {
		t.Errorf("agent without a server: err %v, stderr %q", err, stderr)
	}
}

// TestAgentJoinsAndStopsOnSIGTERM runs `drover agent --runtime sim` against
// a real API server: the node registers, and SIGTERM stops the agent with
// exit status 0.
func TestAgentJoinsAndStopsOnSIGTERM(t *testing.T) {
	env := testenv.Start(t)
	cmd := exec.Command(os.Args[0], "agent", "--runtime", "sim", "--node-name", "cmd-node",
		"--server", env.URL, "--token", testenv.AdminToken, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DROVER_TEST_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		_, err := env.Kube.CoreV1().Nodes().Get(context.Background(), "cmd-node", metav1.GetOptions{})
		return err
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
}
