package process_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/process"
)

// eventually polls cond until it returns nil or timeout passes, then fails
// with cond's last error.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
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
		time.Sleep(10 * time.Millisecond)
	}
}

// testEnv is a process runtime over a temporary state directory; every
// sandbox left at the end of the test is removed (its processes killed).
type testEnv struct {
	t        testing.TB
	rt       *process.Runtime
	stateDir string
	logRoot  string
	exe      string
}

func newEnv(t testing.TB, cfg process.Config) *testEnv {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rt, err := process.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, rt: rt, stateDir: cfg.StateDir, logRoot: t.TempDir(), exe: exe}
	t.Cleanup(func() { e.removeAll(e.rt) })
	return e
}

// removeAll removes every sandbox rt knows.
func (e *testEnv) removeAll(rt *process.Runtime) {
	ctx := context.Background()
	sbs, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{})
	if err != nil {
		e.t.Error(err)
	}
	for _, s := range sbs {
		if err := rt.RemovePodSandbox(ctx, s.ID); err != nil {
			e.t.Errorf("cleanup: %v", err)
		}
	}
}

// sandbox runs a sandbox for pod name.
func (e *testEnv) sandbox(name string) (runtime.SandboxID, runtime.PodSandboxConfig) {
	e.t.Helper()
	uid := "uid-" + name
	cfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: name, Namespace: "default", UID: uid},
		LogDirectory: runtime.PodLogDirectory(e.logRoot, "default", name, uid),
		Labels:       map[string]string{runtime.LabelPodUID: uid, runtime.LabelManagedBy: "drover"},
		Annotations:  map[string]string{"drover.io/note": "test"},
	}
	id, err := e.rt.RunPodSandbox(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return id, cfg
}

// config is a container running the test binary in mode.
func (e *testEnv) config(name, mode string, env ...runtime.EnvVar) runtime.ContainerConfig {
	return runtime.ContainerConfig{
		Name:    name,
		Image:   "ignored.local/image:1",
		Command: []string{e.exe},
		Env:     append([]runtime.EnvVar{{Name: "PROCESS_TEST_MODE", Value: mode}, {Name: "NAME", Value: name}}, env...),
		LogPath: runtime.ContainerLogPath(name, 0),
		Labels:  map[string]string{runtime.LabelContainerName: name},
	}
}

// start creates and starts a container.
func (e *testEnv) start(sb runtime.SandboxID, sbCfg runtime.PodSandboxConfig, cfg runtime.ContainerConfig) runtime.ContainerID {
	e.t.Helper()
	ctx := context.Background()
	id, err := e.rt.CreateContainer(ctx, sb, sbCfg, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.rt.StartContainer(ctx, id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// status returns a container's status.
func (e *testEnv) status(id runtime.ContainerID) runtime.ContainerStatus {
	e.t.Helper()
	cs, err := e.rt.ContainerStatus(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

// waitExited waits for a container to exit and returns its status.
func (e *testEnv) waitExited(id runtime.ContainerID) runtime.ContainerStatus {
	e.t.Helper()
	var cs runtime.ContainerStatus
	eventually(e.t, 30*time.Second, "container exits", func() (err error) {
		cs, err = e.rt.ContainerStatus(context.Background(), id)
		if err == nil && cs.State != runtime.ContainerExited {
			err = fmt.Errorf("state %v", cs.State)
		}
		return err
	})
	return cs
}

// logs reads a container's logs.
func (e *testEnv) logs(id runtime.ContainerID, opts runtime.LogOptions) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.rt.ContainerLogs(ctx, id, opts)
	if err != nil {
		e.t.Fatalf("logs: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatalf("read logs: %v", err)
	}
	return string(b)
}

// waitLog waits until the container's log holds want.
func (e *testEnv) waitLog(id runtime.ContainerID, want string) {
	e.t.Helper()
	eventually(e.t, 30*time.Second, "log shows "+want, func() error {
		if got := e.logs(id, runtime.LogOptions{}); !strings.Contains(got, want) {
			return fmt.Errorf("log is %q", got)
		}
		return nil
	})
}

func TestPodLifecycle(t *testing.T) {
	e := newEnv(t, process.Config{})
	rt := e.rt
	ctx := context.Background()

	if rt.Name() != "process" {
		t.Errorf("Name = %q", rt.Name())
	}
	if v, err := rt.Version(ctx); err != nil || v.RuntimeName != "drover-process" || v.RuntimeVersion == "" {
		t.Errorf("Version = %+v, %v", v, err)
	}
	if st, err := rt.Status(ctx); err != nil || !st.RuntimeReady || !st.NetworkReady {
		t.Errorf("Status = %+v, %v", st, err)
	}

	sb, sbCfg := e.sandbox("web")
	sbs, err := rt.PodSandboxStatus(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	if sbs.State != runtime.SandboxReady || sbs.Metadata != sbCfg.Metadata || sbs.Labels[runtime.LabelPodUID] != "uid-web" || sbs.Annotations["drover.io/note"] != "test" {
		t.Errorf("sandbox status = %+v", sbs)
	}
	ip, err := netip.ParseAddr(sbs.IP)
	if err != nil || !netip.MustParsePrefix(process.DefaultPodSubnet).Contains(ip) {
		t.Fatalf("sandbox IP %q, want one in %s", sbs.IP, process.DefaultPodSubnet)
	}
	// Nothing to configure: the address can be bound at once.
	ln, err := net.Listen("tcp", net.JoinHostPort(sbs.IP, "0"))
	if err != nil {
		t.Fatalf("bind the pod IP: %v", err)
	}
	ln.Close()
	if _, err := rt.RunPodSandbox(ctx, sbCfg); err == nil {
		t.Error("a second sandbox with the same metadata was accepted")
	}

	// A container needs a command.
	noCmd := e.config("nocmd", "exit")
	noCmd.Command = nil
	if _, err := rt.CreateContainer(ctx, sb, sbCfg, noCmd); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("CreateContainer without a command: %v, want a no-command error", err)
	}

	// A container that fails: created, running, exited with its code.
	cfg := e.config("fail", "exit", runtime.EnvVar{Name: "CODE", Value: "3"})
	fail, err := rt.CreateContainer(ctx, sb, sbCfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.CreateContainer(ctx, sb, sbCfg, cfg); err == nil {
		t.Error("a second container with the same name and attempt was accepted")
	}
	if cs := e.status(fail); cs.State != runtime.ContainerCreated || cs.SandboxID != sb || cs.Name != "fail" || !cs.StartedAt.IsZero() ||
		cs.Image != cfg.Image || cs.LogPath != filepath.Join(sbCfg.LogDirectory, "fail", "0.log") || cs.Labels[runtime.LabelContainerName] != "fail" {
		t.Errorf("created container status = %+v", cs)
	}
	if err := rt.StartContainer(ctx, fail); err != nil {
		t.Fatal(err)
	}
	cs := e.waitExited(fail)
	if cs.ExitCode != 3 || cs.Reason != runtime.ReasonError || cs.StartedAt.IsZero() || cs.FinishedAt.Before(cs.StartedAt) {
		t.Errorf("failed container status = %+v, want exit 3, Error", cs)
	}
	if err := rt.StartContainer(ctx, fail); err == nil {
		t.Error("starting an exited container succeeded")
	}
	logs := e.logs(fail, runtime.LogOptions{})
	if !strings.Contains(logs, "to stdout\n") || !strings.Contains(logs, "to stderr\n") {
		t.Errorf("logs = %q, want both streams", logs)
	}
	// The file is in the CRI format.
	raw, err := os.ReadFile(cs.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.SplitAfter(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if _, err := runtime.ParseLogEntry([]byte(line)); err != nil {
			t.Errorf("log line %q: %v", line, err)
		}
	}
	if tail := e.logs(fail, runtime.LogOptions{TailLines: 1, Timestamps: true}); strings.Count(tail, "\n") != 1 || !strings.Contains(tail, "Z to std") {
		t.Errorf("tail 1 with timestamps = %q", tail)
	}

	// One that succeeds.
	ok := e.start(sb, sbCfg, e.config("ok", "exit"))
	if cs := e.waitExited(ok); cs.ExitCode != 0 || cs.Reason != runtime.ReasonCompleted {
		t.Errorf("completed container status = %+v", cs)
	}

	// One whose executable does not exist.
	missing := e.config("missing", "exit")
	missing.Command = []string{"no-such-program-anywhere"}
	bad, err := rt.CreateContainer(ctx, sb, sbCfg, missing)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, bad); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("StartContainer of a missing executable: %v", err)
	}
	if cs := e.status(bad); cs.State != runtime.ContainerExited || cs.Reason != process.ReasonStartError || cs.ExitCode != 128 || cs.Message == "" {
		t.Errorf("start error status = %+v", cs)
	}

	// One that runs.
	long := e.start(sb, sbCfg, e.config("long", "term"))
	if cs := e.status(long); cs.State != runtime.ContainerRunning || cs.StartedAt.IsZero() || !cs.FinishedAt.IsZero() {
		t.Errorf("running container status = %+v", cs)
	}

	// List filters.
	running, exited := runtime.ContainerRunning, runtime.ContainerExited
	list := func(f runtime.ContainerFilter) []runtime.ContainerID {
		t.Helper()
		cs, err := rt.ListContainers(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []runtime.ContainerID
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		return ids
	}
	if got := list(runtime.ContainerFilter{State: &running}); len(got) != 1 || got[0] != long {
		t.Errorf("running containers = %v, want [%s]", got, long)
	}
	if got := list(runtime.ContainerFilter{State: &exited, SandboxID: sb}); len(got) != 3 {
		t.Errorf("exited containers = %v, want 3", got)
	}
	if got := list(runtime.ContainerFilter{Labels: map[string]string{runtime.LabelContainerName: "ok"}}); len(got) != 1 || got[0] != ok {
		t.Errorf("containers labelled ok = %v", got)
	}
	if got := list(runtime.ContainerFilter{ID: fail}); len(got) != 1 || got[0] != fail {
		t.Errorf("container by ID = %v", got)
	}
	if got := list(runtime.ContainerFilter{SandboxID: "other"}); len(got) != 0 {
		t.Errorf("containers of another sandbox = %v", got)
	}
	other, _ := e.sandbox("other")
	ready := runtime.SandboxReady
	if got, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: "uid-web"}, State: &ready}); err != nil || len(got) != 1 || got[0].ID != sb {
		t.Errorf("sandboxes of uid-web = %+v, %v", got, err)
	}
	if got, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{ID: other}); err != nil || len(got) != 1 || got[0].ID != other {
		t.Errorf("sandbox by ID = %+v, %v", got, err)
	}
	if got, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{}); err != nil || len(got) != 2 {
		t.Errorf("all sandboxes = %+v, %v", got, err)
	}
	if ost, err := rt.PodSandboxStatus(ctx, other); err != nil || ost.IP == sbs.IP || ost.IP == "" {
		t.Errorf("second sandbox %+v, %v: want an IP of its own (first has %s)", ost, err, sbs.IP)
	}

	// Stopping the sandbox kills its containers and releases the IP.
	if err := rt.StopPodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if cs := e.status(long); cs.State != runtime.ContainerExited {
		t.Errorf("container after sandbox stop = %+v", cs)
	}
	if sbs, err := rt.PodSandboxStatus(ctx, sb); err != nil || sbs.State != runtime.SandboxNotReady || sbs.IP != "" {
		t.Errorf("stopped sandbox = %+v, %v", sbs, err)
	}
	if _, err := rt.CreateContainer(ctx, sb, sbCfg, e.config("late", "exit")); err == nil {
		t.Error("CreateContainer in a stopped sandbox succeeded")
	}
	if err := rt.StopPodSandbox(ctx, sb); err != nil {
		t.Errorf("second StopPodSandbox: %v", err)
	}

	// Removal, idempotent, and ErrNotFound afterwards.
	if err := rt.RemoveContainer(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveContainer(ctx, ok); err != nil {
		t.Errorf("second RemoveContainer: %v", err)
	}
	if _, err := rt.ContainerStatus(ctx, ok); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status of a removed container: %v, want ErrNotFound", err)
	}
	if err := rt.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.PodSandboxStatus(ctx, sb); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status of a removed sandbox: %v, want ErrNotFound", err)
	}
	if left := list(runtime.ContainerFilter{}); len(left) != 0 {
		t.Errorf("containers left after removing their sandbox: %v", left)
	}
	if err := rt.RemovePodSandbox(ctx, sb); err != nil {
		t.Errorf("second RemovePodSandbox: %v", err)
	}
	if err := rt.StopPodSandbox(ctx, sb); err != nil {
		t.Errorf("StopPodSandbox of a removed sandbox: %v", err)
	}
	if err := rt.StopContainer(ctx, long, time.Second); err != nil {
		t.Errorf("StopContainer of a removed container: %v", err)
	}
	for name, err := range map[string]error{
		"start":  rt.StartContainer(ctx, long),
		"create": func() error { _, err := rt.CreateContainer(ctx, sb, sbCfg, e.config("x", "exit")); return err }(),
		"stats":  func() error { _, err := rt.ContainerStats(ctx, long); return err }(),
		"logs":   func() error { _, err := rt.ContainerLogs(ctx, long, runtime.LogOptions{}); return err }(),
		"exec":   func() error { _, err := rt.ExecSync(ctx, long, []string{"true"}, 0); return err }(),
	} {
		if !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("%s of a removed object: %v, want ErrNotFound", name, err)
		}
	}
	// The logs stay: they belong to the pod's log directory.
	if _, err := os.Stat(cs.LogPath); err != nil {
		t.Errorf("log of a removed container: %v", err)
	}
}

func TestStop(t *testing.T) {
	e := newEnv(t, process.Config{})
	ctx := context.Background()
	sb, sbCfg := e.sandbox("stop")

	// SIGTERM, and the process exits by itself.
	graceful := e.start(sb, sbCfg, e.config("graceful", "term"))
	e.waitLog(graceful, "waiting for SIGTERM")
	if err := e.rt.StopContainer(ctx, graceful, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if cs := e.status(graceful); cs.State != runtime.ContainerExited || cs.ExitCode != 0 || cs.Reason != runtime.ReasonCompleted || cs.FinishedAt.Before(cs.StartedAt) {
		t.Errorf("gracefully stopped container = %+v, want exited 0, Completed", cs)
	}
	if logs := e.logs(graceful, runtime.LogOptions{Follow: true}); !strings.Contains(logs, "got SIGTERM") {
		t.Errorf("logs after stop = %q, want the SIGTERM line", logs)
	}
	if err := e.rt.StopContainer(ctx, graceful, time.Second); err != nil {
		t.Errorf("second StopContainer: %v", err)
	}

	// SIGTERM ignored: SIGKILL after the grace period.
	stubborn := e.start(sb, sbCfg, e.config("stubborn", "ignore"))
	e.waitLog(stubborn, "ignoring SIGTERM")
	if err := e.rt.StopContainer(ctx, stubborn, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if cs := e.status(stubborn); cs.State != runtime.ContainerExited || cs.ExitCode != 137 || cs.Reason != runtime.ReasonError {
		t.Errorf("killed container = %+v, want exited 137, Error", cs)
	}

	// The signal reaches the process's children (its process group).
	dir := t.TempDir()
	family := e.config("family", "")
	family.Command = []string{"sh", "-c", "sleep 1000 & echo $! > child.pid; wait"}
	family.WorkingDir = dir
	fam := e.start(sb, sbCfg, family)
	var child int
	eventually(t, 30*time.Second, "child pid written", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
		if err == nil {
			child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err
	})
	if err := e.rt.StopContainer(ctx, fam, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if cs := e.status(fam); cs.State != runtime.ContainerExited || cs.ExitCode != 128+int32(syscall.SIGTERM) {
		t.Errorf("stopped shell = %+v, want exit 143", cs)
	}
	eventually(t, 10*time.Second, "the shell's child is gone", func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
		if err == nil && strings.HasPrefix(string(b), "sleep") {
			return fmt.Errorf("child %d still runs", child)
		}
		return nil
	})

	// A timeout of zero kills at once.
	now := e.start(sb, sbCfg, e.config("now", "term"))
	if err := e.rt.StopContainer(ctx, now, 0); err != nil {
		t.Fatal(err)
	}
	if cs := e.status(now); cs.ExitCode != 137 {
		t.Errorf("container stopped with timeout 0 = %+v, want exit 137", cs)
	}
}

// TestOrphansReaped: what the container's process leaves behind is reaped
// by its shim while the container runs, not left a zombie.
func TestOrphansReaped(t *testing.T) {
	e := newEnv(t, process.Config{})
	sb, sbCfg := e.sandbox("orphans")
	dir := t.TempDir()
	cfg := e.config("parent", "")
	cfg.Command = []string{"sh", "-c", `(sh -c 'echo $$ > orphan.pid; read x < go; echo bye' &); sleep 1000`}
	cfg.WorkingDir = dir
	if err := syscall.Mkfifo(filepath.Join(dir, "go"), 0o600); err != nil {
		t.Fatal(err)
	}
	id := e.start(sb, sbCfg, cfg)
	var orphan int
	eventually(t, 30*time.Second, "orphan pid written", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "orphan.pid"))
		if err == nil {
			orphan, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err
	})
	// Its parent, the subshell, has exited: the shim adopted it.
	var started struct{ ShimPID int }
	b, err := os.ReadFile(filepath.Join(e.stateDir, "sandboxes", string(sb), "containers", string(id), "started.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jsonUnmarshal(b, &started); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the shim adopts the orphan", func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan))
		if err != nil {
			return err
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:])); f[1] != strconv.Itoa(started.ShimPID) {
			return fmt.Errorf("orphan's parent is %s, want the shim %d", f[1], started.ShimPID)
		}
		return nil
	})
	// Let it exit.
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.waitLog(id, "bye")
	eventually(t, 30*time.Second, "the orphan is reaped", func() error {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan)); err == nil {
			return fmt.Errorf("orphan %d: %s", orphan, b)
		}
		return nil
	})
}

func TestLogsFollow(t *testing.T) {
	e := newEnv(t, process.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, sbCfg := e.sandbox("follow")
	dir := t.TempDir()
	cfg := e.config("follow", "")
	cfg.Command = []string{"sh", "-c", "echo one; while [ ! -e go ]; do sleep 0.02; done; printf 'two\\nthree'; exit 0"}
	cfg.WorkingDir = dir
	id := e.start(sb, sbCfg, cfg)

	r, err := e.rt.ContainerLogs(ctx, id, runtime.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	br := bufio.NewReader(r)
	if line, err := br.ReadString('\n'); err != nil || line != "one\n" {
		t.Fatalf("first followed line = %q, %v", line, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The rest arrives, and the reader ends once the container has exited
	// (the unterminated last line is written out at exit).
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "two\nthree\n" {
		t.Errorf("rest of the followed log = %q, %v", rest, err)
	}
	if cs := e.status(id); cs.State != runtime.ContainerExited || cs.ExitCode != 0 {
		t.Errorf("status = %+v", cs)
	}

	// Without a log directory no log is kept.
	sbCfg.LogDirectory = ""
	quiet, err := e.rt.CreateContainer(ctx, sb, sbCfg, e.config("quiet", "exit"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StartContainer(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if cs := e.waitExited(quiet); cs.ExitCode != 0 || cs.LogPath != "" {
		t.Errorf("container without a log = %+v", cs)
	}
	if _, err := e.rt.ContainerLogs(ctx, quiet, runtime.LogOptions{}); err == nil {
		t.Error("logs of a container without a log path succeeded")
	}
}

// TestSandboxNetwork: containers of a pod share its IP and reach each
// other on it; another pod has another IP.
func TestSandboxNetwork(t *testing.T) {
	e := newEnv(t, process.Config{})
	ctx := context.Background()
	sb, sbCfg := e.sandbox("net")
	sbs, err := e.rt.PodSandboxStatus(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	port := runtime.EnvVar{Name: "PORT", Value: "8080"}
	server := e.start(sb, sbCfg, e.config("server", "serve", port))
	e.waitLog(server, "listening on "+sbs.IP+":8080")
	client := e.start(sb, sbCfg, e.config("client", "dial", port))
	if cs := e.waitExited(client); cs.ExitCode != 0 {
		t.Errorf("client = %+v, logs %q", cs, e.logs(client, runtime.LogOptions{}))
	}
	if logs := e.logs(client, runtime.LogOptions{}); logs != "got: hello from server\n" {
		t.Errorf("client logs = %q", logs)
	}

	// Another pod binds the same port on its own IP.
	sb2, sbCfg2 := e.sandbox("net2")
	sbs2, err := e.rt.PodSandboxStatus(ctx, sb2)
	if err != nil {
		t.Fatal(err)
	}
	server2 := e.start(sb2, sbCfg2, e.config("server2", "serve", port))
	e.waitLog(server2, "listening on "+sbs2.IP+":8080")

	// ExecSync runs with the container's environment and directory.
	res, err := runtime.Execer(e.rt).ExecSync(ctx, server, []string{"sh", "-c", "echo $POD_IP $NAME; pwd; echo oops >&2; exit 4"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 4 || !strings.HasPrefix(string(res.Stdout), sbs.IP+" server\n/") || string(res.Stderr) != "oops\n" {
		t.Errorf("ExecSync = exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	if _, err := e.rt.ExecSync(ctx, server, []string{"sleep", "10"}, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ExecSync past its timeout: %v, want DeadlineExceeded", err)
	}
	if _, err := e.rt.ExecSync(ctx, client, []string{"true"}, time.Second); err == nil {
		t.Error("ExecSync in an exited container succeeded")
	}
}

// TestHostPort: a hostPort mapping publishes the container port on the
// node, across an agent restart, until the sandbox stops; a port that is
// taken fails the sandbox.
func TestHostPort(t *testing.T) {
	e := newEnv(t, process.Config{})
	ctx := context.Background()
	hostPort := freePort(t)
	uid := "uid-published"
	sbCfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: "published", Namespace: "default", UID: uid},
		LogDirectory: runtime.PodLogDirectory(e.logRoot, "default", "published", uid),
		PortMappings: []runtime.PortMapping{
			{ContainerPort: 8080, HostPort: hostPort, HostIP: "127.0.0.1"},
			{ContainerPort: 53, Protocol: runtime.ProtocolUDP}, // no host port: nothing to publish
		},
	}
	sb, err := e.rt.RunPodSandbox(ctx, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	server := e.start(sb, sbCfg, e.config("server", "serve", runtime.EnvVar{Name: "PORT", Value: "8080"}))
	e.waitLog(server, "listening")
	get := func() (string, error) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(hostPort))), 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	if got, err := get(); err != nil || got != "hello from server\n" {
		t.Errorf("through the host port: %q, %v", got, err)
	}

	// The same port for another sandbox is taken.
	other := sbCfg
	other.Metadata.Name, other.Metadata.UID = "clash", "uid-clash"
	if _, err := e.rt.RunPodSandbox(ctx, other); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("a second sandbox on the same host port: %v, want address already in use", err)
	}

	// A new runtime (agent restart) leaves it published, and stops it.
	rt2, err := process.New(process.Config{StateDir: e.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt2
	if got, err := get(); err != nil || got != "hello from server\n" {
		t.Errorf("through the host port after a restart: %q, %v", got, err)
	}
	if err := rt2.StopPodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "host port closed", func() error {
		if got, err := get(); err == nil {
			return fmt.Errorf("still answers %q", got)
		}
		return nil
	})
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

func TestHostNetwork(t *testing.T) {
	e := newEnv(t, process.Config{NodeIP: "127.0.0.1"})
	ctx := context.Background()
	cfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: "host", Namespace: "kube-system", UID: "uid-host"},
		LogDirectory: runtime.PodLogDirectory(e.logRoot, "kube-system", "host", "uid-host"),
		HostNetwork:  true,
	}
	sb, err := e.rt.RunPodSandbox(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sbs, err := e.rt.PodSandboxStatus(ctx, sb); err != nil || sbs.IP != "" || sbs.State != runtime.SandboxReady {
		t.Errorf("host-network sandbox = %+v, %v; want ready without an IP", sbs, err)
	}
	c := e.config("env", "")
	c.Command = []string{"sh", "-c", "echo $POD_IP $HOSTNAME"}
	id := e.start(sb, cfg, c)
	e.waitExited(id)
	if logs := e.logs(id, runtime.LogOptions{}); logs != "127.0.0.1 host\n" {
		t.Errorf("logs = %q, want the node IP and the pod name", logs)
	}
}

// TestRestart: a new Runtime over the same state directory sees the same
// sandboxes and containers, running ones still running with the same pid.
func TestRestart(t *testing.T) {
	e := newEnv(t, process.Config{})
	ctx := context.Background()
	sb, sbCfg := e.sandbox("restart")
	run := e.start(sb, sbCfg, e.config("run", "term"))
	done := e.start(sb, sbCfg, e.config("done", "exit", runtime.EnvVar{Name: "CODE", Value: "5"}))
	e.waitExited(done)
	e.waitLog(run, "waiting for SIGTERM")
	pid, err := e.rt.PID(run)
	if err != nil {
		t.Fatal(err)
	}
	sbs, err := e.rt.PodSandboxStatus(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}

	rt2, err := process.New(process.Config{StateDir: e.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rt2.PodSandboxStatus(ctx, sb); err != nil || got.IP != sbs.IP || got.State != runtime.SandboxReady || got.Metadata != sbCfg.Metadata {
		t.Errorf("sandbox after restart = %+v, %v; want %+v", got, err, sbs)
	}
	cs, err := rt2.ContainerStatus(ctx, run)
	if err != nil || cs.State != runtime.ContainerRunning || cs.Name != "run" || cs.StartedAt.IsZero() {
		t.Errorf("running container after restart = %+v, %v", cs, err)
	}
	if pid2, err := rt2.PID(run); err != nil || pid2 != pid {
		t.Errorf("pid after restart = %d, %v; want %d", pid2, err, pid)
	}
	if cs, err := rt2.ContainerStatus(ctx, done); err != nil || cs.State != runtime.ContainerExited || cs.ExitCode != 5 {
		t.Errorf("exited container after restart = %+v, %v", cs, err)
	}
	// A new sandbox does not get an IP in use.
	sb3, _ := (&testEnv{t: t, rt: rt2, logRoot: e.logRoot}).sandbox("after")
	if s3, err := rt2.PodSandboxStatus(ctx, sb3); err != nil || s3.IP == sbs.IP {
		t.Errorf("sandbox made after restart = %+v, %v; IP must differ from %s", s3, err, sbs.IP)
	}
	// The new runtime stops it, and learns how it ended.
	if err := rt2.StopContainer(ctx, run, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if cs, err := rt2.ContainerStatus(ctx, run); err != nil || cs.ExitCode != 0 || cs.Reason != runtime.ReasonCompleted {
		t.Errorf("stopped after restart = %+v, %v", cs, err)
	}
	e.rt = rt2 // cleanup through the runtime that knows the new sandbox
}

// TestUnknownExit: a container whose process and shim both died unseen has
// exited with reason Unknown.
func TestUnknownExit(t *testing.T) {
	e := newEnv(t, process.Config{})
	sb, sbCfg := e.sandbox("unknown")
	id := e.start(sb, sbCfg, e.config("victim", "ignore"))
	pid, err := e.rt.PID(id)
	if err != nil {
		t.Fatal(err)
	}
	var started struct{ ShimPID int }
	b, err := os.ReadFile(filepath.Join(e.stateDir, "sandboxes", string(sb), "containers", string(id), "started.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jsonUnmarshal(b, &started); err != nil || started.ShimPID == 0 {
		t.Fatalf("started.json %s: %v", b, err)
	}
	// The shim first, so that nobody records the exit.
	if err := syscall.Kill(started.ShimPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cs := e.waitExited(id)
	if cs.Reason != process.ReasonUnknown || cs.ExitCode != 137 || cs.FinishedAt.IsZero() {
		t.Errorf("status = %+v, want Unknown, 137", cs)
	}
}

// TestSurvivesAgentExit: containers started by a runtime in another
// process keep running, and logging, after that process exits.
func TestSurvivesAgentExit(t *testing.T) {
	stateDir, logDir := t.TempDir(), t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=agent", "AGENT_STATE="+stateDir, "AGENT_LOGS="+logDir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agent: %v: %s", err, out)
	}
	var sb runtime.SandboxID
	var id runtime.ContainerID
	if _, err := fmt.Sscan(string(out), &sb, &id); err != nil {
		t.Fatalf("agent output %q: %v", out, err)
	}
	e := newEnv(t, process.Config{StateDir: stateDir})
	if cs := e.status(id); cs.State != runtime.ContainerRunning || cs.SandboxID != sb {
		t.Fatalf("container of the exited agent = %+v", cs)
	}
	// Its output keeps reaching the log though the agent is gone.
	count := func() int { return strings.Count(e.logs(id, runtime.LogOptions{}), "tick") }
	n := count()
	eventually(t, 30*time.Second, "log grows", func() error {
		if c := count(); c <= n+3 {
			return fmt.Errorf("%d lines, had %d", c, n)
		}
		return nil
	})
	if err := e.rt.StopContainer(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
	if cs := e.status(id); cs.State != runtime.ContainerExited || cs.ExitCode != 137 {
		t.Errorf("after stop = %+v, want exit 137 recorded by the shim", cs)
	}
	// The shim's parent is init now, which reaps it when it gets to it;
	// until then its pod cgroup is busy, and removing it is retried later,
	// here by a new runtime.
	if err := e.rt.RemovePodSandbox(context.Background(), sb); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the pod cgroup is removed", func() error {
		if _, err := process.New(process.Config{StateDir: stateDir}); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(stateDir, "stale-cgroups.json"))
		if err == nil && strings.TrimSpace(string(b)) != "null" {
			return fmt.Errorf("cgroups left: %s", b)
		}
		return nil
	})
}

// agentProgram is the other process of TestSurvivesAgentExit.
func agentProgram() int {
	rt, err := process.New(process.Config{StateDir: os.Getenv("AGENT_STATE")})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ctx := context.Background()
	sbCfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: "agent", Namespace: "default", UID: "uid-agent"},
		LogDirectory: runtime.PodLogDirectory(os.Getenv("AGENT_LOGS"), "default", "agent", "uid-agent"),
	}
	sb, err := rt.RunPodSandbox(ctx, sbCfg)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	exe, _ := os.Executable()
	id, err := rt.CreateContainer(ctx, sb, sbCfg, runtime.ContainerConfig{
		Name: "tick", Command: []string{exe}, Env: []runtime.EnvVar{{Name: modeEnv, Value: "tick"}},
		LogPath: runtime.ContainerLogPath("tick", 0),
	})
	if err == nil {
		err = rt.StartContainer(ctx, id)
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(sb, id)
	return 0
}

func TestStats(t *testing.T) {
	for _, noCgroups := range []bool{false, true} {
		t.Run(fmt.Sprintf("noCgroups=%v", noCgroups), func(t *testing.T) {
			e := newEnv(t, process.Config{NoCgroups: noCgroups})
			if !noCgroups && !e.rt.Cgroups() {
				t.Skip("no cgroups here (not root?): covered by noCgroups=true")
			}
			ctx := context.Background()
			sb, sbCfg := e.sandbox("stats")
			idle := e.start(sb, sbCfg, e.config("idle", "ignore"))
			busy := e.start(sb, sbCfg, e.config("busy", "busy"))
			eventually(t, 30*time.Second, "busy container uses CPU and memory", func() error {
				st, err := e.rt.ContainerStats(ctx, busy)
				if err != nil {
					return err
				}
				if st.ID != busy || st.Timestamp.IsZero() || st.CPUUsageCoreNanoSeconds < 200_000_000 || st.MemoryWorkingSetBytes == 0 {
					return fmt.Errorf("stats %+v, want 200ms CPU and some memory", st)
				}
				return nil
			})
			idleStats, err := e.rt.ContainerStats(ctx, idle)
			if err != nil {
				t.Fatal(err)
			}
			busyStats, err := e.rt.ContainerStats(ctx, busy)
			if err != nil {
				t.Fatal(err)
			}
			if idleStats.MemoryWorkingSetBytes == 0 || idleStats.CPUUsageCoreNanoSeconds >= busyStats.CPUUsageCoreNanoSeconds {
				t.Errorf("idle %+v vs busy %+v: want memory in use and less CPU than busy", idleStats, busyStats)
			}
			if err := e.rt.StopContainer(ctx, busy, 0); err != nil {
				t.Fatal(err)
			}
			if st, err := e.rt.ContainerStats(ctx, busy); err != nil || st.CPUUsageCoreNanoSeconds != 0 || st.MemoryWorkingSetBytes != 0 {
				t.Errorf("stats of an exited container = %+v, %v; want zero", st, err)
			}
		})
	}
}

// requireCgroups skips (or with DROVER_E2E=1 fails) a test that needs the
// runtime to have cgroups.
func requireCgroups(t *testing.T, rt *process.Runtime) {
	t.Helper()
	if rt.Cgroups() {
		return
	}
	if os.Getenv("DROVER_E2E") == "1" {
		t.Fatal("DROVER_E2E=1 but the process runtime has no cgroups (needs root and cgroup v1 cpu, cpuacct, memory)")
	}
	t.Skip("skipping: no cgroups (needs root and cgroup v1 cpu, cpuacct, memory)")
}

func TestCgroupLimits(t *testing.T) {
	e := newEnv(t, process.Config{CgroupRoot: "drover-process-test"})
	requireCgroups(t, e.rt)
	ctx := context.Background()
	sb, sbCfg := e.sandbox("limits")
	cfg := e.config("limited", "ignore")
	cfg.Resources = runtime.Resources{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimitBytes: 256 << 20}
	id := e.start(sb, sbCfg, cfg)
	pid, err := e.rt.PID(id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"cpu":    {"cpu.shares": "256", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"},
		"memory": {"memory.limit_in_bytes": strconv.Itoa(256 << 20)},
	}
	for ctrl, files := range want {
		dir := cgroupOf(t, pid, ctrl)
		if !strings.Contains(dir, "drover-process-test/"+string(sb)+"/"+string(id)) {
			t.Errorf("%s cgroup of the process = %s, want the container's", ctrl, dir)
		}
		for f, v := range files {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil || strings.TrimSpace(string(b)) != v {
				t.Errorf("%s = %q, %v; want %s", f, b, err, v)
			}
		}
	}

	// Going over the memory limit gets the container OOM-killed.
	hog := e.config("hog", "hog")
	hog.Resources = runtime.Resources{MemoryLimitBytes: 64 << 20}
	hid := e.start(sb, sbCfg, hog)
	if cs := e.waitExited(hid); cs.Reason != runtime.ReasonOOMKilled || cs.ExitCode != 137 {
		t.Errorf("memory hog = %+v, want OOMKilled, 137", cs)
	}

	// Removing the sandbox removes its cgroups.
	podDir := filepath.Dir(cgroupOf(t, pid, "memory"))
	t.Cleanup(func() {
		for _, ctrl := range []string{"cpu", "cpuacct", "memory"} {
			os.Remove(filepath.Join(cgroupOf(t, os.Getpid(), ctrl), "drover-process-test"))
		}
	})
	if err := e.rt.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(podDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod cgroup %s after removal: %v, want gone", podDir, err)
	}
}

// TestMounts: as root, containers see their mounts (an emptyDir shared by
// two containers, a read-only one) in mount namespaces of their own; the
// host sees only the mount point.
func TestMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("DROVER_E2E") == "1" {
			t.Fatal("DROVER_E2E=1 but not root: mounts need root")
		}
		t.Skip("skipping: mounts need root")
	}
	e := newEnv(t, process.Config{})
	ctx := context.Background()
	sb, sbCfg := e.sandbox("mounts")
	shared, readOnly := t.TempDir(), t.TempDir()
	mnt := filepath.Join(t.TempDir(), "shared") // does not exist on the host
	ro := filepath.Join(t.TempDir(), "ro")
	mounts := []runtime.Mount{{ContainerPath: mnt, HostPath: shared}, {ContainerPath: ro, HostPath: readOnly, ReadOnly: true}}
	sh := func(name, script string) runtime.ContainerConfig {
		c := e.config(name, "")
		c.Command = []string{"sh", "-c", script}
		c.Env = append(c.Env, runtime.EnvVar{Name: "MNT", Value: mnt}, runtime.EnvVar{Name: "RO", Value: ro})
		c.Mounts = mounts
		return c
	}

	writer := e.start(sb, sbCfg, sh("writer", `echo "hello from $NAME" > $MNT/file && ! touch $RO/file 2>/dev/null`))
	if cs := e.waitExited(writer); cs.ExitCode != 0 {
		t.Fatalf("writer = %+v, logs %q", cs, e.logs(writer, runtime.LogOptions{}))
	}
	reader := e.start(sb, sbCfg, sh("reader", `cat $MNT/file; sleep 1000`))
	e.waitLog(reader, "hello from writer")
	if b, err := os.ReadFile(filepath.Join(shared, "file")); err != nil || string(b) != "hello from writer\n" {
		t.Errorf("host path holds %q, %v", b, err)
	}
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 0 {
		t.Errorf("the host's mount point %s = %v, %v; want an empty directory", mnt, entries, err)
	}
	res, err := e.rt.ExecSync(ctx, reader, []string{"cat", filepath.Join(mnt, "file")}, 10*time.Second)
	if err != nil || res.ExitCode != 0 || string(res.Stdout) != "hello from writer\n" {
		t.Errorf("ExecSync cat = %+v, %v", res, err)
	}
}

// cgroupOf returns the directory of pid's cgroup for controller ctrl,
// assuming the hierarchy is mounted at /sys/fs/cgroup/<ctrl> (as here).
func cgroupOf(t *testing.T, pid int, ctrl string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ","+ctrl+",") {
			return filepath.Join("/sys/fs/cgroup", parts[1], parts[2])
		}
	}
	t.Fatalf("no %s cgroup in %s", ctrl, b)
	return ""
}

// BenchmarkStartContainer measures StartContainer: from the call to the
// process running (shim started, process forked and recorded).
func BenchmarkStartContainer(b *testing.B) {
	for _, noCgroups := range []bool{false, true} {
		b.Run(fmt.Sprintf("noCgroups=%v", noCgroups), func(b *testing.B) {
			benchmarkStart(b, process.Config{NoCgroups: noCgroups})
		})
	}
}

func benchmarkStart(b *testing.B, rtCfg process.Config) {
	e := newEnv(b, rtCfg)
	ctx := context.Background()
	sb, sbCfg := e.sandbox("bench")
	cfg := e.config("sleep", "")
	cfg.Command = []string{"sleep", "1000"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg.Attempt = uint32(i)
		id, err := e.rt.CreateContainer(ctx, sb, sbCfg, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := e.rt.StartContainer(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := e.rt.RemoveContainer(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
