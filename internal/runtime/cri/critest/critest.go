// Package critest gives tests a real containerd: Drover's own, started in a
// temporary directory with its own bridge and pod subnet, with the pause and
// web images built from source and imported, and torn down (containers,
// shims, mounts, bridge, files) when the test ends.
//
//	env := critest.Start(t)
//	id, err := env.Runtime.RunPodSandbox(ctx, ...)
//
// Where the machine cannot run containerd (not root, packages missing) the
// test is skipped with the reason, or fails when DROVER_E2E=1.
package critest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover/drover/internal/image"
	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/cri"
	"github.com/drover/drover/internal/runtime/cri/containerd"
)

// Env is a running containerd for one test.
type Env struct {
	// Containerd is the running process; RestartContainerd replaces it.
	Containerd *containerd.Containerd
	// Runtime is a CRI client connected to it.
	Runtime *cri.Runtime
	// Config is the containerd configuration, defaults filled in.
	Config containerd.Config
	// PodSubnet is the subnet pod IPs come from.
	PodSubnet *net.IPNet
}

// RequireRoot skips (or, with DROVER_E2E=1, fails) the test unless this
// machine can run Drover's containerd.
func RequireRoot(t testing.TB) {
	t.Helper()
	if err := containerd.Check(); err != nil {
		if os.Getenv("DROVER_E2E") == "1" {
			t.Fatalf("DROVER_E2E=1 but %v", err)
		}
		t.Skipf("skipping real-container test: %v", err)
	}
}

// seq makes bridges and subnets unique among Envs of one test process.
var seq atomic.Int64

// network picks a bridge name and /24 subnet unlikely to be used by another
// test process on the same host: 10.200.0.0/24 .. 10.249.255.0/24.
func network() (bridge, subnet string) {
	k := (int64(os.Getpid())*7 + seq.Add(1)) % (50 * 256)
	return fmt.Sprintf("drvt%d", k), fmt.Sprintf("10.%d.%d.0/24", 200+k/256, k%256)
}

// Start starts containerd for the test, imports image.PauseImage and
// image.WebImage, and connects Env.Runtime. Cleanup is registered with t.
func Start(t testing.TB) *Env {
	t.Helper()
	RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A short directory: the socket path must stay under 108 bytes, and
	// t.TempDir() paths grow with the test name.
	dir, err := os.MkdirTemp("", "drv-")
	if err != nil {
		t.Fatal(err)
	}
	bridge, subnet := network()
	cfg := containerd.Config{Dir: dir, Bridge: bridge, PodSubnet: subnet}
	env := &Env{}
	t.Cleanup(func() { env.teardown(t, cfg) })

	if env.Containerd, err = containerd.Start(ctx, cfg); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	env.Config = env.Containerd.Config()
	_, env.PodSubnet, _ = net.ParseCIDR(env.Config.PodSubnet)

	images := t.TempDir()
	for pkg, ref := range map[string]string{image.PausePackage: image.PauseImage, image.WebPackage: image.WebImage} {
		tar, err := image.BuildPackage(ctx, pkg, ref, images)
		if err != nil {
			t.Fatal(err)
		}
		if err := image.Import(ctx, env.Containerd.Address(), tar); err != nil {
			t.Fatal(err)
		}
	}
	if env.Runtime, err = cri.New(ctx, env.Containerd.Address()); err != nil {
		t.Fatal(err)
	}
	return env
}

// RestartContainerd stops containerd (containers keep running) and starts
// a new one on the same directory, as an agent restart does, and reconnects
// Env.Runtime.
func (e *Env) RestartContainerd(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.Runtime.Close()
	e.Runtime = nil
	e.Containerd.Stop()
	c, err := containerd.Start(ctx, e.Config)
	if err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
	e.Containerd = c
	if e.Runtime, err = cri.New(ctx, c.Address()); err != nil {
		t.Fatal(err)
	}
}

func (e *Env) teardown(t testing.TB, cfg containerd.Config) {
	if e.Runtime != nil {
		e.Runtime.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if e.Containerd != nil {
		err = e.Containerd.Teardown(ctx)
	} else {
		err = containerd.Purge(cfg)
	}
	if err != nil {
		t.Errorf("containerd teardown: %v", err)
	}
}

// WebPod is a pod RunWebPod started.
type WebPod struct {
	Sandbox   runtime.SandboxID
	Container runtime.ContainerID
	// URL is the web server's base address at the pod IP,
	// e.g. "http://10.200.3.2:8080".
	URL string
}

// RunWebPod runs a pod named name with one web container (image.WebImage,
// VERSION=version) through the runtime interface and waits until it answers
// HTTP at the pod IP.
func (e *Env) RunWebPod(t testing.TB, name, version string) WebPod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uid := name + "-uid"
	sbCfg := runtime.PodSandboxConfig{
		Metadata: runtime.PodSandboxMetadata{Name: name, Namespace: "default", UID: uid},
		Labels:   map[string]string{runtime.LabelPodUID: uid, runtime.LabelManagedBy: "drover"},
	}
	sb, err := e.Runtime.RunPodSandbox(ctx, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.Runtime.CreateContainer(ctx, sb, sbCfg, runtime.ContainerConfig{
		Name:   "web",
		Image:  image.WebImage,
		Env:    []runtime.EnvVar{{Name: "VERSION", Value: version}},
		Labels: map[string]string{runtime.LabelPodUID: uid, runtime.LabelContainerName: "web"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err := e.Runtime.PodSandboxStatus(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	pod := WebPod{Sandbox: sb, Container: id, URL: "http://" + net.JoinHostPort(st.IP, "8080")}
	for {
		if _, err := Get(pod.URL + "/"); err == nil {
			return pod
		} else if ctx.Err() != nil {
			t.Fatalf("web pod %s does not answer at %s: %v", name, pod.URL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Get fetches url with a 5s timeout and returns the body of a 200 answer.
func Get(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}
