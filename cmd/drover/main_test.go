package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/auth"
)

// TestMain lets tests run this binary as drover itself: with
// DROVER_TEST_MAIN=1 the test binary runs main with its arguments.
func TestMain(m *testing.M) {
	if os.Getenv("DROVER_TEST_MAIN") == "1" {
		os.Args = append([]string{"drover"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// drover runs this test binary as `drover args...` with extra environment.
func drover(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "DROVER_TEST_MAIN=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestServerFailsWithOneLineWhenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stderr, err := drover(t, nil, "server", "--data-dir", t.TempDir(), "--listen", ln.Addr().String())
	if err == nil {
		t.Fatal("drover server on a taken port exited 0")
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "drover: ") || !strings.Contains(last, "address already in use") {
		t.Errorf("last stderr line = %q, want a one-line 'drover: ... address already in use'", last)
	}
}

func TestLogLevelRejectsUnknown(t *testing.T) {
	_, stderr, err := drover(t, nil, "--log-level", "loud", "version")
	if err == nil || !strings.Contains(stderr, "--log-level") {
		t.Errorf("bad --log-level: err %v, stderr %q", err, stderr)
	}
}

// TestKubectlDefaultsToDroverKubeconfig runs the embedded kubectl and checks
// which kubeconfig it reads: --kubeconfig, then $KUBECONFIG, then
// ~/.drover/admin.kubeconfig.
func TestKubectlDefaultsToDroverKubeconfig(t *testing.T) {
	home := t.TempDir()
	write := func(path, server string) {
		t.Helper()
		if err := auth.WriteKubeconfig(path, server, nil, "admin", "tok"); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, ".drover", "admin.kubeconfig"), "https://home.example.test:6443")
	envFile := filepath.Join(t.TempDir(), "env.kubeconfig")
	write(envFile, "https://env.example.test:6443")
	flagFile := filepath.Join(t.TempDir(), "flag.kubeconfig")
	write(flagFile, "https://flag.example.test:6443")

	view := []string{"kubectl", "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"}
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"default", []string{"HOME=" + home, "KUBECONFIG="}, view, "https://home.example.test:6443"},
		{"env", []string{"HOME=" + home, "KUBECONFIG=" + envFile}, view, "https://env.example.test:6443"},
		{"flag", []string{"HOME=" + home, "KUBECONFIG=" + envFile}, append(view, "--kubeconfig", flagFile), "https://flag.example.test:6443"},
		{"flag=", []string{"HOME=" + home, "KUBECONFIG="}, append(view, "--kubeconfig="+flagFile), "https://flag.example.test:6443"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := drover(t, tc.env, tc.args...)
			if err != nil {
				t.Fatalf("drover %v: %v\n%s", tc.args, err, stderr)
			}
			if out != tc.want {
				t.Errorf("kubectl read server %q, want %q", out, tc.want)
			}
		})
	}
}

func TestKubectlPassesExitCodeAndArgs(t *testing.T) {
	// An unknown kubectl flag is kubectl's error, not cobra's in drover.
	_, stderr, err := drover(t, []string{"HOME=" + t.TempDir()}, "kubectl", "get", "--no-such-flag")
	if err == nil {
		t.Fatal("kubectl with an unknown flag exited 0")
	}
	if !strings.Contains(stderr, "unknown flag: --no-such-flag") {
		t.Errorf("stderr = %q", stderr)
	}
	out, _, err := drover(t, nil, "kubectl", "version", "--client", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if want := `"gitVersion": "` + kubernetesVersion() + `"`; !strings.Contains(out, want) {
		t.Errorf("kubectl version output lacks %s:\n%s", want, out)
	}
}
