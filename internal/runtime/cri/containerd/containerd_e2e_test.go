package containerd_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/internal/runtime/cri/containerd"
	"github.com/drover/drover/internal/runtime/cri/critest"
)

// TestTeardownAfterCrash kills containerd while a pod runs, then checks
// that Teardown still removes everything: containers, shims, mounts,
// bridge and files.
func TestTeardownAfterCrash(t *testing.T) {
	env := critest.Start(t)
	pod := env.RunWebPod(t, "crash", "v1")
	dir, socket := env.Config.Dir, env.Containerd.Address()

	if err := syscall.Kill(env.Containerd.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-env.Containerd.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("containerd did not exit on SIGKILL")
	}
	if env.Containerd.Err() == nil {
		t.Error("Err() = nil after SIGKILL")
	}
	// Containers outlive containerd.
	if _, err := critest.Get(pod.URL + "/"); err != nil {
		t.Fatalf("pod stopped answering when containerd died: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := env.Containerd.Teardown(ctx); err != nil {
		t.Errorf("Teardown: %v", err)
	}
	if err := env.Containerd.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}

	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir %s still there: %v", dir, err)
	}
	if _, err := critest.Get(pod.URL + "/"); err == nil {
		t.Error("pod still answers after Teardown")
	}
	if _, err := net.InterfaceByName(env.Config.Bridge); err == nil {
		t.Errorf("bridge %s still exists", env.Config.Bridge)
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mountinfo), dir) {
		t.Errorf("mounts under %s remain", dir)
	}
	if pids := processesMentioning(t, socket); len(pids) > 0 {
		t.Errorf("processes still refer to %s: %v", socket, pids)
	}
}

// processesMentioning lists processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			// Zombies have an empty command line, so this is a live one.
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// TestStartRefusesBusySocket checks Start will not run a second containerd
// on a directory whose socket answers.
func TestStartRefusesBusySocket(t *testing.T) {
	critest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "drv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "containerd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = containerd.Start(context.Background(), containerd.Config{Dir: dir, Bridge: "drvtbusy"})
	if err == nil || !strings.Contains(err.Error(), "already listens") {
		t.Errorf("Start on a busy socket: %v, want an 'already listens' error", err)
	}
}

// TestStartReportsEarlyExit checks a containerd that cannot start is
// reported with its log, not waited on.
func TestStartReportsEarlyExit(t *testing.T) {
	critest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "drv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// /bin/false stands in for a containerd binary that dies at once.
	_, err = containerd.Start(context.Background(), containerd.Config{Dir: dir, Binary: "/bin/false", Bridge: "drvtfail"})
	if err == nil || !strings.Contains(err.Error(), "exited while starting") {
		t.Errorf("Start with a failing binary: %v, want 'exited while starting'", err)
	}
}
