package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/internal/runtime"
)

// Name is the runtime's name, the agent's --runtime value.
const Name = "process"

// RuntimeName and RuntimeVersion are what Version reports.
const (
	RuntimeName    = "drover-process"
	RuntimeVersion = "0.1.0"
)

// Config configures a Runtime.
type Config struct {
	// StateDir holds the runtime's state: sandbox and container records,
	// the files each container's shim writes, and the default working
	// directories. A new Runtime on the same StateDir finds everything the
	// previous one made. Required.
	StateDir string
	// Logger receives the runtime's own messages; nil discards them.
	Logger *slog.Logger
	// CgroupRoot is the cgroup (v1) pods are put under, one cgroup per pod
	// and one per container below it. A relative path is taken under the
	// runtime's own cgroup in each hierarchy, an absolute one from the
	// hierarchy's root. Empty means DefaultCgroupRoot. Where cgroups cannot
	// be created (not root, no cgroup v1 cpu, cpuacct and memory
	// hierarchies), containers run without limits and stats come from
	// /proc.
	CgroupRoot string
	// NoCgroups runs containers without cgroups even where the runtime
	// may create them (stats then come from /proc).
	NoCgroups bool
	// PodSubnet is where pod IPs are allocated: a prefix inside
	// 127.0.0.0/8. Empty means DefaultPodSubnet. Several agents on one
	// host need disjoint subnets (e.g. 127.1.0.0/16, 127.2.0.0/16).
	PodSubnet string
	// NodeIP is the POD_IP of host-network pods; empty means 127.0.0.1.
	NodeIP string
}

// Runtime runs containers as host processes. It is safe for concurrent use.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	exe    string // the executable re-run as each container's shim
	subnet netip.Prefix
	cg     *cgroups // nil: no cgroups
	// canMount: volume mounts can be made (root); noMounts says once
	// that they are not.
	canMount bool
	noMounts sync.Once

	mu         sync.Mutex
	sandboxes  map[runtime.SandboxID]*sandbox
	containers map[runtime.ContainerID]*container
	ipNext     uint64
	// staleCgroups are cgroup directories whose removal failed, retried
	// by dropCgroup.
	staleCgroups []string
}

// sandbox is a sandbox in memory.
type sandbox struct {
	rec sandboxRecord
	dir string
}

// container is a container in memory.
type container struct {
	rec containerRecord
	dir string
	// started is the shim's started.json, once read.
	started *startedRecord
	// starting is true while StartContainer runs.
	starting bool
}

// The abilities Runtime has.
var (
	_ runtime.Runtime        = (*Runtime)(nil)
	_ runtime.Execer         = (*Runtime)(nil)
	_ runtime.StatusReporter = (*Runtime)(nil)
)

// New returns a Runtime keeping its state in cfg.StateDir, with the
// sandboxes and containers a previous Runtime left there.
func New(cfg Config) (*Runtime, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("process: no state directory")
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = DefaultCgroupRoot
	}
	if cfg.PodSubnet == "" {
		cfg.PodSubnet = DefaultPodSubnet
	}
	if cfg.NodeIP == "" {
		cfg.NodeIP = "127.0.0.1"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	subnet, err := parsePodSubnet(cfg.PodSubnet)
	if err != nil {
		return nil, err
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("process: state directory: %w", err)
	}
	cfg.StateDir = stateDir
	if err := os.MkdirAll(filepath.Join(stateDir, sandboxesDir), 0o700); err != nil {
		return nil, fmt.Errorf("process: state directory: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("process: find own executable for the shim: %w", err)
	}
	sbs, ctrs, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	var ipam ipamRecord
	if err := readJSON(filepath.Join(stateDir, ipamFile), &ipam); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	r := &Runtime{cfg: cfg, log: log, exe: exe, subnet: subnet, sandboxes: sbs, containers: ctrs, ipNext: ipam.Next, canMount: canMount()}
	if cfg.NoCgroups {
		log.Info("process runtime: cgroups disabled by configuration")
	} else if cg, err := newCgroups(cfg.CgroupRoot); err != nil {
		log.Warn("process runtime: cgroups unavailable: containers run without CPU and memory limits, stats come from /proc", "err", err)
	} else {
		r.cg = cg
	}
	if err := readJSON(filepath.Join(stateDir, staleCgroupsFile), &r.staleCgroups); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	r.dropCgroup(nil)
	log.Info("process runtime ready", "stateDir", stateDir, "podSubnet", subnet, "cgroups", r.cg != nil,
		"sandboxes", len(sbs), "containers", len(ctrs))
	return r, nil
}

// Cgroups reports whether containers get cgroups (limits and cgroup stats).
func (r *Runtime) Cgroups() bool { return r.cg != nil }

// Name returns "process".
func (r *Runtime) Name() string { return Name }

// Version reports RuntimeName and RuntimeVersion.
func (r *Runtime) Version(context.Context) (runtime.VersionInfo, error) {
	return runtime.VersionInfo{RuntimeName: RuntimeName, RuntimeVersion: RuntimeVersion}, nil
}

// Status reports the runtime ready while its state directory is usable;
// the network (loopback addresses) is always ready.
func (r *Runtime) Status(context.Context) (runtime.RuntimeStatus, error) {
	st := runtime.RuntimeStatus{RuntimeReady: true, NetworkReady: true}
	if err := syscall.Access(r.cfg.StateDir, 7 /* rwx */); err != nil {
		st.RuntimeReady = false
		st.Message = fmt.Sprintf("RuntimeReady: state directory %s: %v", r.cfg.StateDir, err)
	}
	return st, nil
}

// RunPodSandbox records a sandbox, allocates its IP and creates its cgroup.
func (r *Runtime) RunPodSandbox(_ context.Context, config runtime.PodSandboxConfig) (runtime.SandboxID, error) {
	m := config.Metadata
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sandboxes {
		if s.rec.Metadata == m {
			return "", fmt.Errorf("process: run sandbox %s/%s attempt %d: sandbox %s has the same metadata", m.Namespace, m.Name, m.Attempt, s.rec.ID)
		}
	}
	id := runtime.SandboxID(newID())
	rec := sandboxRecord{
		ID:          id,
		Metadata:    m,
		CreatedAt:   time.Now(),
		Labels:      config.Labels,
		Annotations: config.Annotations,
		Hostname:    config.Hostname,
		HostNetwork: config.HostNetwork,
		Ready:       true,
	}
	if rec.Hostname == "" {
		rec.Hostname = m.Name
	}
	next := r.ipNext
	if !config.HostNetwork {
		ip, n, err := allocateIP(r.subnet, r.ipNext, r.ipInUse)
		if err != nil {
			return "", err
		}
		rec.IP, next = ip.String(), n
	}
	dir := filepath.Join(r.cfg.StateDir, sandboxesDir, string(id))
	if err := os.MkdirAll(filepath.Join(dir, containersDir), 0o700); err != nil {
		return "", fmt.Errorf("process: run sandbox: %w", err)
	}
	if r.cg != nil {
		p := config.CgroupParent
		if p == "" {
			p = filepath.Join(r.cfg.CgroupRoot, string(id))
		}
		dirs, err := r.cg.dirs(p)
		if err == nil {
			err = createCgroup(dirs)
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("process: run sandbox %s/%s: %w", m.Namespace, m.Name, err)
		}
		rec.CgroupDirs = dirs
	}
	if tcp, other := tcpMappings(config.PortMappings); !config.HostNetwork && len(tcp) > 0 {
		if len(other) > 0 {
			r.log.Warn("process runtime: only TCP host ports are published", "pod", m.Namespace+"/"+m.Name, "unpublished", other)
		}
		pid, start, err := r.startPorts(dir, rec.IP, tcp)
		if err != nil {
			removeCgroupDirs(rec.CgroupDirs)
			os.RemoveAll(dir)
			return "", fmt.Errorf("process: run sandbox %s/%s: %w", m.Namespace, m.Name, err)
		}
		rec.PortMappings, rec.PortsPID, rec.PortsStart = tcp, pid, start
	}
	if err := writeJSON(filepath.Join(dir, sandboxFile), rec); err != nil {
		stopPorts(rec.PortsPID, rec.PortsStart)
		removeCgroupDirs(rec.CgroupDirs)
		os.RemoveAll(dir)
		return "", err
	}
	if next != r.ipNext {
		if err := writeJSON(filepath.Join(r.cfg.StateDir, ipamFile), ipamRecord{Next: next}); err != nil {
			return "", err
		}
		r.ipNext = next
	}
	r.sandboxes[id] = &sandbox{rec: rec, dir: dir}
	r.log.Debug("sandbox started", "sandbox", id, "pod", m.Namespace+"/"+m.Name, "ip", rec.IP)
	return id, nil
}

// ipInUse reports whether a sandbox has ip. The caller holds r.mu.
func (r *Runtime) ipInUse(ip netip.Addr) bool {
	s := ip.String()
	for _, sb := range r.sandboxes {
		if sb.rec.IP == s {
			return true
		}
	}
	return false
}

// sandboxContainers lists the IDs of the containers in sandbox id.
func (r *Runtime) sandboxContainers(id runtime.SandboxID) []runtime.ContainerID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.ContainerID
	for cid, c := range r.containers {
		if c.rec.SandboxID == id {
			out = append(out, cid)
		}
	}
	return out
}

// StopPodSandbox kills the sandbox's containers and releases its IP.
func (r *Runtime) StopPodSandbox(ctx context.Context, id runtime.SandboxID) error {
	r.mu.Lock()
	_, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	var errs []error
	for _, cid := range r.sandboxContainers(id) {
		if err := r.StopContainer(ctx, cid, 0); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("process: stop sandbox %s: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok || (!s.rec.Ready && s.rec.IP == "" && s.rec.PortsPID == 0) {
		return nil
	}
	stopPorts(s.rec.PortsPID, s.rec.PortsStart)
	s.rec.Ready, s.rec.IP, s.rec.PortsPID, s.rec.PortsStart = false, "", 0, 0
	return writeJSON(filepath.Join(s.dir, sandboxFile), s.rec)
}

// RemovePodSandbox stops and removes the sandbox, its containers, its
// cgroup and its state.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id runtime.SandboxID) error {
	if err := r.StopPodSandbox(ctx, id); err != nil {
		return err
	}
	for _, cid := range r.sandboxContainers(id) {
		if err := r.RemoveContainer(ctx, cid); err != nil {
			return fmt.Errorf("process: remove sandbox %s: %w", id, err)
		}
	}
	r.mu.Lock()
	s, ok := r.sandboxes[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	r.dropCgroup(s.rec.CgroupDirs)
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("process: remove sandbox %s: %w", id, err)
	}
	r.mu.Lock()
	delete(r.sandboxes, id)
	r.mu.Unlock()
	return nil
}

// dropCgroup removes cgroup directories (children before parents). Those
// still busy (a shim whose agent has gone is a zombie until init reaps it,
// and keeps its pod cgroup busy until then) are remembered, in the state
// directory too, and retried by later calls.
func (r *Runtime) dropCgroup(dirs []string) {
	var busy []string
	for _, d := range dirs {
		if removeCgroup(d, 20) != nil {
			busy = append(busy, d)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var left []string
	for _, d := range r.staleCgroups {
		if removeCgroup(d, 1) != nil && !slices.Contains(left, d) {
			left = append(left, d)
		}
	}
	left = append(left, busy...)
	if slices.Equal(left, r.staleCgroups) {
		return
	}
	if len(busy) > 0 {
		r.log.Debug("process runtime: cgroups still busy, removal retried later", "cgroups", busy)
	}
	if err := writeJSON(filepath.Join(r.cfg.StateDir, staleCgroupsFile), left); err != nil {
		r.log.Warn("process runtime: record busy cgroups", "err", err)
	}
	r.staleCgroups = left
}

// PodSandboxStatus reports a sandbox and its IP.
func (r *Runtime) PodSandboxStatus(_ context.Context, id runtime.SandboxID) (runtime.PodSandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return runtime.PodSandboxStatus{}, fmt.Errorf("process: sandbox %s: %w", id, runtime.ErrNotFound)
	}
	return runtime.PodSandboxStatus{PodSandbox: s.listed(), IP: s.rec.IP}, nil
}

// listed is the sandbox as ListPodSandboxes returns it.
func (s *sandbox) listed() runtime.PodSandbox {
	state := runtime.SandboxNotReady
	if s.rec.Ready {
		state = runtime.SandboxReady
	}
	return runtime.PodSandbox{
		ID:          s.rec.ID,
		Metadata:    s.rec.Metadata,
		State:       state,
		CreatedAt:   s.rec.CreatedAt,
		Labels:      maps.Clone(s.rec.Labels),
		Annotations: maps.Clone(s.rec.Annotations),
	}
}

// ListPodSandboxes lists the sandboxes matching filter.
func (r *Runtime) ListPodSandboxes(_ context.Context, filter runtime.PodSandboxFilter) ([]runtime.PodSandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.PodSandbox
	for _, s := range r.sandboxes {
		if p := s.listed(); matchSandbox(filter, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// matchSandbox reports whether s passes filter f.
func matchSandbox(f runtime.PodSandboxFilter, s runtime.PodSandbox) bool {
	return (f.ID == "" || f.ID == s.ID) &&
		(f.State == nil || *f.State == s.State) &&
		hasLabels(s.Labels, f.Labels)
}

// matchContainer reports whether c passes filter f.
func matchContainer(f runtime.ContainerFilter, c runtime.Container) bool {
	return (f.ID == "" || f.ID == c.ID) &&
		(f.SandboxID == "" || f.SandboxID == c.SandboxID) &&
		(f.State == nil || *f.State == c.State) &&
		hasLabels(c.Labels, f.Labels)
}

// hasLabels reports whether labels holds every key of want with its value.
func hasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
