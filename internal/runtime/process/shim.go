package process

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/drover/drover/internal/runtime"
)

// shimEnv is the environment variable that makes a binary importing this
// package act as a container's shim instead of itself: its value is the
// container's state directory. The runtime starts the shim by running its
// own executable again with only this variable set.
const shimEnv = "DROVER_PROCESS_SHIM"

// shimFD is the file descriptor on which the shim reports to the runtime
// that started it: "ok" once the container runs, or why it could not start.
const shimFD = 3

// drainTimeout bounds how long the shim copies output after the container
// process and its group have been killed: a process that left the group
// (setsid) may hold the pipes open for ever.
const drainTimeout = 2 * time.Second

func init() {
	if dir := os.Getenv(shimEnv); dir != "" {
		os.Exit(runShim(dir))
	}
	if spec := os.Getenv(initEnv); spec != "" {
		os.Exit(runInit(spec))
	}
	if spec := os.Getenv(portsEnv); spec != "" {
		os.Exit(runPorts(spec))
	}
}

// runShim runs the container whose state directory is dir, as described in
// the package documentation, and returns the shim's exit status.
func runShim(dir string) int {
	// The report pipe must not leak into the container's process, or the
	// runtime would not see it closed.
	syscall.CloseOnExec(shimFD)
	report := os.NewFile(shimFD, "report")
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "drover process shim %s: %v\n", dir, err)
		if report != nil {
			fmt.Fprint(report, err.Error())
			report.Close()
		}
		return 1
	}
	// The shim lives in its own session; a hangup of whatever terminal
	// started the agent must not end it.
	signal.Ignore(syscall.SIGHUP)

	var spec shimSpec
	if err := readJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return fail(err)
	}
	if len(spec.Argv) == 0 {
		return fail(errors.New("no command"))
	}
	out, err := openLog(spec.LogPath)
	if err != nil {
		return fail(err)
	}
	defer out.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}

	// Orphans of the container (children its process leaves behind) are
	// reparented to the shim, which reaps them, so no zombie keeps the
	// container's cgroup busy waiting for init.
	if err := setChildSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "drover process shim %s: %v\n", dir, err)
	}
	// Start the process inside the container's cgroup: the shim joins it,
	// forks (the child inherits the cgroup from its first instruction on,
	// so nothing it forks escapes), and goes back to the runtime's cgroup
	// (like containerd's shims, it is the runtime's overhead, not the
	// pod's, and it does not keep the pod's cgroup busy while it exits).
	if len(spec.CgroupDirs) > 0 {
		if err := joinCgroup(spec.CgroupDirs, os.Getpid()); err != nil {
			return fail(err)
		}
	}
	cmd := &exec.Cmd{
		Path:        spec.Argv[0],
		Args:        spec.Argv,
		Env:         spec.Env,
		Dir:         spec.WorkingDir,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if len(spec.Mounts) > 0 {
		// Through the init stage, in a mount namespace of its own.
		if err := initStage(cmd, filepath.Join(dir, specFile)); err != nil {
			return fail(err)
		}
	}
	// Every child is reaped here (wait4 on SIGCHLD), the process and the
	// orphans it leaves, so none stays a zombie while the container runs.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	startErr := cmd.Start()
	if len(spec.ShimCgroupDirs) > 0 {
		if err := joinCgroup(spec.ShimCgroupDirs, os.Getpid()); err != nil {
			fmt.Fprintf(os.Stderr, "drover process shim %s: %v\n", dir, err)
		}
	}
	outW.Close()
	errW.Close()
	if startErr != nil {
		return fail(startErr)
	}
	startedAt := time.Now()
	pid := cmd.Process.Pid
	child, err := readProcStat(pid)
	if err != nil {
		cmd.Process.Kill()
		return fail(fmt.Errorf("read start time of %d: %w", pid, err))
	}
	self, err := readProcStat(os.Getpid())
	if err != nil {
		cmd.Process.Kill()
		return fail(fmt.Errorf("read own start time: %w", err))
	}
	rec := startedRecord{PID: pid, PIDStart: child.StartTime, ShimPID: os.Getpid(), ShimStart: self.StartTime, StartedAt: startedAt}
	if err := writeJSON(filepath.Join(dir, startedFile), rec); err != nil {
		cmd.Process.Kill()
		return fail(err)
	}
	if report != nil {
		fmt.Fprint(report, "ok")
		report.Close()
	}

	stdout := runtime.NewLogWriter(out, runtime.Stdout, nil)
	stderr := runtime.NewLogWriter(out, runtime.Stderr, nil)
	copied := make(chan struct{}, 2)
	go copyOutput(stdout, outR, copied)
	go copyOutput(stderr, errR, copied)

	ws := waitFor(pid, sigchld)
	finished := time.Now()
	// The container ends with its main process, as it does when the init
	// process of a container's PID namespace exits.
	killGroup(pid, child.StartTime, syscall.SIGKILL)
	deadline := time.After(drainTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	for n := 0; n < 2; {
		reapOrphans()
		select {
		case <-copied:
			n++
		case <-tick.C:
		case <-deadline:
			n = 2
		}
	}
	tick.Stop()
	reapOrphans()
	stdout.Close()
	stderr.Close()

	exit := exitRecord{FinishedAt: finished, ExitCode: int32(ws.ExitStatus())}
	if ws.Signaled() {
		exit.ExitCode = 128 + int32(ws.Signal())
		exit.Signal = ws.Signal().String()
		exit.OOMKilled = ws.Signal() == syscall.SIGKILL && oomKilled(spec.CgroupDirs)
	}
	if err := writeJSON(filepath.Join(dir, exitFile), exit); err != nil {
		fmt.Fprintf(os.Stderr, "drover process shim %s: %v\n", dir, err)
		return 1
	}
	return 0
}

// openLog opens the CRI log file for appending (creating its directory),
// or a writer that discards when path is empty.
func openLog(path string) (io.WriteCloser, error) {
	if path == "" {
		return nopCloser{io.Discard}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// copyOutput copies a container's output stream into its log writer until
// the stream ends, then signals done.
func copyOutput(w io.Writer, r *os.File, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	defer r.Close()
	io.Copy(w, r)
}

// prSetChildSubreaper is prctl's PR_SET_CHILD_SUBREAPER.
const prSetChildSubreaper = 36

// setChildSubreaper makes orphaned descendants of the shim its children.
func setChildSubreaper() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("become a subreaper: %w", errno)
	}
	return nil
}

// waitFor reaps children as SIGCHLD arrives until pid has exited, and
// returns its status.
func waitFor(pid int, sigchld <-chan os.Signal) syscall.WaitStatus {
	for {
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if p == pid {
				return ws
			}
			if p <= 0 || err != nil {
				break
			}
		}
		<-sigchld
	}
}

// reapOrphans reaps the shim's children that have exited, without waiting.
func reapOrphans() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// initStage turns cmd into a run of the init stage (see runInit) in a new
// mount namespace, which execs cmd's command after mounting what the spec
// at specPath asks for.
func initStage(cmd *exec.Cmd, specPath string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the init stage: %w", err)
	}
	cmd.Path = self
	cmd.Env = []string{initEnv + "=" + specPath}
	cmd.Dir = "/"
	cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNS
	return nil
}
