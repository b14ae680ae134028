package cri_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/image"
	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/cri"
	"github.com/drover/drover/internal/runtime/cri/critest"
)

// eventually polls cond every 100ms until it returns nil or timeout passes,
// then fails with cond's last error.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readLogs(t *testing.T, rt runtime.Runtime, id runtime.ContainerID, opts runtime.LogOptions) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := rt.ContainerLogs(ctx, id, opts)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read logs: %v", err)
	}
	return string(b)
}

// TestPodLifecycle runs a pod with the web server in real containers
// through the runtime interface, from sandbox to removal, including an agent
// restart and a containerd restart in the middle.
func TestPodLifecycle(t *testing.T) {
	env := critest.Start(t)
	var rt runtime.Runtime = env.Runtime
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if rt.Name() != "cri" {
		t.Errorf("Name = %q", rt.Name())
	}
	v, err := rt.Version(ctx)
	if err != nil || v.RuntimeName != "containerd" || v.RuntimeVersion == "" || v.APIVersion != "v1" {
		t.Errorf("Version = %+v, %v", v, err)
	}
	st, err := env.Runtime.Status(ctx)
	if err != nil || !st.RuntimeReady || !st.NetworkReady {
		t.Errorf("Status = %+v, %v", st, err)
	}

	// Images: imported ones are found, others are not, and nothing pulls.
	img, err := env.Runtime.ImageStatus(ctx, image.WebImage)
	if err != nil || img.ID == "" || !slices.Contains(img.RepoTags, image.WebImage) {
		t.Errorf("ImageStatus(%s) = %+v, %v", image.WebImage, img, err)
	}
	if _, err := env.Runtime.ImageStatus(ctx, "drover.local/absent:1"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ImageStatus(absent) error = %v, want ErrNotFound", err)
	}
	images, err := env.Runtime.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, i := range images {
		tags = append(tags, i.RepoTags...)
	}
	if !slices.Contains(tags, image.PauseImage) || !slices.Contains(tags, image.WebImage) {
		t.Errorf("ListImages tags = %q, want pause and web", tags)
	}
	if _, err := env.Runtime.PullImage(ctx, "127.0.0.1:1/drover/absent:1"); err == nil {
		t.Error("PullImage from a closed port succeeded")
	}

	// The sandbox, publishing port 8080 on a free loopback port.
	hostPort := freePort(t)
	uid := "0b3c6f2e-uid"
	labels := map[string]string{runtime.LabelPodUID: uid, runtime.LabelManagedBy: "drover"}
	sbCfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: "web", Namespace: "default", UID: uid},
		LogDirectory: runtime.PodLogDirectory(t.TempDir(), "default", "web", uid),
		DNS:          &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}},
		PortMappings: []runtime.PortMapping{{ContainerPort: 8080, HostPort: hostPort, HostIP: "127.0.0.1"}},
		Labels:       labels,
		Annotations:  map[string]string{"drover.io/note": "e2e"},
	}
	sb, err := rt.RunPodSandbox(ctx, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	sbs, err := rt.PodSandboxStatus(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	if sbs.State != runtime.SandboxReady || sbs.Metadata != sbCfg.Metadata || sbs.Labels[runtime.LabelPodUID] != uid || sbs.Annotations["drover.io/note"] != "e2e" {
		t.Errorf("sandbox status = %+v", sbs)
	}
	t.Logf("sandbox %s at %s (%s %s)", sb, sbs.IP, v.RuntimeName, v.RuntimeVersion)
	ip := net.ParseIP(sbs.IP)
	if ip == nil || !env.PodSubnet.Contains(ip) {
		t.Fatalf("sandbox IP %q not in pod subnet %v", sbs.IP, env.PodSubnet)
	}

	// The web container.
	ctrCfg := runtime.ContainerConfig{
		Name:      "web",
		Image:     image.WebImage,
		Env:       []runtime.EnvVar{{Name: "VERSION", Value: "v9"}},
		Resources: runtime.Resources{CPUShares: 256, MemoryLimitBytes: 64 << 20},
		LogPath:   runtime.ContainerLogPath("web", 0),
		Labels:    map[string]string{runtime.LabelPodUID: uid, runtime.LabelContainerName: "web"},
	}
	web, err := rt.CreateContainer(ctx, sb, sbCfg, ctrCfg)
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := rt.ContainerStatus(ctx, web); err != nil || cs.State != runtime.ContainerCreated {
		t.Errorf("created container status = %+v, %v", cs, err)
	}
	if err := rt.StartContainer(ctx, web); err != nil {
		t.Fatal(err)
	}
	cs, err := rt.ContainerStatus(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if cs.State != runtime.ContainerRunning || cs.SandboxID != sb || cs.Name != "web" || cs.StartedAt.IsZero() ||
		cs.LogPath != filepath.Join(sbCfg.LogDirectory, "web", "0.log") || cs.Labels[runtime.LabelContainerName] != "web" {
		t.Errorf("running container status = %+v", cs)
	}

	base := "http://" + net.JoinHostPort(sbs.IP, "8080")
	var body string
	eventually(t, 30*time.Second, "web answers at the sandbox IP", func() (err error) {
		body, err = critest.Get(base + "/")
		return err
	})
	if body != "v9 web\n" {
		t.Errorf("GET / = %q, want %q (version from env, hostname = pod name)", body, "v9 web\n")
	}
	// The hostPort mapping publishes it on the node's loopback address.
	eventually(t, 30*time.Second, "web answers at the host port", func() error {
		got, err := critest.Get(fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		if err == nil && got != body {
			err = fmt.Errorf("host port answered %q, want %q", got, body)
		}
		return err
	})

	// Exec: the image has only the web binary; its usage exits 2.
	res, err := env.Runtime.ExecSync(ctx, web, []string{"/web", "-no-such-flag"}, 10*time.Second)
	if err != nil || res.ExitCode != 2 || !strings.Contains(string(res.Stderr), "-version") {
		t.Errorf("ExecSync = exit %d stderr %q, %v; want exit 2 with usage", res.ExitCode, res.Stderr, err)
	}

	// Stats: burning CPU shows up in the counter.
	before, err := rt.ContainerStats(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if before.ID != web || before.MemoryWorkingSetBytes == 0 || before.Timestamp.IsZero() {
		t.Errorf("stats = %+v, want memory in use and a timestamp", before)
	}
	if _, err := critest.Get(base + "/burn?ms=300"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "CPU usage grows after /burn", func() error {
		after, err := rt.ContainerStats(ctx, web)
		if err != nil {
			return err
		}
		if after.CPUUsageCoreNanoSeconds == 0 || after.CPUUsageCoreNanoSeconds < before.CPUUsageCoreNanoSeconds+200_000_000 {
			return fmt.Errorf("cpu %d ns, before %d ns", after.CPUUsageCoreNanoSeconds, before.CPUUsageCoreNanoSeconds)
		}
		return nil
	})

	// Logs.
	logs := readLogs(t, rt, web, runtime.LogOptions{})
	if !strings.Contains(logs, "web v9: listening on [::]:8080") || !strings.Contains(logs, "GET /burn?ms=300") {
		t.Errorf("logs lack the start and /burn lines:\n%s", logs)
	}
	if tail := readLogs(t, rt, web, runtime.LogOptions{TailLines: 1, Timestamps: true}); strings.Count(tail, "\n") != 1 || !strings.Contains(tail, "GET /burn?ms=300") {
		t.Errorf("tail 1 with timestamps = %q", tail)
	}
	follow, err := rt.ContainerLogs(ctx, web, runtime.LogOptions{Follow: true, TailLines: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := critest.Get(base + "/healthz"); err != nil {
		t.Fatal(err)
	}
	followed := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(follow)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "GET /healthz") {
				followed <- nil
				return
			}
		}
		followed <- fmt.Errorf("follow ended without the /healthz line: %v", sc.Err())
	}()
	select {
	case err := <-followed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(30 * time.Second):
		t.Error("following the log did not show a new request within 30s")
	}
	follow.Close()

	// A container that fails: its exit code and reason are reported.
	bad, err := rt.CreateContainer(ctx, sb, sbCfg, runtime.ContainerConfig{
		Name: "bad", Image: image.WebImage, Args: []string{"-addr", "256.0.0.1:1"},
		LogPath: runtime.ContainerLogPath("bad", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bad container exits", func() error {
		cs, err := rt.ContainerStatus(ctx, bad)
		if err != nil {
			return err
		}
		if cs.State != runtime.ContainerExited {
			return fmt.Errorf("state %v", cs.State)
		}
		if cs.ExitCode != 1 || cs.Reason != runtime.ReasonError || cs.FinishedAt.IsZero() {
			t.Errorf("bad container status = %+v, want exit 1, Error", cs)
		}
		return nil
	})

	// Agent restart: a new client finds the pod by its labels, still running.
	rt2, err := cri.New(ctx, env.Containerd.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close()
	ready := runtime.SandboxReady
	found, err := rt2.ListPodSandboxes(ctx, runtime.PodSandboxFilter{State: &ready, Labels: map[string]string{runtime.LabelPodUID: uid}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != sb || found[0].Metadata != sbCfg.Metadata {
		t.Fatalf("after client restart ListPodSandboxes = %+v, want sandbox %s", found, sb)
	}
	if other, _ := rt2.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: "other"}}); len(other) != 0 {
		t.Errorf("label filter matched %+v", other)
	}
	running := runtime.ContainerRunning
	ctrs, err := rt2.ListContainers(ctx, runtime.ContainerFilter{SandboxID: sb, State: &running})
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrs) != 1 || ctrs[0].ID != web || ctrs[0].Name != "web" || ctrs[0].Labels[runtime.LabelPodUID] != uid {
		t.Fatalf("after client restart running containers = %+v, want only web", ctrs)
	}
	all, err := rt2.ListContainers(ctx, runtime.ContainerFilter{SandboxID: sb})
	if err != nil || len(all) != 2 {
		t.Errorf("all containers in the sandbox = %+v, %v; want web and bad", all, err)
	}

	// containerd restart: the container keeps serving and is found again.
	env.RestartContainerd(t)
	rt = env.Runtime
	if body, err := critest.Get(base + "/"); err != nil || body != "v9 web\n" {
		t.Errorf("after containerd restart GET / = %q, %v", body, err)
	}
	if cs, err := rt.ContainerStatus(ctx, web); err != nil || cs.State != runtime.ContainerRunning {
		t.Errorf("after containerd restart web status = %+v, %v", cs, err)
	}
	if sbs, err := rt.PodSandboxStatus(ctx, sb); err != nil || sbs.State != runtime.SandboxReady || sbs.IP != ip.String() {
		t.Errorf("after containerd restart sandbox = %+v, %v; want ready at %s", sbs, err, ip)
	}

	// Graceful stop: SIGTERM, the server shuts down and exits 0.
	if err := rt.StopContainer(ctx, web, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cs, err = rt.ContainerStatus(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if cs.State != runtime.ContainerExited || cs.ExitCode != 0 || cs.Reason != runtime.ReasonCompleted || cs.FinishedAt.Before(cs.StartedAt) {
		t.Errorf("stopped container status = %+v, want exited 0, Completed", cs)
	}
	if err := rt.StopContainer(ctx, web, time.Second); err != nil {
		t.Errorf("second StopContainer: %v", err)
	}
	// Following the log of an exited container ends by itself.
	if logs := readLogs(t, rt, web, runtime.LogOptions{Follow: true}); !strings.Contains(logs, "web: shutting down") {
		t.Errorf("logs after stop lack the shutdown line:\n%s", logs)
	}

	// Removal, idempotent.
	if err := rt.RemoveContainer(ctx, web); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.ContainerStatus(ctx, web); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status of removed container: %v, want ErrNotFound", err)
	}
	if err := rt.RemoveContainer(ctx, web); err != nil {
		t.Errorf("second RemoveContainer: %v", err)
	}
	if err := rt.StopPodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if sbs, err := rt.PodSandboxStatus(ctx, sb); err != nil || sbs.State != runtime.SandboxNotReady {
		t.Errorf("stopped sandbox = %+v, %v", sbs, err)
	}
	if err := rt.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.PodSandboxStatus(ctx, sb); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status of removed sandbox: %v, want ErrNotFound", err)
	}
	if left, err := rt.ListContainers(ctx, runtime.ContainerFilter{}); err != nil || len(left) != 0 {
		t.Errorf("containers left after removing the sandbox: %+v, %v", left, err)
	}
	if left, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{}); err != nil || len(left) != 0 {
		t.Errorf("sandboxes left: %+v, %v", left, err)
	}
	if err := rt.RemovePodSandbox(ctx, sb); err != nil {
		t.Errorf("second RemovePodSandbox: %v", err)
	}
	if err := rt.StopPodSandbox(ctx, sb); err != nil {
		t.Errorf("StopPodSandbox of a removed sandbox: %v", err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// BenchmarkPodStart measures a web pod from RunPodSandbox to answering HTTP
// at its IP, then removes it (removal is not timed).
func BenchmarkPodStart(b *testing.B) {
	env := critest.Start(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pod := env.RunWebPod(b, fmt.Sprintf("bench-%d", i), "v1")
		b.StopTimer()
		if err := env.Runtime.StopPodSandbox(ctx, pod.Sandbox); err != nil {
			b.Fatal(err)
		}
		if err := env.Runtime.RemovePodSandbox(ctx, pod.Sandbox); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
