// Package containerd runs Drover's own containerd as a child process, with
// a generated configuration, its own directories, socket and CNI network, so
// that the cri runtime has something to talk to on a machine where only the
// containerd, runc and CNI plugin packages are installed.
//
//	c, err := containerd.Start(ctx, containerd.Config{Dir: "/var/lib/drover/ctd", PodSubnet: "10.244.1.0/24"})
//	...
//	image.Import(ctx, c.Address(), pauseTarball) // before the first pod
//	rt, err := cri.New(ctx, c.Address())
//	...
//	c.Stop() // containers keep running under their shims
//
// Containers survive Stop: a containerd started again on the same Dir finds
// them, as the system containerd would. Teardown removes everything instead.
package containerd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/cri"
)

// How long Start waits for the CRI socket at most, and how long Stop waits
// for containerd to exit after SIGTERM.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// Containerd is a running containerd child process.
type Containerd struct {
	cfg    Config
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // its exit error, set before exited is closed

	stopOnce     sync.Once
	teardownOnce sync.Once
}

// Start writes the configuration under cfg.Dir, starts containerd and waits
// until its CRI service answers (or ctx ends, or 60 seconds pass). It fails
// if a containerd already answers on the socket.
func Start(ctx context.Context, cfg Config) (*Containerd, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		if cfg.Binary, err = Find(); err != nil {
			return nil, err
		}
	}
	if cfg.CNIBinDir == "" {
		if cfg.CNIBinDir, err = FindCNIBinDir(); err != nil {
			return nil, err
		}
	}
	if err := writeConfig(cfg); err != nil {
		return nil, err
	}
	if conn, err := net.DialTimeout("unix", cfg.socket(), time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("containerd: something already listens on %s", cfg.socket())
	}

	logFile, err := os.OpenFile(cfg.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("containerd: open log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(cfg.Binary,
		"--config", cfg.configFile(),
		"--root", cfg.root(),
		"--state", cfg.state(),
		"--address", cfg.socket())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a terminal's Ctrl-C goes to Drover,
		// which stops containerd in order.
		Setpgid: true,
		// Do not outlive Drover.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("containerd: start %s: %w", cfg.Binary, err)
	}
	c := &Containerd{cfg: cfg, cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// writeConfig creates the directories and writes config.toml and the CNI
// network list.
func writeConfig(cfg Config) error {
	for _, dir := range []string{cfg.Dir, cfg.root(), cfg.state(), cfg.cniConfDir(), cfg.ipamDir()} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	if err := os.WriteFile(cfg.configFile(), []byte(ConfigTOML(cfg)), 0o644); err != nil {
		return fmt.Errorf("containerd: write config: %w", err)
	}
	list, err := CNIConfList(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.cniConfDir(), "10-"+cfg.Network+".conflist"), list, 0o644); err != nil {
		return fmt.Errorf("containerd: write cni config: %w", err)
	}
	return nil
}

// waitReady polls the CRI service until it answers Version.
func (c *Containerd) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 2*time.Second)
		rt, err := cri.New(callCtx, c.cfg.socket())
		callCancel()
		if err == nil {
			rt.Close()
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("containerd: exited while starting (%v); log %s ends: %s", c.err, c.cfg.logFile(), c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("containerd: CRI socket %s not ready: %w (last error: %v); log ends: %s", c.cfg.socket(), ctx.Err(), err, c.logTail())
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of containerd's log, for error messages.
func (c *Containerd) logTail() string {
	b, err := os.ReadFile(c.cfg.logFile())
	if err != nil {
		return "(unreadable)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// Address is the containerd (and CRI) unix socket path.
func (c *Containerd) Address() string { return c.cfg.socket() }

// Config is the configuration in effect, defaults filled in.
func (c *Containerd) Config() Config { return c.cfg }

// LogFile is the file containerd's own output goes to.
func (c *Containerd) LogFile() string { return c.cfg.logFile() }

// PID is containerd's process ID.
func (c *Containerd) PID() int { return c.cmd.Process.Pid }

// Exited is closed when the containerd process has exited, for whatever
// reason; Err then says why.
func (c *Containerd) Exited() <-chan struct{} { return c.exited }

// Err is the process's exit error, valid once Exited is closed.
func (c *Containerd) Err() error {
	select {
	case <-c.exited:
		return c.err
	default:
		return nil
	}
}

// Stop stops containerd: SIGTERM, then SIGKILL after 10 seconds. Running
// containers are left to their shims. Stop is idempotent.
func (c *Containerd) Stop() {
	c.stopOnce.Do(func() {
		select {
		case <-c.exited:
			return
		default:
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(stopTimeout):
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
}

// Teardown removes everything this containerd made and stops it: every pod
// sandbox and container (through CRI, so that networks are released too;
// if containerd has died, a new one is started on the same directory for
// this), the shims, the mounts under Dir, the bridge, and Dir itself; any
// container left behind is killed with runc. Use it when the node is done
// for good, and in tests. It carries on past errors and returns them
// joined. Only the first call does anything.
func (c *Containerd) Teardown(ctx context.Context) error {
	var errs []error
	c.teardownOnce.Do(func() {
		select {
		case <-c.exited:
			// Dead: a fresh containerd on the same state can still
			// remove the pods properly.
			if again, err := Start(ctx, c.cfg); err == nil {
				errs = append(errs, again.removeAll(ctx))
				again.Stop()
			} else {
				errs = append(errs, fmt.Errorf("containerd: teardown: restart to remove pods: %w", err))
			}
		default:
			errs = append(errs, c.removeAll(ctx))
		}
		c.Stop()
		errs = append(errs, Purge(c.cfg))
	})
	return errors.Join(errs...)
}

// removeAll stops and removes every sandbox and container through CRI.
func (c *Containerd) removeAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rt, err := cri.New(ctx, c.cfg.socket())
	if err != nil {
		return fmt.Errorf("containerd: teardown: %w", err)
	}
	defer rt.Close()
	var errs []error
	sandboxes, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{})
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range sandboxes {
		if err := rt.StopPodSandbox(ctx, s.ID); err != nil {
			errs = append(errs, err)
		}
		if err := rt.RemovePodSandbox(ctx, s.ID); err != nil {
			errs = append(errs, err)
		}
	}
	containers, err := rt.ListContainers(ctx, runtime.ContainerFilter{})
	if err != nil {
		errs = append(errs, err)
	}
	for _, ctr := range containers {
		if err := rt.RemoveContainer(ctx, ctr.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Purge cleans up after a containerd for cfg that is no longer running (for
// instance one that crashed): it kills containers whose bundles are under
// cfg.Dir and the shims serving cfg's socket, unmounts everything under
// cfg.Dir, deletes the bridge and removes cfg.Dir. It returns the errors it
// met, joined; a missing piece is not an error.
func Purge(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, killContainers(cfg.Dir)...)
	errs = append(errs, killShims(cfg.socket())...)
	errs = append(errs, unmountUnder(cfg.Dir)...)
	if _, err := net.InterfaceByName(cfg.Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "delete", cfg.Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("containerd: delete bridge %s: %w: %s", cfg.Bridge, err, bytes.TrimSpace(out)))
		}
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		errs = append(errs, fmt.Errorf("containerd: remove %s: %w", cfg.Dir, err))
	}
	return errors.Join(errs...)
}

// runcRoot is where containerd's runc shim keeps runc state for the CRI
// namespace (the shim's default root, /run/containerd/runc/<namespace>).
const runcRoot = "/run/containerd/runc/k8s.io"

// killContainers kills and deletes, with runc, every container whose
// bundle lies under dir (so only this containerd's).
func killContainers(dir string) []error {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil
	}
	if _, err := os.Stat(runcRoot); err != nil {
		return nil
	}
	out, err := exec.Command(runc, "--root", runcRoot, "list", "--format", "json").Output()
	if err != nil {
		return []error{fmt.Errorf("containerd: runc list: %w", err)}
	}
	var list []struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return []error{fmt.Errorf("containerd: runc list: %w", err)}
	}
	var errs []error
	for _, ctr := range list {
		if !strings.HasPrefix(ctr.Bundle, dir+"/") {
			continue
		}
		exec.Command(runc, "--root", runcRoot, "kill", ctr.ID, "KILL").Run()
		if out, err := exec.Command(runc, "--root", runcRoot, "delete", "--force", ctr.ID).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("containerd: runc delete %s: %w: %s", ctr.ID, err, bytes.TrimSpace(out)))
		}
	}
	return errs
}

// killShims kills the containerd-shim processes started by the containerd
// on socket, found by the -address argument in their command line.
func killShims(socket string) []error {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return []error{fmt.Errorf("containerd: list processes: %w", err)}
	}
	var errs []error
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") || !hasArg(args, "-address", socket) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("containerd: kill shim %d: %w", pid, err))
		}
	}
	return errs
}

// hasArg reports whether args holds flag followed by value (or flag=value).
func hasArg(args []string, flag, value string) bool {
	for i, a := range args {
		if a == flag+"="+value || (a == flag && i+1 < len(args) && args[i+1] == value) {
			return true
		}
	}
	return false
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) []error {
	mounts, err := mountsUnder("/proc/self/mountinfo", dir)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("containerd: unmount %s: %w", m, err))
		}
	}
	return errs
}

// mountsUnder lists mount points at or below dir from a mountinfo file,
// longest path first so children go before their parents.
func mountsUnder(mountinfo, dir string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("containerd: read mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("containerd: read mounts: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
