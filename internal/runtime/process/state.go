package process

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/drover/drover/internal/runtime"
)

// Files in StateDir:
//
//	ipam.json                                   the pod IP counter
//	stale-cgroups.json                          cgroups to remove once not busy
//	sandboxes/<sandbox>/sandbox.json            sandboxRecord (runtime)
//	sandboxes/<sandbox>/ports.json, ports.log   the port forwarder's spec and log
//	sandboxes/<sandbox>/containers/<ctr>/
//	    container.json                          containerRecord (runtime)
//	    spec.json                               shimSpec (runtime, at start)
//	    started.json                            startedRecord (shim)
//	    exit.json                               exitRecord (shim)
//	    shim.log                                the shim's own errors
//	    work/                                   default working directory
const (
	ipamFile         = "ipam.json"
	staleCgroupsFile = "stale-cgroups.json"
	sandboxesDir     = "sandboxes"
	sandboxFile      = "sandbox.json"
	containersDir    = "containers"
	containerFile    = "container.json"
	specFile         = "spec.json"
	startedFile      = "started.json"
	exitFile         = "exit.json"
	shimLogFile      = "shim.log"
	workDir          = "work"
)

// sandboxRecord is a sandbox as persisted.
type sandboxRecord struct {
	ID          runtime.SandboxID
	Metadata    runtime.PodSandboxMetadata
	CreatedAt   time.Time
	Labels      map[string]string `json:",omitempty"`
	Annotations map[string]string `json:",omitempty"`
	Hostname    string
	HostNetwork bool `json:",omitempty"`
	// Ready is false once stopped.
	Ready bool
	// IP is the pod IP; empty with the host network or once stopped.
	IP string `json:",omitempty"`
	// CgroupDirs are the pod's cgroup directories, one per hierarchy,
	// or empty without cgroups.
	CgroupDirs []string `json:",omitempty"`
	// PortMappings are the published ports; PortsPID and PortsStart
	// identify the forwarder publishing them while the sandbox is ready.
	PortMappings []runtime.PortMapping `json:",omitempty"`
	PortsPID     int                   `json:",omitempty"`
	PortsStart   uint64                `json:",omitempty"`
}

// containerRecord is a container as persisted by the runtime. Whether it
// runs is in the files its shim writes (startedRecord, exitRecord); once
// the runtime has seen it end, the outcome is copied here (Exited).
type containerRecord struct {
	ID          runtime.ContainerID
	SandboxID   runtime.SandboxID
	Name        string
	Attempt     uint32
	Image       string `json:",omitempty"`
	CreatedAt   time.Time
	Labels      map[string]string `json:",omitempty"`
	Annotations map[string]string `json:",omitempty"`
	// Argv is the command and its arguments; Env the environment
	// (NAME=value); WorkingDir where it runs.
	Argv       []string
	Env        []string
	WorkingDir string
	// LogPath is the absolute log file, or empty for no log.
	LogPath    string          `json:",omitempty"`
	Mounts     []runtime.Mount `json:",omitempty"`
	Resources  runtime.Resources
	CgroupDirs []string `json:",omitempty"`

	// Exited is set once the container has ended (or failed to start)
	// and the runtime has recorded how.
	Exited     bool      `json:",omitempty"`
	StartedAt  time.Time `json:",omitzero"`
	FinishedAt time.Time `json:",omitzero"`
	ExitCode   int32     `json:",omitempty"`
	Reason     string    `json:",omitempty"`
	Message    string    `json:",omitempty"`
}

// shimSpec is what the shim runs: written by the runtime before it starts
// the shim, read by the shim.
type shimSpec struct {
	Argv       []string
	Env        []string
	WorkingDir string
	// LogPath is the CRI log file to append to, or empty to discard the
	// output.
	LogPath string `json:",omitempty"`
	// CgroupDirs are the container's cgroups; ShimCgroupDirs where the
	// shim itself stays (the runtime's own cgroups).
	CgroupDirs     []string `json:",omitempty"`
	ShimCgroupDirs []string `json:",omitempty"`
	// Mounts, when any, make the process start through the init stage
	// in a mount namespace of its own (see runInit).
	Mounts []runtime.Mount `json:",omitempty"`
}

// startedRecord is written by the shim once the container process runs.
type startedRecord struct {
	// PID is the container's process, leader of its process group;
	// PIDStart its start time (clock ticks since boot, /proc/<pid>/stat).
	PID      int
	PIDStart uint64
	// ShimPID and ShimStart identify the shim the same way.
	ShimPID   int
	ShimStart uint64
	StartedAt time.Time
}

// exitRecord is written by the shim when the container process has ended.
type exitRecord struct {
	// ExitCode is the process's exit status, or 128 plus the signal
	// that killed it.
	ExitCode   int32
	Signal     string `json:",omitempty"`
	OOMKilled  bool   `json:",omitempty"`
	FinishedAt time.Time
}

// ipamRecord persists the pod IP counter.
type ipamRecord struct {
	Next uint64
}

// newID returns a random 32-hex-digit identifier.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("process: random id: %v", err)) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// writeJSON writes v to path atomically (a temporary file renamed over it),
// so a reader or a crash never sees half a file.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("process: encode %s: %w", filepath.Base(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("process: write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("process: write state: %w", err)
	}
	return nil
}

// readJSON reads path into v. A missing file is reported as
// os.ErrNotExist (test with errors.Is).
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("process: decode %s: %w", path, err)
	}
	return nil
}

// loadState reads every sandbox and container record under stateDir.
// Directories without a record (left by a crash mid-create) are skipped.
func loadState(stateDir string) (map[runtime.SandboxID]*sandbox, map[runtime.ContainerID]*container, error) {
	sbs := map[runtime.SandboxID]*sandbox{}
	ctrs := map[runtime.ContainerID]*container{}
	root := filepath.Join(stateDir, sandboxesDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return sbs, ctrs, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("process: read state: %w", err)
	}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		var rec sandboxRecord
		if err := readJSON(filepath.Join(dir, sandboxFile), &rec); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, nil, err
		}
		sbs[rec.ID] = &sandbox{rec: rec, dir: dir}
		cents, err := os.ReadDir(filepath.Join(dir, containersDir))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("process: read state: %w", err)
		}
		for _, ce := range cents {
			cdir := filepath.Join(dir, containersDir, ce.Name())
			var crec containerRecord
			if err := readJSON(filepath.Join(cdir, containerFile), &crec); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				return nil, nil, err
			}
			ctrs[crec.ID] = &container{rec: crec, dir: cdir}
		}
	}
	return sbs, ctrs, nil
}
