package runtime

import "time"

// Labels the agent puts on every sandbox and container it creates, with the
// same keys as the kubelet, so that tools such as crictl show them and an
// agent that restarts can match what runs to the pods it owns.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	// LabelManagedBy marks objects made by Drover (value "drover"), so that
	// an agent sharing a runtime with others lists only its own.
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// SandboxID identifies a pod sandbox within one runtime.
type SandboxID string

// ContainerID identifies a container within one runtime.
type ContainerID string

// VersionInfo names a runtime and its version.
type VersionInfo struct {
	// RuntimeName is e.g. "containerd", "drover-process" or "drover-sim".
	RuntimeName string
	// RuntimeVersion is the runtime's own version, e.g. "1.6.20".
	RuntimeVersion string
	// APIVersion is the version of the protocol spoken to it, e.g. "v1"
	// for CRI, or empty.
	APIVersion string
}

// PodSandboxMetadata identifies the pod a sandbox belongs to. Attempt counts
// sandboxes made for the same pod (0 for the first); name, namespace, UID and
// attempt together are unique.
type PodSandboxMetadata struct {
	Name      string
	Namespace string
	UID       string
	Attempt   uint32
}

// PodSandboxConfig is what the agent asks of a sandbox.
type PodSandboxConfig struct {
	Metadata PodSandboxMetadata
	// Hostname is the hostname containers see; empty means the pod name.
	Hostname string
	// LogDirectory is the absolute directory container logs go to; each
	// ContainerConfig.LogPath is relative to it. Empty means no logs are
	// kept. See [PodLogDirectory].
	LogDirectory string
	// DNS is written to the containers' resolv.conf; nil means the host's.
	DNS *DNSConfig
	// PortMappings publish container ports on the node (hostPort).
	PortMappings []PortMapping
	// HostNetwork puts the sandbox in the node's network namespace: it gets
	// no IP of its own.
	HostNetwork bool
	// CgroupParent is the cgroup the pod's containers go under; empty lets
	// the runtime choose.
	CgroupParent string
	Labels       map[string]string
	Annotations  map[string]string
}

// DNSConfig is a pod's resolver configuration.
type DNSConfig struct {
	Servers  []string
	Searches []string
	Options  []string
}

// Protocol is a port's transport protocol.
type Protocol string

// Protocols a port mapping can use.
const (
	ProtocolTCP  Protocol = "TCP"
	ProtocolUDP  Protocol = "UDP"
	ProtocolSCTP Protocol = "SCTP"
)

// PortMapping publishes a container port on the node.
type PortMapping struct {
	// Protocol defaults to TCP when empty.
	Protocol      Protocol
	ContainerPort int32
	HostPort      int32
	// HostIP is the node address to bind; empty means all.
	HostIP string
}

// SandboxState is a sandbox's life-cycle state.
type SandboxState int

// Sandbox states.
const (
	// SandboxNotReady: stopped, failed, or being set up or torn down.
	SandboxNotReady SandboxState = iota
	// SandboxReady: running, with its network set up.
	SandboxReady
)

// String returns "NotReady" or "Ready".
func (s SandboxState) String() string {
	if s == SandboxReady {
		return "Ready"
	}
	return "NotReady"
}

// PodSandbox is a sandbox as listed.
type PodSandbox struct {
	ID          SandboxID
	Metadata    PodSandboxMetadata
	State       SandboxState
	CreatedAt   time.Time
	Labels      map[string]string
	Annotations map[string]string
}

// PodSandboxStatus is a sandbox in detail.
type PodSandboxStatus struct {
	PodSandbox
	// IP is the sandbox's primary address; empty with the host network or
	// once the sandbox is stopped.
	IP string
	// AdditionalIPs holds further addresses (e.g. IPv6 in dual stack).
	AdditionalIPs []string
}

// PodSandboxFilter selects sandboxes. Empty fields match everything.
type PodSandboxFilter struct {
	ID SandboxID
	// State, when not nil, selects sandboxes in that state.
	State *SandboxState
	// Labels selects sandboxes that have all these labels with these values.
	Labels map[string]string
}

// ContainerConfig is what the agent asks of a container.
type ContainerConfig struct {
	// Name is the container's name in the pod; with Attempt (its restart
	// count) it is unique in the sandbox.
	Name    string
	Attempt uint32
	// Image is an image reference; it must be present (see ImageService).
	// Runtimes without images ignore it or interpret it (process).
	Image string
	// Command replaces the image's entrypoint and Args its arguments, as
	// in a Kubernetes container spec.
	Command    []string
	Args       []string
	Env        []EnvVar
	WorkingDir string
	Mounts     []Mount
	Resources  Resources
	// LogPath is where the output goes, relative to the sandbox's
	// LogDirectory. See [ContainerLogPath].
	LogPath     string
	Labels      map[string]string
	Annotations map[string]string
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string
	Value string
}

// Mount makes a host path (e.g. an emptyDir volume's directory) visible in
// the container.
type Mount struct {
	ContainerPath string
	HostPath      string
	ReadOnly      bool
}

// Resources are a container's cgroup settings; zero values mean unlimited
// (or the runtime default). Make them with [ResourcesFor].
type Resources struct {
	// CPUShares is the relative CPU weight (cgroup v1 cpu.shares).
	CPUShares int64
	// CPUQuota and CPUPeriod (microseconds) cap CPU time: the container
	// may use CPUQuota per CPUPeriod.
	CPUQuota  int64
	CPUPeriod int64
	// MemoryLimitBytes caps memory; going over it gets the container
	// OOM-killed.
	MemoryLimitBytes int64
}

// ContainerState is a container's life-cycle state.
type ContainerState int

// Container states.
const (
	ContainerUnknown ContainerState = iota
	ContainerCreated
	ContainerRunning
	ContainerExited
)

// String returns "Unknown", "Created", "Running" or "Exited".
func (s ContainerState) String() string {
	switch s {
	case ContainerCreated:
		return "Created"
	case ContainerRunning:
		return "Running"
	case ContainerExited:
		return "Exited"
	}
	return "Unknown"
}

// Container is a container as listed.
type Container struct {
	ID        ContainerID
	SandboxID SandboxID
	// Name and Attempt are as in the ContainerConfig.
	Name    string
	Attempt uint32
	// Image is the reference it was created with, ImageRef the resolved
	// image (ID or digest) when known.
	Image       string
	ImageRef    string
	State       ContainerState
	CreatedAt   time.Time
	Labels      map[string]string
	Annotations map[string]string
}

// Reasons a container exited, in ContainerStatus.Reason (same words as
// Kubernetes' ContainerStateTerminated.Reason).
const (
	ReasonCompleted = "Completed" // exit code 0
	ReasonError     = "Error"     // non-zero exit code
	ReasonOOMKilled = "OOMKilled" // killed for going over its memory limit
)

// ContainerStatus is a container in detail.
type ContainerStatus struct {
	Container
	// StartedAt is zero until the container starts; FinishedAt is zero
	// until it exits.
	StartedAt  time.Time
	FinishedAt time.Time
	// ExitCode is meaningful once the state is ContainerExited.
	ExitCode int32
	// Reason is a one-word cause (see ReasonCompleted and friends) and
	// Message a human explanation, either may be empty.
	Reason  string
	Message string
	// LogPath is the absolute path of the container's log file, or empty.
	LogPath string
}

// ContainerFilter selects containers. Empty fields match everything.
type ContainerFilter struct {
	ID        ContainerID
	SandboxID SandboxID
	// State, when not nil, selects containers in that state.
	State *ContainerState
	// Labels selects containers that have all these labels with these values.
	Labels map[string]string
}

// ContainerStats is a sample of a container's resource usage.
type ContainerStats struct {
	ID ContainerID
	// Timestamp is when the sample was taken.
	Timestamp time.Time
	// CPUUsageCoreNanoSeconds is cumulative CPU time used, in core
	// nanoseconds (one core fully busy for 1s adds 1e9).
	CPUUsageCoreNanoSeconds uint64
	// MemoryWorkingSetBytes is memory in use that cannot be reclaimed
	// easily (usage minus inactive file pages), what eviction and
	// `kubectl top` look at.
	MemoryWorkingSetBytes uint64
}

// LogOptions say which part of a container log to return.
type LogOptions struct {
	// Follow keeps the reader open for new output until the container exits.
	Follow bool
	// TailLines, when positive, starts that many lines before the end.
	TailLines int64
	// Since, when not zero, skips lines written before it.
	Since time.Time
	// Timestamps prefixes each line with its RFC 3339 (nanoseconds) time
	// and a space, like `kubectl logs --timestamps`.
	Timestamps bool
}

// Image is a local image.
type Image struct {
	// ID is the image's config digest.
	ID string
	// RepoTags are its tags, e.g. "drover.local/pause:1".
	RepoTags []string
	// RepoDigests are its references by digest.
	RepoDigests []string
	// Size is its size in bytes.
	Size uint64
}

// ExecResult is the outcome of ExecSync.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int32
}

// RuntimeStatus says whether a runtime can run pods.
type RuntimeStatus struct {
	// RuntimeReady: the runtime can run containers.
	RuntimeReady bool
	// NetworkReady: pod networking is set up.
	NetworkReady bool
	// Message explains what is not ready, or is empty.
	Message string
}
