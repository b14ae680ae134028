package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is wrapped by errors from calls that name a sandbox, container
// or image the runtime does not know (test with errors.Is).
var ErrNotFound = errors.New("not found")

// Runtime runs pod sandboxes and their containers on one node.
//
// All methods are safe for concurrent use. Calls that create something are
// not idempotent: calling RunPodSandbox twice makes two sandboxes (or fails
// if a sandbox with the same metadata exists). Calls that stop or remove are
// idempotent: stopping or removing something that is already stopped or gone
// returns nil. Calls that read a single object by ID return an error wrapping
// [ErrNotFound] when it does not exist.
type Runtime interface {
	// Name is the runtime's short name, the value of the agent's --runtime
	// flag: "cri", "process" or "sim".
	Name() string

	// Version reports the runtime's name and version, as shown in the
	// node's status (containerRuntimeVersion "<RuntimeName>://<RuntimeVersion>").
	Version(ctx context.Context) (VersionInfo, error)

	// RunPodSandbox creates and starts a pod sandbox, including its network:
	// when it returns without error the sandbox is ready and has an IP
	// (unless it uses the host network). The metadata (name, namespace, UID,
	// attempt) must be unique among existing sandboxes.
	RunPodSandbox(ctx context.Context, config PodSandboxConfig) (SandboxID, error)

	// StopPodSandbox stops every container in the sandbox (forcibly, so
	// stop containers gracefully with StopContainer first), stops the
	// sandbox and releases its network. The sandbox stays listed, not
	// ready, until removed.
	StopPodSandbox(ctx context.Context, id SandboxID) error

	// RemovePodSandbox removes the sandbox and all its containers, stopping
	// them forcibly if they still run.
	RemovePodSandbox(ctx context.Context, id SandboxID) error

	// PodSandboxStatus reports one sandbox, including its IP.
	PodSandboxStatus(ctx context.Context, id SandboxID) (PodSandboxStatus, error)

	// ListPodSandboxes returns the sandboxes that match the filter, in no
	// particular order. The zero filter matches all.
	ListPodSandboxes(ctx context.Context, filter PodSandboxFilter) ([]PodSandbox, error)

	// CreateContainer creates a container in a ready sandbox without
	// starting it. sandboxConfig must be the configuration the sandbox was
	// run with (like the CRI, the runtime takes pod-level settings such as
	// the log directory from it and keeps no copy of its own). The container
	// metadata (name, attempt) must be unique in the sandbox.
	CreateContainer(ctx context.Context, sandbox SandboxID, sandboxConfig PodSandboxConfig, config ContainerConfig) (ContainerID, error)

	// StartContainer starts a created container. It returns once the
	// container's process runs (the process may exit at once afterwards).
	StartContainer(ctx context.Context, id ContainerID) error

	// StopContainer stops a running container: it sends the image's stop
	// signal (SIGTERM by default), waits up to timeout for the process to
	// exit, then kills it. A timeout of zero kills at once. The container
	// stays listed, exited, until removed.
	StopContainer(ctx context.Context, id ContainerID, timeout time.Duration) error

	// RemoveContainer removes a container, killing it first if it runs.
	RemoveContainer(ctx context.Context, id ContainerID) error

	// ListContainers returns the containers that match the filter, in no
	// particular order. The zero filter matches all.
	ListContainers(ctx context.Context, filter ContainerFilter) ([]Container, error)

	// ContainerStatus reports one container: state, times, exit code and
	// reason.
	ContainerStatus(ctx context.Context, id ContainerID) (ContainerStatus, error)

	// ContainerStats reports resource usage of a container. Counters are
	// zero for a container that does not run.
	ContainerStats(ctx context.Context, id ContainerID) (ContainerStats, error)

	// ContainerLogs returns the container's output as plain text lines
	// (stdout and stderr interleaved in the order written). With
	// opts.Follow the reader keeps returning new output until the
	// container has exited and all its output is read, ctx is done, or the
	// reader is closed; without it the reader ends at the current end of
	// the log. The caller must close the reader.
	ContainerLogs(ctx context.Context, id ContainerID, opts LogOptions) (io.ReadCloser, error)
}

// ImageService is implemented by runtimes that run images (cri). Runtimes
// without images (process, sim) do not implement it.
type ImageService interface {
	// ImageStatus reports a local image by reference (tag or digest). It
	// returns an error wrapping [ErrNotFound] when the image is not present.
	ImageStatus(ctx context.Context, ref string) (Image, error)

	// PullImage fetches an image from its registry and returns its ID. It
	// fails when no registry answers; images built and imported locally
	// need no pull.
	PullImage(ctx context.Context, ref string) (string, error)

	// ListImages returns every local image.
	ListImages(ctx context.Context) ([]Image, error)
}

// Execer is implemented by runtimes that can run a command inside a running
// container, as exec probes need.
type Execer interface {
	// ExecSync runs cmd in the container and waits for it, up to timeout
	// (zero means no limit). A command that runs and fails is not an
	// error: its exit code is in the result.
	ExecSync(ctx context.Context, id ContainerID, cmd []string, timeout time.Duration) (ExecResult, error)
}

// StatusReporter is implemented by runtimes that can say whether they are
// ready to run pods, for the node's Ready condition.
type StatusReporter interface {
	// Status reports runtime and network readiness.
	Status(ctx context.Context) (RuntimeStatus, error)
}
