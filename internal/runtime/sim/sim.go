// Package sim is a runtime with no processes: sandboxes get an address from
// a fake range and containers are Running as soon as they start. Pod
// annotations (passed to the sandbox) script what happens next, so every
// path of the agent's pod life cycle can be driven without containers, and
// hundreds of simulated nodes fit in one process.
//
// Time is evaluated lazily: a container told to crash after 5s is seen as
// exited by the first call made 5s after it started. Nothing runs in the
// background, so an idle sim runtime costs only its memory.
//
//	rt := sim.New(sim.Config{Subnet: "10.88.1.0/24"})
//	agent.Run(ctx, agent.Config{Runtime: rt, ...})
//
// The annotations (on the pod; the agent passes pod annotations to the
// sandbox) are AnnotationReadyAfter, AnnotationNeverReady,
// AnnotationCrashAfter, AnnotationExitCode, AnnotationUnhealthyAfter,
// AnnotationCPUMillicores and AnnotationMemory.
package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/drover/drover/internal/runtime"
)

// Name is the runtime's name, the agent's --runtime value.
const Name = "sim"

// Annotations that script a simulated pod. Durations use Go syntax ("2s").
const (
	// AnnotationReadyAfter delays readiness probe success until the
	// container has run this long.
	AnnotationReadyAfter = "sim.drover.io/ready-after"
	// AnnotationNeverReady ("true") makes readiness probes always fail.
	AnnotationNeverReady = "sim.drover.io/never-ready"
	// AnnotationCrashAfter makes each container exit after running this
	// long, with AnnotationExitCode (default 1).
	AnnotationCrashAfter = "sim.drover.io/crash-after"
	// AnnotationExitCode is the exit code of a crash (0 simulates a
	// completed job).
	AnnotationExitCode = "sim.drover.io/exit-code"
	// AnnotationUnhealthyAfter makes liveness probes fail once the
	// container has run this long.
	AnnotationUnhealthyAfter = "sim.drover.io/unhealthy-after"
	// AnnotationCPUMillicores is the CPU each container uses while running,
	// in millicores, as ContainerStats reports it.
	AnnotationCPUMillicores = "sim.drover.io/cpu-millicores"
	// AnnotationMemory is each container's working set, a quantity ("64Mi").
	AnnotationMemory = "sim.drover.io/memory"
)

// Probe kinds ProbeResult answers.
const (
	ProbeReadiness = "readiness"
	ProbeLiveness  = "liveness"
	ProbeStartup   = "startup"
)

// Version is the simulated runtime's version.
const Version = "0.1.0"

// DefaultSubnet is where sandbox addresses come from by default.
const DefaultSubnet = "10.88.0.0/16"

// Config shapes a simulated runtime.
type Config struct {
	// Subnet is the CIDR sandbox IPs come from; default DefaultSubnet.
	// Give each simulated node its own.
	Subnet string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Runtime is a simulated runtime. It is safe for concurrent use.
type Runtime struct {
	now  func() time.Time
	base uint32 // first address of the subnet
	size uint32 // number of addresses in it

	mu         sync.Mutex
	seq        uint64
	next       uint32 // next address offset to try
	used       map[uint32]bool
	sandboxes  map[runtime.SandboxID]*sandbox
	containers map[runtime.ContainerID]*container
	// podSandboxes and podContainers index the same by their
	// runtime.LabelPodUID label: the agent lists one pod's sandboxes and
	// containers on every sync, and a scan of the whole node's cost a
	// simulated fleet a sixth of its CPU.
	podSandboxes  map[string]map[runtime.SandboxID]*sandbox
	podContainers map[string]map[runtime.ContainerID]*container
	// byMetadata indexes the sandboxes by their metadata, which is unique:
	// RunPodSandbox checks it, and a scan of the node's sandboxes made
	// starting a node's pods quadratic in their number.
	byMetadata map[runtime.PodSandboxMetadata]*sandbox
	status     runtime.RuntimeStatus
}

// The abilities Runtime has.
var (
	_ runtime.Runtime        = (*Runtime)(nil)
	_ runtime.Execer         = (*Runtime)(nil)
	_ runtime.StatusReporter = (*Runtime)(nil)
)

type sandbox struct {
	runtime.PodSandbox
	config runtime.PodSandboxConfig
	ip     uint32 // offset in the subnet, 0 for none
	// containers are the sandbox's containers (also in
	// Runtime.containers), so that what concerns one sandbox does not
	// scan every container of the node.
	containers map[runtime.ContainerID]*container
}

type container struct {
	status  runtime.ContainerStatus
	logPath string
	// logPending holds the log entries not yet in the file at logPath:
	// the file (and its directories) is only made when the log is first
	// read, as a fleet of thousands of simulated containers that nobody
	// reads the logs of otherwise spent a twentieth of its CPU in mkdir
	// and open.
	logPending []byte
	logFlushed bool
	script     script
}

// script is what the annotations ask of a container.
type script struct {
	readyAfter     time.Duration
	neverReady     bool
	crashAfter     time.Duration
	exitCode       int32
	unhealthyAfter time.Duration
	milliCPU       int64
	memory         int64
}

// parseScript reads the annotations; values that do not parse are ignored.
func parseScript(a map[string]string) script {
	s := script{exitCode: 1}
	dur := func(key string) time.Duration {
		d, _ := time.ParseDuration(a[key])
		return d
	}
	s.readyAfter = dur(AnnotationReadyAfter)
	s.crashAfter = dur(AnnotationCrashAfter)
	s.unhealthyAfter = dur(AnnotationUnhealthyAfter)
	s.neverReady = a[AnnotationNeverReady] == "true"
	if v, err := strconv.ParseInt(a[AnnotationExitCode], 10, 32); err == nil {
		s.exitCode = int32(v)
	}
	if v, err := strconv.ParseInt(a[AnnotationCPUMillicores], 10, 64); err == nil {
		s.milliCPU = v
	}
	if q, err := resource.ParseQuantity(a[AnnotationMemory]); err == nil {
		s.memory = q.Value()
	}
	return s
}

// New returns a simulated runtime. It panics if cfg.Subnet is not an IPv4
// CIDR with room for at least two addresses.
func New(cfg Config) *Runtime {
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	_, ipnet, err := net.ParseCIDR(cfg.Subnet)
	if err != nil || ipnet.IP.To4() == nil {
		panic(fmt.Sprintf("sim: subnet %q: want an IPv4 CIDR", cfg.Subnet))
	}
	ones, bits := ipnet.Mask.Size()
	size := uint32(1) << (bits - ones)
	if size < 4 {
		panic(fmt.Sprintf("sim: subnet %q is too small", cfg.Subnet))
	}
	return &Runtime{
		now:           cfg.Now,
		base:          binary.BigEndian.Uint32(ipnet.IP.To4()),
		size:          size,
		next:          2, // .0 is the network, .1 the gateway
		used:          map[uint32]bool{},
		sandboxes:     map[runtime.SandboxID]*sandbox{},
		containers:    map[runtime.ContainerID]*container{},
		podSandboxes:  map[string]map[runtime.SandboxID]*sandbox{},
		podContainers: map[string]map[runtime.ContainerID]*container{},
		byMetadata:    map[runtime.PodSandboxMetadata]*sandbox{},
		status:        runtime.RuntimeStatus{RuntimeReady: true, NetworkReady: true},
	}
}

// Name returns "sim".
func (r *Runtime) Name() string { return Name }

// Version reports "drover-sim" and Version.
func (r *Runtime) Version(context.Context) (runtime.VersionInfo, error) {
	return runtime.VersionInfo{RuntimeName: "drover-sim", RuntimeVersion: Version, APIVersion: "v1"}, nil
}

// Status reports the status set with SetStatus; ready by default.
func (r *Runtime) Status(context.Context) (runtime.RuntimeStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, nil
}

// SetStatus changes what Status reports, to simulate a runtime failure.
func (r *Runtime) SetStatus(s runtime.RuntimeStatus) {
	r.mu.Lock()
	r.status = s
	r.mu.Unlock()
}

// newID is the next ID: the sequence number in 16 hex digits.
func (r *Runtime) newID() string {
	r.seq++
	b := []byte("0000000000000000")
	h := strconv.AppendUint(nil, r.seq, 16)
	copy(b[max(len(b)-len(h), 0):], h)
	return string(b)
}

func (r *Runtime) allocIP() (uint32, error) {
	for range r.size {
		off := r.next
		r.next++
		if r.next >= r.size-1 { // skip the broadcast address
			r.next = 2
		}
		if !r.used[off] {
			r.used[off] = true
			return off, nil
		}
	}
	return 0, fmt.Errorf("sim: no free address in the subnet")
}

func (r *Runtime) ipString(off uint32) string {
	if off == 0 {
		return ""
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], r.base+off)
	return net.IP(b[:]).String()
}

// RunPodSandbox makes a ready sandbox with an address from the subnet
// (none with the host network).
func (r *Runtime) RunPodSandbox(_ context.Context, config runtime.PodSandboxConfig) (runtime.SandboxID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byMetadata[config.Metadata]; ok {
		return "", fmt.Errorf("sim: sandbox %s/%s attempt %d exists", config.Metadata.Namespace, config.Metadata.Name, config.Metadata.Attempt)
	}
	s := &sandbox{config: config, containers: map[runtime.ContainerID]*container{}}
	if !config.HostNetwork {
		ip, err := r.allocIP()
		if err != nil {
			return "", err
		}
		s.ip = ip
	}
	s.PodSandbox = runtime.PodSandbox{
		ID:          runtime.SandboxID(r.newID()),
		Metadata:    config.Metadata,
		State:       runtime.SandboxReady,
		CreatedAt:   r.now(),
		Labels:      maps.Clone(config.Labels),
		Annotations: maps.Clone(config.Annotations),
	}
	r.sandboxes[s.ID] = s
	r.byMetadata[s.Metadata] = s
	addToIndex(r.podSandboxes, s.Labels, s.ID, s)
	return s.ID, nil
}

// StopPodSandbox kills the sandbox's containers and releases its address.
func (r *Runtime) StopPodSandbox(_ context.Context, id runtime.SandboxID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil
	}
	now := r.now()
	for _, c := range s.containers {
		r.settle(c, now)
		r.exit(c, now, 137, runtime.ReasonError)
	}
	s.State = runtime.SandboxNotReady
	if s.ip != 0 {
		delete(r.used, s.ip)
		s.ip = 0
	}
	return nil
}

// RemovePodSandbox removes the sandbox and its containers.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id runtime.SandboxID) error {
	if err := r.StopPodSandbox(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil
	}
	for cid, c := range s.containers {
		delete(r.containers, cid)
		removeFromIndex(r.podContainers, c.status.Labels, cid)
	}
	delete(r.sandboxes, id)
	delete(r.byMetadata, s.Metadata)
	removeFromIndex(r.podSandboxes, s.Labels, id)
	return nil
}

// PodSandboxStatus reports a sandbox and its address.
func (r *Runtime) PodSandboxStatus(_ context.Context, id runtime.SandboxID) (runtime.PodSandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return runtime.PodSandboxStatus{}, fmt.Errorf("sim: sandbox %s: %w", id, runtime.ErrNotFound)
	}
	return runtime.PodSandboxStatus{PodSandbox: copySandbox(s.PodSandbox), IP: r.ipString(s.ip)}, nil
}

func copySandbox(s runtime.PodSandbox) runtime.PodSandbox {
	s.Labels = maps.Clone(s.Labels)
	s.Annotations = maps.Clone(s.Annotations)
	return s
}

// ListPodSandboxes lists the sandboxes matching filter.
func (r *Runtime) ListPodSandboxes(_ context.Context, filter runtime.PodSandboxFilter) ([]runtime.PodSandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.PodSandbox
	for _, s := range candidates(r.sandboxes, r.podSandboxes, filter.Labels) {
		if filter.ID != "" && s.ID != filter.ID ||
			filter.State != nil && s.State != *filter.State ||
			!hasLabels(s.Labels, filter.Labels) {
			continue
		}
		out = append(out, copySandbox(s.PodSandbox))
	}
	return out, nil
}

// candidates is what a list with this label filter looks through: the
// pod's entries of the index when the filter names a pod, else all.
func candidates[K comparable, V any](all map[K]V, byPod map[string]map[K]V, want map[string]string) map[K]V {
	if uid, ok := want[runtime.LabelPodUID]; ok {
		return byPod[uid]
	}
	return all
}

func addToIndex[K comparable, V any](byPod map[string]map[K]V, labels map[string]string, k K, v V) {
	uid, ok := labels[runtime.LabelPodUID]
	if !ok {
		return
	}
	m := byPod[uid]
	if m == nil {
		m = map[K]V{}
		byPod[uid] = m
	}
	m[k] = v
}

func removeFromIndex[K comparable, V any](byPod map[string]map[K]V, labels map[string]string, k K) {
	uid, ok := labels[runtime.LabelPodUID]
	if !ok {
		return
	}
	delete(byPod[uid], k)
	if len(byPod[uid]) == 0 {
		delete(byPod, uid)
	}
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// CreateContainer creates a container scripted by the sandbox's
// annotations.
func (r *Runtime) CreateContainer(_ context.Context, sb runtime.SandboxID, sandboxConfig runtime.PodSandboxConfig, config runtime.ContainerConfig) (runtime.ContainerID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[sb]
	if !ok {
		return "", fmt.Errorf("sim: create container %s: sandbox %s: %w", config.Name, sb, runtime.ErrNotFound)
	}
	if s.State != runtime.SandboxReady {
		return "", fmt.Errorf("sim: create container %s: sandbox %s is not ready", config.Name, sb)
	}
	for _, c := range s.containers {
		if c.status.Name == config.Name && c.status.Attempt == config.Attempt {
			return "", fmt.Errorf("sim: container %s attempt %d exists in sandbox %s", config.Name, config.Attempt, sb)
		}
	}
	c := &container{script: parseScript(sandboxConfig.Annotations)}
	if sandboxConfig.LogDirectory != "" && config.LogPath != "" {
		c.logPath = filepath.Join(sandboxConfig.LogDirectory, config.LogPath)
	}
	c.status = runtime.ContainerStatus{
		Container: runtime.Container{
			ID:          runtime.ContainerID(r.newID()),
			SandboxID:   sb,
			Name:        config.Name,
			Attempt:     config.Attempt,
			Image:       config.Image,
			ImageRef:    config.Image,
			State:       runtime.ContainerCreated,
			CreatedAt:   r.now(),
			Labels:      maps.Clone(config.Labels),
			Annotations: maps.Clone(config.Annotations),
		},
		LogPath: c.logPath,
	}
	r.containers[c.status.ID] = c
	s.containers[c.status.ID] = c
	addToIndex(r.podContainers, c.status.Labels, c.status.ID, c)
	return c.status.ID, nil
}

// StartContainer starts a created container; it runs at once.
func (r *Runtime) StartContainer(_ context.Context, id runtime.ContainerID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return fmt.Errorf("sim: start container %s: %w", id, runtime.ErrNotFound)
	}
	if c.status.State != runtime.ContainerCreated {
		return fmt.Errorf("sim: start container %s: it is %s", id, c.status.State)
	}
	now := r.now()
	c.status.State = runtime.ContainerRunning
	c.status.StartedAt = now
	r.log(c, now, fmt.Sprintf("sim: container %s attempt %d started", c.status.Name, c.status.Attempt))
	return nil
}

// settle moves a running container to exited if its script says it has
// crashed by now.
func (r *Runtime) settle(c *container, now time.Time) {
	if c.status.State != runtime.ContainerRunning || c.script.crashAfter <= 0 {
		return
	}
	at := c.status.StartedAt.Add(c.script.crashAfter)
	if now.Before(at) {
		return
	}
	reason := runtime.ReasonError
	if c.script.exitCode == 0 {
		reason = runtime.ReasonCompleted
	}
	r.exit(c, at, c.script.exitCode, reason)
}

// exit ends a running or created container at the given time.
func (r *Runtime) exit(c *container, at time.Time, code int32, reason string) {
	if c.status.State == runtime.ContainerExited {
		return
	}
	c.status.State = runtime.ContainerExited
	c.status.FinishedAt = at
	c.status.ExitCode = code
	c.status.Reason = reason
	if c.status.StartedAt.IsZero() {
		return
	}
	r.log(c, at, fmt.Sprintf("sim: container %s attempt %d exited with code %d", c.status.Name, c.status.Attempt, code))
}

// log appends one line to the container's log, if it has one: to the file
// once the log has been read, else to what is pending for it.
func (r *Runtime) log(c *container, at time.Time, line string) {
	if c.logPath == "" {
		return
	}
	entry := runtime.AppendLogEntry(nil, runtime.LogEntry{Time: at, Stream: runtime.Stdout, Content: []byte(line)})
	if !c.logFlushed {
		c.logPending = append(c.logPending, entry...)
		return
	}
	appendFile(c.logPath, entry)
}

// flushLog writes the container's pending log entries to its log file,
// making the file and its directories; from then on log appends to it.
func (r *Runtime) flushLog(c *container) error {
	if c.logFlushed {
		return nil
	}
	if err := appendFile(c.logPath, c.logPending); err != nil {
		return fmt.Errorf("sim: container %s log: %w", c.status.ID, err)
	}
	c.logPending, c.logFlushed = nil, true
	return nil
}

// appendFile appends b to the file at path, making it and its directories
// if need be.
func appendFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// MakesLogDirectory reports that the runtime makes a sandbox's log
// directory itself, when a log in it is first read: the agent need not
// make it for every sandbox.
func (r *Runtime) MakesLogDirectory() bool { return true }

// StopContainer stops a container: with a grace period it exits 0 as an
// application handling SIGTERM would, without one it is killed (137).
func (r *Runtime) StopContainer(_ context.Context, id runtime.ContainerID, timeout time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil
	}
	now := r.now()
	r.settle(c, now)
	if timeout > 0 {
		r.exit(c, now, 0, runtime.ReasonCompleted)
	} else {
		r.exit(c, now, 137, runtime.ReasonError)
	}
	return nil
}

// RemoveContainer removes a container.
func (r *Runtime) RemoveContainer(_ context.Context, id runtime.ContainerID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		delete(r.containers, id)
		if s, ok := r.sandboxes[c.status.SandboxID]; ok {
			delete(s.containers, id)
		}
		removeFromIndex(r.podContainers, c.status.Labels, id)
	}
	return nil
}

// ListContainers lists the containers matching filter.
func (r *Runtime) ListContainers(_ context.Context, filter runtime.ContainerFilter) ([]runtime.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var out []runtime.Container
	for _, c := range candidates(r.containers, r.podContainers, filter.Labels) {
		if filter.ID != "" && c.status.ID != filter.ID ||
			filter.SandboxID != "" && c.status.SandboxID != filter.SandboxID ||
			!hasLabels(c.status.Labels, filter.Labels) {
			continue
		}
		r.settle(c, now)
		if filter.State != nil && c.status.State != *filter.State {
			continue
		}
		ct := c.status.Container
		ct.Labels = maps.Clone(ct.Labels)
		ct.Annotations = maps.Clone(ct.Annotations)
		out = append(out, ct)
	}
	return out, nil
}

func (r *Runtime) get(id runtime.ContainerID) (*container, error) {
	c, ok := r.containers[id]
	if !ok {
		return nil, fmt.Errorf("sim: container %s: %w", id, runtime.ErrNotFound)
	}
	r.settle(c, r.now())
	return c, nil
}

// NextChange reports when a running container will next change state by
// itself: when AnnotationCrashAfter makes it exit. It is zero if the
// container does not run or its script lets it run for good. (What its
// probes answer changes too, with AnnotationReadyAfter and
// AnnotationUnhealthyAfter, but probes are asked on their own schedule.)
func (r *Runtime) NextChange(id runtime.ContainerID) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return time.Time{}
	}
	r.settle(c, r.now())
	if c.status.State != runtime.ContainerRunning || c.script.crashAfter <= 0 {
		return time.Time{}
	}
	return c.status.StartedAt.Add(c.script.crashAfter)
}

// ContainerStatus reports a container.
func (r *Runtime) ContainerStatus(_ context.Context, id runtime.ContainerID) (runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.get(id)
	if err != nil {
		return runtime.ContainerStatus{}, err
	}
	st := c.status
	st.Labels = maps.Clone(st.Labels)
	st.Annotations = maps.Clone(st.Annotations)
	return st, nil
}

// ContainerStats reports the CPU and memory the container's annotations
// ask for, accumulated over its running time.
func (r *Runtime) ContainerStats(_ context.Context, id runtime.ContainerID) (runtime.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.get(id)
	if err != nil {
		return runtime.ContainerStats{}, err
	}
	now := r.now()
	st := runtime.ContainerStats{ID: id, Timestamp: now}
	if c.status.StartedAt.IsZero() {
		return st, nil
	}
	end := now
	if c.status.State == runtime.ContainerExited {
		end = c.status.FinishedAt
	}
	ran := end.Sub(c.status.StartedAt)
	// millicores * 1e6 core-nanoseconds per second of running.
	st.CPUUsageCoreNanoSeconds = uint64(c.script.milliCPU) * uint64(ran.Nanoseconds()) / 1000
	if c.status.State == runtime.ContainerRunning {
		st.MemoryWorkingSetBytes = uint64(c.script.memory)
	}
	return st, nil
}

// ContainerLogs reads the lines the simulation wrote: one when the
// container started and one when it exited.
func (r *Runtime) ContainerLogs(ctx context.Context, id runtime.ContainerID, opts runtime.LogOptions) (io.ReadCloser, error) {
	r.mu.Lock()
	c, err := r.get(id)
	var path string
	if err == nil {
		path = c.logPath
		if path != "" {
			err = r.flushLog(c)
		}
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("sim: container %s logs: it was created without a log path", id)
	}
	exited := func(context.Context) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		c, err := r.get(id)
		return err != nil || c.status.State == runtime.ContainerExited
	}
	return runtime.OpenLog(ctx, path, opts, exited)
}

// ExecSync runs nothing: in a running container every command succeeds
// with no output.
func (r *Runtime) ExecSync(_ context.Context, id runtime.ContainerID, cmd []string, _ time.Duration) (runtime.ExecResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.get(id)
	if err != nil {
		return runtime.ExecResult{}, err
	}
	if c.status.State != runtime.ContainerRunning {
		return runtime.ExecResult{}, fmt.Errorf("sim: exec in container %s: it is %s", id, c.status.State)
	}
	return runtime.ExecResult{}, nil
}

// ProbeResult answers a probe of kind ProbeReadiness, ProbeLiveness or
// ProbeStartup for a container as its annotations script it, in place of
// the network or exec check the agent makes on other runtimes. A container
// that does not run fails every probe.
func (r *Runtime) ProbeResult(_ context.Context, id runtime.ContainerID, kind string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.get(id)
	if err != nil {
		return false, err
	}
	if c.status.State != runtime.ContainerRunning {
		return false, nil
	}
	ran := r.now().Sub(c.status.StartedAt)
	switch kind {
	case ProbeReadiness:
		return !c.script.neverReady && ran >= c.script.readyAfter, nil
	case ProbeLiveness:
		return c.script.unhealthyAfter <= 0 || ran < c.script.unhealthyAfter, nil
	}
	return true, nil
}
