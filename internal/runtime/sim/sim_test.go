package sim_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/sim"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func start(t *testing.T, rt *sim.Runtime, annotations map[string]string, logDir string) (runtime.SandboxID, runtime.ContainerID) {
	t.Helper()
	ctx := context.Background()
	cfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: "p", Namespace: "default", UID: "u1"},
		Annotations:  annotations,
		Labels:       map[string]string{runtime.LabelPodUID: "u1"},
		LogDirectory: logDir,
	}
	sb, err := rt.RunPodSandbox(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := rt.CreateContainer(ctx, sb, cfg, runtime.ContainerConfig{Name: "app", LogPath: runtime.ContainerLogPath("app", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return sb, id
}

func TestScriptedBehaviour(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		annotations map[string]string
		after       time.Duration
		state       runtime.ContainerState
		exitCode    int32
		ready, live bool
		cpuNanos    uint64
	}{
		{"plain container runs, ready and alive", nil, time.Hour, runtime.ContainerRunning, 0, true, true, 0},
		{"not ready before ready-after", map[string]string{sim.AnnotationReadyAfter: "2s"}, time.Second, runtime.ContainerRunning, 0, false, true, 0},
		{"ready after ready-after", map[string]string{sim.AnnotationReadyAfter: "2s"}, 2 * time.Second, runtime.ContainerRunning, 0, true, true, 0},
		{"never ready", map[string]string{sim.AnnotationNeverReady: "true"}, time.Hour, runtime.ContainerRunning, 0, false, true, 0},
		{"crashes after crash-after", map[string]string{sim.AnnotationCrashAfter: "5s"}, 5 * time.Second, runtime.ContainerExited, 1, false, false, 0},
		{"still running before crash-after", map[string]string{sim.AnnotationCrashAfter: "5s"}, 4 * time.Second, runtime.ContainerRunning, 0, true, true, 0},
		{"completes with exit code 0", map[string]string{sim.AnnotationCrashAfter: "1s", sim.AnnotationExitCode: "0"}, time.Minute, runtime.ContainerExited, 0, false, false, 0},
		{"unhealthy after", map[string]string{sim.AnnotationUnhealthyAfter: "3s"}, 3 * time.Second, runtime.ContainerRunning, 0, true, false, 0},
		{"cpu usage accumulates", map[string]string{sim.AnnotationCPUMillicores: "250"}, 10 * time.Second, runtime.ContainerRunning, 0, true, true, 2_500_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			rt := sim.New(sim.Config{Now: c.Now})
			_, id := start(t, rt, tt.annotations, "")
			c.Add(tt.after)
			st, err := rt.ContainerStatus(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != tt.state || st.ExitCode != tt.exitCode {
				t.Errorf("state %s exit %d, want %s exit %d", st.State, st.ExitCode, tt.state, tt.exitCode)
			}
			if tt.state == runtime.ContainerExited {
				crash, _ := time.ParseDuration(tt.annotations[sim.AnnotationCrashAfter])
				if !st.FinishedAt.Equal(st.StartedAt.Add(crash)) {
					t.Errorf("finished %v after start, want %v", st.FinishedAt.Sub(st.StartedAt), crash)
				}
			}
			if ok, _ := rt.ProbeResult(ctx, id, sim.ProbeReadiness); ok != tt.ready {
				t.Errorf("readiness %v, want %v", ok, tt.ready)
			}
			if ok, _ := rt.ProbeResult(ctx, id, sim.ProbeLiveness); ok != tt.live {
				t.Errorf("liveness %v, want %v", ok, tt.live)
			}
			stats, err := rt.ContainerStats(ctx, id)
			if err != nil || stats.CPUUsageCoreNanoSeconds != tt.cpuNanos {
				t.Errorf("cpu %d %v, want %d", stats.CPUUsageCoreNanoSeconds, err, tt.cpuNanos)
			}
		})
	}
}

func TestSandboxAddressesAndRemoval(t *testing.T) {
	ctx := context.Background()
	rt := sim.New(sim.Config{Subnet: "10.1.2.0/30"}) // room for one pod: .2
	sb, id := start(t, rt, nil, "")
	st, err := rt.PodSandboxStatus(ctx, sb)
	if err != nil || st.IP != "10.1.2.2" || st.State != runtime.SandboxReady {
		t.Fatalf("sandbox %+v %v, want ready at 10.1.2.2", st, err)
	}
	if _, err := rt.RunPodSandbox(ctx, runtime.PodSandboxConfig{Metadata: runtime.PodSandboxMetadata{Name: "q", UID: "u2"}}); err == nil {
		t.Fatal("second sandbox in a full subnet: no error")
	}
	if err := rt.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.ContainerStatus(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("container after sandbox removal: %v, want ErrNotFound", err)
	}
	sb2, err := rt.RunPodSandbox(ctx, runtime.PodSandboxConfig{Metadata: runtime.PodSandboxMetadata{Name: "q", UID: "u2"}})
	if err != nil {
		t.Fatalf("address not released: %v", err)
	}
	if st, _ := rt.PodSandboxStatus(ctx, sb2); st.IP != "10.1.2.2" {
		t.Errorf("reused address %q", st.IP)
	}
	list, _ := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: "u1"}})
	if len(list) != 0 {
		t.Errorf("removed sandbox still listed: %+v", list)
	}
}

func TestLogs(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rt := sim.New(sim.Config{Now: c.Now})
	_, id := start(t, rt, map[string]string{sim.AnnotationCrashAfter: "1s"}, t.TempDir())
	c.Add(2 * time.Second)
	r, err := rt.ContainerLogs(ctx, id, runtime.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r) // ends: the container has exited
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.Contains(got, "app attempt 0 started\n") || !strings.Contains(got, "exited with code 1\n") {
		t.Errorf("logs %q", got)
	}
}

// A log is kept in memory until it is first read: no directory or file is
// made for it before, and what is logged after the first read reaches the
// file (and a follower).
func TestLogsAreWrittenWhenFirstRead(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rt := sim.New(sim.Config{Now: c.Now})
	dir := filepath.Join(t.TempDir(), "default_p_u1")
	_, id := start(t, rt, map[string]string{sim.AnnotationCrashAfter: "5s"}, dir)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("log directory made before any read: %v", err)
	}
	r, err := rt.ContainerLogs(ctx, id, runtime.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.Contains(got, "app attempt 0 started\n") || strings.Contains(got, "exited") {
		t.Errorf("logs of the running container %q, want the start line only", got)
	}
	if _, err := os.Stat(filepath.Join(dir, runtime.ContainerLogPath("app", 0))); err != nil {
		t.Errorf("log file after a read: %v", err)
	}
	r, err = rt.ContainerLogs(ctx, id, runtime.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c.Add(6 * time.Second) // the follower sees the crash and its line
	b, err = io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); strings.Count(got, "started\n") != 1 || !strings.Contains(got, "exited with code 1\n") {
		t.Errorf("followed logs %q, want the start line once and the exit line", got)
	}
}

func TestNextChange(t *testing.T) {
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rt := sim.New(sim.Config{Now: c.Now})
	started := c.Now()
	_, crashes := start(t, rt, map[string]string{sim.AnnotationCrashAfter: "5s"}, "")
	if got, want := rt.NextChange(crashes), started.Add(5*time.Second); !got.Equal(want) {
		t.Errorf("NextChange of a container crashing after 5s = %v, want %v", got, want)
	}
	c.Add(6 * time.Second) // it has exited: nothing more happens by itself
	if got := rt.NextChange(crashes); !got.IsZero() {
		t.Errorf("NextChange of an exited container = %v, want zero", got)
	}
	rt2 := sim.New(sim.Config{Now: c.Now})
	_, steady := start(t, rt2, map[string]string{sim.AnnotationReadyAfter: "1s"}, "")
	if got := rt2.NextChange(steady); !got.IsZero() {
		t.Errorf("NextChange of a container that runs for good = %v, want zero", got)
	}
	if got := rt2.NextChange("nope"); !got.IsZero() {
		t.Errorf("NextChange of an unknown container = %v, want zero", got)
	}
}

// The agent lists a pod's containers on every sync; this is its cost on a
// node with 100 pods.
func BenchmarkListContainers(b *testing.B) {
	ctx := context.Background()
	rt := sim.New(sim.Config{})
	for i := range 100 {
		labels := map[string]string{runtime.LabelPodUID: strconv.Itoa(i)}
		cfg := runtime.PodSandboxConfig{Metadata: runtime.PodSandboxMetadata{Name: "p", UID: strconv.Itoa(i)}, Labels: labels}
		sb, _ := rt.RunPodSandbox(ctx, cfg)
		id, _ := rt.CreateContainer(ctx, sb, cfg, runtime.ContainerConfig{Name: "app", Labels: labels})
		rt.StartContainer(ctx, id)
	}
	filter := runtime.ContainerFilter{Labels: map[string]string{runtime.LabelPodUID: "42"}}
	b.ReportAllocs()
	for b.Loop() {
		if cs, _ := rt.ListContainers(ctx, filter); len(cs) != 1 {
			b.Fatalf("listed %d", len(cs))
		}
	}
}

// TestListByPod: a list filtered by pod UID (what the agent asks on every
// sync) finds that pod's sandboxes and containers only, follows removals,
// and agrees with an unfiltered list.
func TestListByPod(t *testing.T) {
	ctx := context.Background()
	rt := sim.New(sim.Config{})
	pods := map[string]runtime.ContainerID{}
	for _, uid := range []string{"a", "b", "c"} {
		cfg := runtime.PodSandboxConfig{
			Metadata: runtime.PodSandboxMetadata{Name: uid, Namespace: "default", UID: uid},
			Labels:   map[string]string{runtime.LabelPodUID: uid, "other": "x"},
		}
		sb, err := rt.RunPodSandbox(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		id, err := rt.CreateContainer(ctx, sb, cfg, runtime.ContainerConfig{Name: "app", Labels: map[string]string{runtime.LabelPodUID: uid}})
		if err != nil {
			t.Fatal(err)
		}
		pods[uid] = id
	}
	byPod := func(uid string) (int, []runtime.Container) {
		sbs, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: uid, "other": "x"}})
		if err != nil {
			t.Fatal(err)
		}
		cs, err := rt.ListContainers(ctx, runtime.ContainerFilter{Labels: map[string]string{runtime.LabelPodUID: uid}})
		if err != nil {
			t.Fatal(err)
		}
		return len(sbs), cs
	}
	if n, cs := byPod("b"); n != 1 || len(cs) != 1 || cs[0].ID != pods["b"] {
		t.Fatalf("pod b: %d sandboxes, containers %+v; want 1 and %s", n, cs, pods["b"])
	}
	if n, cs := byPod("nobody"); n != 0 || len(cs) != 0 {
		t.Fatalf("unknown pod: %d sandboxes, %d containers; want none", n, len(cs))
	}
	if err := rt.RemoveContainer(ctx, pods["a"]); err != nil {
		t.Fatal(err)
	}
	if n, cs := byPod("a"); n != 1 || len(cs) != 0 {
		t.Fatalf("pod a after its container's removal: %d sandboxes, %d containers; want 1 and 0", n, len(cs))
	}
	sbs, _ := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: "c"}})
	if err := rt.RemovePodSandbox(ctx, sbs[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, cs := byPod("c"); n != 0 || len(cs) != 0 {
		t.Fatalf("pod c after its sandbox's removal: %d sandboxes, %d containers; want none", n, len(cs))
	}
	all, _ := rt.ListContainers(ctx, runtime.ContainerFilter{})
	if len(all) != 1 || all[0].ID != pods["b"] {
		t.Errorf("all containers %+v, want only %s", all, pods["b"])
	}
}

// TestDuplicatesAndSandboxScope checks what the sandbox and container
// indexes answer: a sandbox's metadata and a container's name and attempt
// in its sandbox are unique (until removed), and stopping or removing a
// sandbox touches its own containers only.
func TestDuplicatesAndSandboxScope(t *testing.T) {
	ctx := context.Background()
	rt := sim.New(sim.Config{})
	cfg := func(uid string, attempt uint32) runtime.PodSandboxConfig {
		return runtime.PodSandboxConfig{
			Metadata: runtime.PodSandboxMetadata{Name: uid, Namespace: "default", UID: uid, Attempt: attempt},
			Labels:   map[string]string{runtime.LabelPodUID: uid},
		}
	}
	sbA, err := rt.RunPodSandbox(ctx, cfg("a", 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RunPodSandbox(ctx, cfg("a", 0)); err == nil {
		t.Fatal("second sandbox with the same metadata: no error")
	}
	sbA1, err := rt.RunPodSandbox(ctx, cfg("a", 1))
	if err != nil {
		t.Fatalf("next attempt: %v", err)
	}
	sbB, err := rt.RunPodSandbox(ctx, cfg("b", 0))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := rt.CreateContainer(ctx, sbA, cfg("a", 0), runtime.ContainerConfig{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.CreateContainer(ctx, sbA, cfg("a", 0), runtime.ContainerConfig{Name: "app"}); err == nil {
		t.Fatal("second container app attempt 0 in one sandbox: no error")
	}
	if _, err := rt.CreateContainer(ctx, sbA, cfg("a", 0), runtime.ContainerConfig{Name: "app", Attempt: 1}); err != nil {
		t.Fatalf("attempt 1: %v", err)
	}
	if _, err := rt.CreateContainer(ctx, sbA1, cfg("a", 1), runtime.ContainerConfig{Name: "app"}); err != nil {
		t.Fatalf("same name in another sandbox: %v", err)
	}
	cb, err := rt.CreateContainer(ctx, sbB, cfg("b", 0), runtime.ContainerConfig{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []runtime.ContainerID{ca, cb} {
		if err := rt.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.StopPodSandbox(ctx, sbA); err != nil {
		t.Fatal(err)
	}
	if st, _ := rt.ContainerStatus(ctx, ca); st.State != runtime.ContainerExited || st.ExitCode != 137 {
		t.Errorf("container of the stopped sandbox: %s exit %d, want exited 137", st.State, st.ExitCode)
	}
	if st, _ := rt.ContainerStatus(ctx, cb); st.State != runtime.ContainerRunning {
		t.Errorf("container of another sandbox: %s, want running", st.State)
	}
	if err := rt.RemoveContainer(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemovePodSandbox(ctx, sbA); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RunPodSandbox(ctx, cfg("a", 0)); err != nil {
		t.Errorf("sandbox again after the first was removed: %v", err)
	}
	all, _ := rt.ListContainers(ctx, runtime.ContainerFilter{})
	if len(all) != 2 {
		t.Errorf("%d containers left, want 2 (sandbox a attempt 1's and b's): %+v", len(all), all)
	}
	if _, err := rt.ContainerStatus(ctx, cb); err != nil {
		t.Errorf("container of another sandbox after a removal: %v", err)
	}
}

func TestIDsAreSixteenHexDigits(t *testing.T) {
	rt := sim.New(sim.Config{})
	ctx := context.Background()
	var last string
	for i := range 20 {
		id, err := rt.RunPodSandbox(ctx, runtime.PodSandboxConfig{Metadata: runtime.PodSandboxMetadata{Name: strconv.Itoa(i), UID: strconv.Itoa(i)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 16 || strings.Trim(string(id), "0123456789abcdef") != "" || string(id) <= last {
			t.Fatalf("sandbox ID %q after %q: want 16 hex digits, increasing", id, last)
		}
		last = string(id)
	}
	if last != "0000000000000014" {
		t.Errorf("20th ID %q, want 0000000000000014", last)
	}
}
