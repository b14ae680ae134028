package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/drover/drover/internal/runtime"
)

// Reasons the process runtime gives beyond those of package runtime.
const (
	// ReasonStartError: the process could not be started (no such
	// executable, bad working directory, ...), exit code 128, as
	// containerd reports it.
	ReasonStartError = "StartError"
	// ReasonUnknown: the process ended while no runtime was watching and
	// its shim is gone too, so how it ended is unknown. The exit code is
	// then 137, as the kubelet reports a container it cannot find.
	ReasonUnknown = "Unknown"
)

// unknownExitCode is the exit code reported with ReasonUnknown.
const unknownExitCode = 137

// startErrorExitCode is the exit code reported with ReasonStartError.
const startErrorExitCode = 128

// defaultPath is the PATH containers get unless their env sets one (the
// one Docker and containerd give containers).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// startTimeout bounds the wait for a shim to report, when ctx has no
// deadline.
const startTimeout = 30 * time.Second

// killTimeout bounds the wait for a killed container to be seen exited.
const killTimeout = 10 * time.Second

// containerEnv is a container's environment: PATH and HOSTNAME defaults,
// then the config's variables (later ones win), then POD_IP unless the
// config sets it. The agent's own environment is not passed on.
func containerEnv(config []runtime.EnvVar, hostname, podIP string) []string {
	var names []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			names = append(names, k)
		}
		vals[k] = v
	}
	set("PATH", defaultPath)
	set("HOSTNAME", hostname)
	for _, e := range config {
		set(e.Name, e.Value)
	}
	if _, ok := vals["POD_IP"]; !ok {
		set("POD_IP", podIP)
	}
	out := make([]string, 0, len(names))
	for _, k := range names {
		out = append(out, k+"="+vals[k])
	}
	return out
}

// envValue returns the value of name in env (NAME=value entries).
func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds the executable file as a shell would with search path
// pathEnv; a name with a slash is taken relative to dir. It returns an
// absolute path.
func lookPath(file, pathEnv, dir string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fs.ErrPermission
		}
		return nil
	}
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := check(p); err != nil {
			return "", fmt.Errorf("executable %q: %w", file, err)
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, file)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH %q: %w", file, pathEnv, exec.ErrNotFound)
}

// CreateContainer records a container in a ready sandbox. Its command
// (and args) are what runs; the image is not used.
func (r *Runtime) CreateContainer(_ context.Context, sid runtime.SandboxID, sandboxConfig runtime.PodSandboxConfig, config runtime.ContainerConfig) (runtime.ContainerID, error) {
	what := fmt.Sprintf("create container %s attempt %d in sandbox %s", config.Name, config.Attempt, sid)
	if len(config.Command) == 0 {
		return "", fmt.Errorf("process: %s: no command: the process runtime runs the container's command and args on the host and does not use its image (%q)", what, config.Image)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[sid]
	if !ok {
		return "", fmt.Errorf("process: %s: %w", what, runtime.ErrNotFound)
	}
	if !s.rec.Ready {
		return "", fmt.Errorf("process: %s: the sandbox is not ready", what)
	}
	for _, c := range r.containers {
		if c.rec.SandboxID == sid && c.rec.Name == config.Name && c.rec.Attempt == config.Attempt {
			return "", fmt.Errorf("process: %s: container %s has the same name and attempt", what, c.rec.ID)
		}
	}
	id := runtime.ContainerID(newID())
	dir := filepath.Join(s.dir, containersDir, string(id))
	rec := containerRecord{
		ID:          id,
		SandboxID:   sid,
		Name:        config.Name,
		Attempt:     config.Attempt,
		Image:       config.Image,
		CreatedAt:   time.Now(),
		Labels:      config.Labels,
		Annotations: config.Annotations,
		Argv:        append(append([]string(nil), config.Command...), config.Args...),
		WorkingDir:  config.WorkingDir,
		Mounts:      config.Mounts,
		Resources:   config.Resources,
	}
	podIP := s.rec.IP
	if s.rec.HostNetwork {
		podIP = r.cfg.NodeIP
	}
	rec.Env = containerEnv(config.Env, s.rec.Hostname, podIP)
	if rec.WorkingDir == "" {
		rec.WorkingDir = filepath.Join(dir, workDir)
	}
	if sandboxConfig.LogDirectory != "" && config.LogPath != "" {
		rec.LogPath = filepath.Join(sandboxConfig.LogDirectory, config.LogPath)
	}
	for _, d := range s.rec.CgroupDirs {
		rec.CgroupDirs = append(rec.CgroupDirs, filepath.Join(d, string(id)))
	}
	if err := os.MkdirAll(filepath.Join(dir, workDir), 0o755); err != nil {
		return "", fmt.Errorf("process: %s: %w", what, err)
	}
	if err := writeJSON(filepath.Join(dir, containerFile), rec); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	r.containers[id] = &container{rec: rec, dir: dir}
	return id, nil
}

// state is the container's state from what is known. The caller holds
// r.mu and has called refresh.
func (c *container) state() runtime.ContainerState {
	switch {
	case c.rec.Exited:
		return runtime.ContainerExited
	case c.started != nil:
		return runtime.ContainerRunning
	}
	return runtime.ContainerCreated
}

// refresh brings c up to date with the files its shim writes: started
// once started.json exists, exited once exit.json does, or once both the
// shim and the process are gone without one (reason Unknown). The caller
// holds r.mu.
func (r *Runtime) refresh(c *container) {
	if c.rec.Exited || c.starting {
		return
	}
	if c.started == nil {
		var st startedRecord
		if err := readJSON(filepath.Join(c.dir, startedFile), &st); err != nil {
			return // not started
		}
		c.started = &st
		c.rec.StartedAt = st.StartedAt
	}
	var ex exitRecord
	err := readJSON(filepath.Join(c.dir, exitFile), &ex)
	if err != nil {
		if alive(c.started.ShimPID, c.started.ShimStart) || alive(c.started.PID, c.started.PIDStart) {
			return // running
		}
		// Both gone: the shim writes exit.json before it exits, so
		// reading it now cannot race with the write.
		err = readJSON(filepath.Join(c.dir, exitFile), &ex)
	}
	c.rec.Exited = true
	switch {
	case err != nil:
		c.rec.ExitCode, c.rec.Reason, c.rec.FinishedAt = unknownExitCode, ReasonUnknown, time.Now()
		c.rec.Message = "the process ended while no runtime was watching and its shim is gone: how it ended is unknown"
	case ex.OOMKilled:
		c.rec.ExitCode, c.rec.Reason, c.rec.FinishedAt = ex.ExitCode, runtime.ReasonOOMKilled, ex.FinishedAt
	case ex.ExitCode == 0:
		c.rec.ExitCode, c.rec.Reason, c.rec.FinishedAt = 0, runtime.ReasonCompleted, ex.FinishedAt
	default:
		c.rec.ExitCode, c.rec.Reason, c.rec.FinishedAt = ex.ExitCode, runtime.ReasonError, ex.FinishedAt
		if ex.Signal != "" {
			c.rec.Message = "killed by signal: " + ex.Signal
		}
	}
	if err := writeJSON(filepath.Join(c.dir, containerFile), c.rec); err != nil {
		r.log.Warn("process runtime: record container exit", "container", c.rec.ID, "err", err)
	}
}

// listed is the container as ListContainers returns it. The caller holds
// r.mu and has called refresh.
func (c *container) listed() runtime.Container {
	return runtime.Container{
		ID:          c.rec.ID,
		SandboxID:   c.rec.SandboxID,
		Name:        c.rec.Name,
		Attempt:     c.rec.Attempt,
		Image:       c.rec.Image,
		State:       c.state(),
		CreatedAt:   c.rec.CreatedAt,
		Labels:      maps.Clone(c.rec.Labels),
		Annotations: maps.Clone(c.rec.Annotations),
	}
}

// lookup returns container id, refreshed. The caller holds r.mu.
func (r *Runtime) lookup(id runtime.ContainerID, what string) (*container, error) {
	c, ok := r.containers[id]
	if !ok {
		return nil, fmt.Errorf("process: %s container %s: %w", what, id, runtime.ErrNotFound)
	}
	r.refresh(c)
	return c, nil
}

// StartContainer starts the container's shim, which starts the process,
// and returns once the process runs.
func (r *Runtime) StartContainer(ctx context.Context, id runtime.ContainerID) error {
	r.mu.Lock()
	c, err := r.lookup(id, "start")
	if err != nil {
		r.mu.Unlock()
		return err
	}
	if c.starting || c.state() != runtime.ContainerCreated {
		r.mu.Unlock()
		return fmt.Errorf("process: start container %s: it is %v, not created", id, c.state())
	}
	if !r.sandboxReady(c.rec.SandboxID) {
		r.mu.Unlock()
		return fmt.Errorf("process: start container %s: its sandbox %s is not ready", id, c.rec.SandboxID)
	}
	c.starting = true
	rec := c.rec
	r.mu.Unlock()

	startErr := r.start(ctx, c.dir, rec)

	r.mu.Lock()
	defer r.mu.Unlock()
	c.starting = false
	if startErr != nil {
		c.rec.Exited, c.rec.ExitCode, c.rec.Reason, c.rec.Message = true, startErrorExitCode, ReasonStartError, startErr.Error()
		c.rec.StartedAt, c.rec.FinishedAt = time.Now(), time.Now()
		if err := writeJSON(filepath.Join(c.dir, containerFile), c.rec); err != nil {
			r.log.Warn("process runtime: record start error", "container", id, "err", err)
		}
		return fmt.Errorf("process: start container %s: %w", id, startErr)
	}
	r.refresh(c)
	if err := writeJSON(filepath.Join(c.dir, containerFile), c.rec); err != nil {
		return err
	}
	if !r.sandboxReady(c.rec.SandboxID) {
		// The sandbox was stopped while this container started.
		r.mu.Unlock()
		err := r.StopContainer(ctx, id, 0)
		r.mu.Lock()
		return fmt.Errorf("process: start container %s: its sandbox was stopped meanwhile (%v)", id, err)
	}
	return nil
}

// sandboxReady reports whether sandbox id exists and is ready. The caller
// holds r.mu.
func (r *Runtime) sandboxReady(id runtime.SandboxID) bool {
	s, ok := r.sandboxes[id]
	return ok && s.rec.Ready
}

// start runs the shim for container rec (state directory dir) and waits
// for its report.
func (r *Runtime) start(ctx context.Context, dir string, rec containerRecord) error {
	argv0, err := lookPath(rec.Argv[0], envValue(rec.Env, "PATH"), rec.WorkingDir)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(rec.WorkingDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("working directory %s: not a directory (%v)", rec.WorkingDir, err)
	}
	var shimDirs []string
	if len(rec.CgroupDirs) > 0 {
		if err := createCgroup(rec.CgroupDirs); err != nil {
			return err
		}
		if err := setLimits(rec.CgroupDirs, rec.Resources); err != nil {
			return err
		}
		if r.cg != nil {
			shimDirs, _ = r.cg.dirs(".")
		}
	}
	spec := shimSpec{
		Mounts:         r.mounts(rec),
		Argv:           append([]string{argv0}, rec.Argv[1:]...),
		Env:            rec.Env,
		WorkingDir:     rec.WorkingDir,
		LogPath:        rec.LogPath,
		CgroupDirs:     rec.CgroupDirs,
		ShimCgroupDirs: shimDirs,
	}
	if err := writeJSON(filepath.Join(dir, specFile), spec); err != nil {
		return err
	}
	shimLog, err := os.OpenFile(filepath.Join(dir, shimLogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("shim log: %w", err)
	}
	defer shimLog.Close()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("shim pipe: %w", err)
	}
	defer reportR.Close()
	cmd := &exec.Cmd{
		Path:       r.exe,
		Args:       []string{r.exe},
		Env:        []string{shimEnv + "=" + dir},
		Dir:        "/",
		Stdout:     shimLog,
		Stderr:     shimLog,
		ExtraFiles: []*os.File{reportW}, // fd 3 = shimFD
		// Its own session: not in the agent's process group, so signals
		// for the agent (a terminal's ^C, a group kill) do not reach it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return fmt.Errorf("start shim: %w", err)
	}
	// Reap the shim when it exits; after an agent restart init does.
	go cmd.Wait()

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(startTimeout)
	}
	reportR.SetReadDeadline(deadline)
	report, err := io.ReadAll(reportR)
	if err != nil {
		// Give up on this start: kill the shim, and the process if it
		// got as far as starting one.
		cmd.Process.Kill()
		var st startedRecord
		if readJSON(filepath.Join(dir, startedFile), &st) == nil {
			killGroup(st.PID, st.PIDStart, syscall.SIGKILL)
			os.Remove(filepath.Join(dir, startedFile))
		}
		return fmt.Errorf("waiting for the shim: %w", err)
	}
	if !bytes.Equal(report, []byte("ok")) {
		if len(report) == 0 {
			report = []byte("the shim exited without a report (see " + filepath.Join(dir, shimLogFile) + ")")
		}
		return errors.New(string(report))
	}
	return nil
}

// StopContainer sends SIGTERM to the container's process group, waits up
// to timeout for the process to exit, then sends SIGKILL.
func (r *Runtime) StopContainer(ctx context.Context, id runtime.ContainerID, timeout time.Duration) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	r.refresh(c)
	if c.state() != runtime.ContainerRunning {
		r.mu.Unlock()
		return nil
	}
	st := *c.started
	r.mu.Unlock()

	if timeout > 0 {
		if err := killGroup(st.PID, st.PIDStart, syscall.SIGTERM); err != nil {
			return fmt.Errorf("process: stop container %s: %w", id, err)
		}
		if r.waitExited(ctx, c, timeout) {
			return nil
		}
	}
	if err := killGroup(st.PID, st.PIDStart, syscall.SIGKILL); err != nil {
		return fmt.Errorf("process: stop container %s: %w", id, err)
	}
	if !r.waitExited(ctx, c, killTimeout) {
		if ctx.Err() != nil {
			return fmt.Errorf("process: stop container %s: %w", id, ctx.Err())
		}
		return fmt.Errorf("process: stop container %s: still running %v after SIGKILL", id, killTimeout)
	}
	return nil
}

// waitExited polls until c is no longer running, timeout passes or ctx is
// done, and reports whether it stopped running.
func (r *Runtime) waitExited(ctx context.Context, c *container, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	interval := time.Millisecond
	for {
		r.mu.Lock()
		r.refresh(c)
		running := c.state() == runtime.ContainerRunning
		r.mu.Unlock()
		if !running {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-time.After(interval):
		}
		interval = min(2*interval, 50*time.Millisecond)
	}
}

// RemoveContainer kills the container if it runs and removes its cgroup
// and state (not its log, which belongs to the pod's log directory).
func (r *Runtime) RemoveContainer(ctx context.Context, id runtime.ContainerID) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	starting := ok && c.starting
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if starting {
		return fmt.Errorf("process: remove container %s: it is starting", id)
	}
	if err := r.StopContainer(ctx, id, 0); err != nil {
		return fmt.Errorf("process: remove container %s: %w", id, err)
	}
	r.mu.Lock()
	delete(r.containers, id)
	r.mu.Unlock()
	r.dropCgroup(c.rec.CgroupDirs)
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("process: remove container %s: %w", id, err)
	}
	return nil
}

// ListContainers lists the containers matching filter.
func (r *Runtime) ListContainers(_ context.Context, filter runtime.ContainerFilter) ([]runtime.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.Container
	for _, c := range r.containers {
		if filter.ID != "" && c.rec.ID != filter.ID || filter.SandboxID != "" && c.rec.SandboxID != filter.SandboxID {
			continue // skip refreshing what cannot match
		}
		r.refresh(c)
		if l := c.listed(); matchContainer(filter, l) {
			out = append(out, l)
		}
	}
	return out, nil
}

// ContainerStatus reports a container.
func (r *Runtime) ContainerStatus(_ context.Context, id runtime.ContainerID) (runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup(id, "status of")
	if err != nil {
		return runtime.ContainerStatus{}, err
	}
	return runtime.ContainerStatus{
		Container:  c.listed(),
		StartedAt:  c.rec.StartedAt,
		FinishedAt: c.rec.FinishedAt,
		ExitCode:   c.rec.ExitCode,
		Reason:     c.rec.Reason,
		Message:    c.rec.Message,
		LogPath:    c.rec.LogPath,
	}, nil
}

// PID returns the pid of a running container's process (the leader of its
// process group), for tests and diagnostics.
func (r *Runtime) PID(id runtime.ContainerID) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup(id, "pid of")
	if err != nil {
		return 0, err
	}
	if c.state() != runtime.ContainerRunning {
		return 0, fmt.Errorf("process: pid of container %s: it is %v", id, c.state())
	}
	return c.started.PID, nil
}

// ContainerStats samples the container's cgroup, or without one sums
// /proc over its process group.
func (r *Runtime) ContainerStats(_ context.Context, id runtime.ContainerID) (runtime.ContainerStats, error) {
	r.mu.Lock()
	c, err := r.lookup(id, "stats of")
	if err != nil {
		r.mu.Unlock()
		return runtime.ContainerStats{}, err
	}
	running := c.state() == runtime.ContainerRunning
	dirs := c.rec.CgroupDirs
	var pid int
	if running {
		pid = c.started.PID
	}
	r.mu.Unlock()

	out := runtime.ContainerStats{ID: id, Timestamp: time.Now()}
	if !running {
		return out, nil
	}
	var cpu, mem uint64
	if len(dirs) > 0 {
		cpu, mem, err = cgroupUsage(dirs)
	} else {
		cpu, mem, err = groupUsage(pid)
	}
	if err != nil {
		return runtime.ContainerStats{}, fmt.Errorf("process: stats of container %s: %w", id, err)
	}
	out.CPUUsageCoreNanoSeconds, out.MemoryWorkingSetBytes = cpu, mem
	return out, nil
}

// ContainerLogs reads the container's CRI log file.
func (r *Runtime) ContainerLogs(ctx context.Context, id runtime.ContainerID, opts runtime.LogOptions) (io.ReadCloser, error) {
	r.mu.Lock()
	c, err := r.lookup(id, "logs of")
	var path string
	if err == nil {
		path = c.rec.LogPath
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("process: logs of container %s: it was created without a log path", id)
	}
	exited := func(context.Context) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		c, ok := r.containers[id]
		if !ok {
			return true
		}
		r.refresh(c)
		return c.state() == runtime.ContainerExited
	}
	rc, err := runtime.OpenLog(ctx, path, opts, exited)
	if err != nil {
		return nil, fmt.Errorf("process: logs of container %s: %w", id, err)
	}
	return rc, nil
}

// ExecSync runs cmd on the host with the container's environment, working
// directory and cgroup, in a process group of its own that is killed when
// timeout passes.
func (r *Runtime) ExecSync(ctx context.Context, id runtime.ContainerID, cmd []string, timeout time.Duration) (runtime.ExecResult, error) {
	r.mu.Lock()
	c, err := r.lookup(id, "exec in")
	var rec containerRecord
	if err == nil {
		rec = c.rec
		if c.state() != runtime.ContainerRunning {
			err = fmt.Errorf("process: exec in container %s: it is %v, not running", id, c.state())
		}
	}
	r.mu.Unlock()
	if err != nil {
		return runtime.ExecResult{}, err
	}
	if len(cmd) == 0 {
		return runtime.ExecResult{}, fmt.Errorf("process: exec in container %s: no command", id)
	}
	argv0, err := lookPath(cmd[0], envValue(rec.Env, "PATH"), rec.WorkingDir)
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("process: exec in container %s: %w", id, err)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var stdout, stderr bytes.Buffer
	x := exec.CommandContext(ctx, argv0, cmd[1:]...)
	x.Args[0] = cmd[0]
	x.Env, x.Dir = rec.Env, rec.WorkingDir
	x.Stdout, x.Stderr = &stdout, &stderr
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if mounts := r.mounts(rec); len(mounts) > 0 {
		// The same bind mounts in a mount namespace of its own show the
		// same files as the container's.
		spec := filepath.Join(c.dir, "exec-"+newID()+".json")
		if err := writeJSON(spec, shimSpec{Argv: append([]string{argv0}, cmd[1:]...), Env: rec.Env, WorkingDir: rec.WorkingDir, Mounts: mounts}); err != nil {
			return runtime.ExecResult{}, fmt.Errorf("process: exec in container %s: %w", id, err)
		}
		defer os.Remove(spec)
		if err := initStage(x, spec); err != nil {
			return runtime.ExecResult{}, fmt.Errorf("process: exec in container %s: %w", id, err)
		}
	}
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGKILL) }
	x.WaitDelay = time.Second
	if err = x.Start(); err == nil {
		// Into the container's cgroup, for its limits and accounting;
		// what the command forks before this line escapes them.
		if len(rec.CgroupDirs) > 0 {
			if err := joinCgroup(rec.CgroupDirs, x.Process.Pid); err != nil {
				r.log.Debug("process runtime: exec outside the container's cgroup", "container", id, "err", err)
			}
		}
		err = x.Wait()
	}
	res := runtime.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if ctx.Err() != nil {
		return res, fmt.Errorf("process: exec in container %s: %w", id, ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = int32(ee.ExitCode())
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int32(ws.Signal())
		}
	default:
		return res, fmt.Errorf("process: exec in container %s: %w", id, err)
	}
	return res, nil
}

// mounts returns the container's mounts if this runtime can make them, and
// otherwise none (saying so once).
func (r *Runtime) mounts(rec containerRecord) []runtime.Mount {
	if len(rec.Mounts) == 0 {
		return nil
	}
	if !r.canMount {
		r.noMounts.Do(func() {
			r.log.Warn("process runtime: not root: volume mounts are not made, containers see the host's files at their mount paths", "container", rec.ID)
		})
		return nil
	}
	return rec.Mounts
}
