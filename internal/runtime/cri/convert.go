package cri

import (
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/drover/drover/internal/runtime"
)

// This file holds the pure conversions between Drover's runtime values and
// CRI v1 messages.

func namespaceOptions(hostNetwork bool) *runtimeapi.NamespaceOption {
	network := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		network = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.NamespaceOption{
		Network: network,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
}

var protocols = map[runtime.Protocol]runtimeapi.Protocol{
	"":                   runtimeapi.Protocol_TCP,
	runtime.ProtocolTCP:  runtimeapi.Protocol_TCP,
	runtime.ProtocolUDP:  runtimeapi.Protocol_UDP,
	runtime.ProtocolSCTP: runtimeapi.Protocol_SCTP,
}

// toSandboxConfig builds the CRI sandbox configuration, as the kubelet does:
// hostname defaulted to the pod name, namespaces by HostNetwork.
func toSandboxConfig(c runtime.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
	hostname := c.Hostname
	if hostname == "" {
		hostname = c.Metadata.Name
	}
	out := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      c.Metadata.Name,
			Namespace: c.Metadata.Namespace,
			Uid:       c.Metadata.UID,
			Attempt:   c.Metadata.Attempt,
		},
		Hostname:     hostname,
		LogDirectory: c.LogDirectory,
		Labels:       c.Labels,
		Annotations:  c.Annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: c.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(c.HostNetwork),
			},
		},
	}
	if c.DNS != nil {
		out.DnsConfig = &runtimeapi.DNSConfig{
			Servers:  c.DNS.Servers,
			Searches: c.DNS.Searches,
			Options:  c.DNS.Options,
		}
	}
	for _, p := range c.PortMappings {
		out.PortMappings = append(out.PortMappings, &runtimeapi.PortMapping{
			Protocol:      protocols[p.Protocol],
			ContainerPort: p.ContainerPort,
			HostPort:      p.HostPort,
			HostIp:        p.HostIP,
		})
	}
	return out
}

// toContainerConfig builds the CRI container configuration. The container
// shares the sandbox's namespaces, so it takes HostNetwork from it.
func toContainerConfig(sandbox runtime.PodSandboxConfig, c runtime.ContainerConfig) *runtimeapi.ContainerConfig {
	out := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
		Image:       &runtimeapi.ImageSpec{Image: c.Image},
		Command:     c.Command,
		Args:        c.Args,
		WorkingDir:  c.WorkingDir,
		Labels:      c.Labels,
		Annotations: c.Annotations,
		LogPath:     c.LogPath,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{
				CpuShares:          c.Resources.CPUShares,
				CpuQuota:           c.Resources.CPUQuota,
				CpuPeriod:          c.Resources.CPUPeriod,
				MemoryLimitInBytes: c.Resources.MemoryLimitBytes,
			},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: namespaceOptions(sandbox.HostNetwork),
			},
		},
	}
	for _, e := range c.Env {
		out.Envs = append(out.Envs, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(e.Value)})
	}
	for _, m := range c.Mounts {
		out.Mounts = append(out.Mounts, &runtimeapi.Mount{
			ContainerPath: m.ContainerPath,
			HostPath:      m.HostPath,
			Readonly:      m.ReadOnly,
			Propagation:   runtimeapi.MountPropagation_PROPAGATION_PRIVATE,
		})
	}
	return out
}

// fromNanos converts CRI's nanoseconds since the epoch; 0 means unset.
func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func fromSandboxState(s runtimeapi.PodSandboxState) runtime.SandboxState {
	if s == runtimeapi.PodSandboxState_SANDBOX_READY {
		return runtime.SandboxReady
	}
	return runtime.SandboxNotReady
}

func toSandboxState(s runtime.SandboxState) runtimeapi.PodSandboxState {
	if s == runtime.SandboxReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func fromContainerState(s runtimeapi.ContainerState) runtime.ContainerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return runtime.ContainerCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return runtime.ContainerRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return runtime.ContainerExited
	}
	return runtime.ContainerUnknown
}

func toContainerState(s runtime.ContainerState) runtimeapi.ContainerState {
	switch s {
	case runtime.ContainerCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case runtime.ContainerRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case runtime.ContainerExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func fromSandboxMetadata(m *runtimeapi.PodSandboxMetadata) runtime.PodSandboxMetadata {
	return runtime.PodSandboxMetadata{
		Name:      m.GetName(),
		Namespace: m.GetNamespace(),
		UID:       m.GetUid(),
		Attempt:   m.GetAttempt(),
	}
}

func fromSandbox(s *runtimeapi.PodSandbox) runtime.PodSandbox {
	return runtime.PodSandbox{
		ID:          runtime.SandboxID(s.GetId()),
		Metadata:    fromSandboxMetadata(s.GetMetadata()),
		State:       fromSandboxState(s.GetState()),
		CreatedAt:   fromNanos(s.GetCreatedAt()),
		Labels:      s.GetLabels(),
		Annotations: s.GetAnnotations(),
	}
}

func fromSandboxStatus(s *runtimeapi.PodSandboxStatus) runtime.PodSandboxStatus {
	out := runtime.PodSandboxStatus{
		PodSandbox: runtime.PodSandbox{
			ID:          runtime.SandboxID(s.GetId()),
			Metadata:    fromSandboxMetadata(s.GetMetadata()),
			State:       fromSandboxState(s.GetState()),
			CreatedAt:   fromNanos(s.GetCreatedAt()),
			Labels:      s.GetLabels(),
			Annotations: s.GetAnnotations(),
		},
		IP: s.GetNetwork().GetIp(),
	}
	for _, ip := range s.GetNetwork().GetAdditionalIps() {
		out.AdditionalIPs = append(out.AdditionalIPs, ip.GetIp())
	}
	return out
}

func toSandboxFilter(f runtime.PodSandboxFilter) *runtimeapi.PodSandboxFilter {
	out := &runtimeapi.PodSandboxFilter{Id: string(f.ID), LabelSelector: f.Labels}
	if f.State != nil {
		out.State = &runtimeapi.PodSandboxStateValue{State: toSandboxState(*f.State)}
	}
	return out
}

func toContainerFilter(f runtime.ContainerFilter) *runtimeapi.ContainerFilter {
	out := &runtimeapi.ContainerFilter{Id: string(f.ID), PodSandboxId: string(f.SandboxID), LabelSelector: f.Labels}
	if f.State != nil {
		out.State = &runtimeapi.ContainerStateValue{State: toContainerState(*f.State)}
	}
	return out
}

func fromContainer(c *runtimeapi.Container) runtime.Container {
	return runtime.Container{
		ID:          runtime.ContainerID(c.GetId()),
		SandboxID:   runtime.SandboxID(c.GetPodSandboxId()),
		Name:        c.GetMetadata().GetName(),
		Attempt:     c.GetMetadata().GetAttempt(),
		Image:       c.GetImage().GetImage(),
		ImageRef:    c.GetImageRef(),
		State:       fromContainerState(c.GetState()),
		CreatedAt:   fromNanos(c.GetCreatedAt()),
		Labels:      c.GetLabels(),
		Annotations: c.GetAnnotations(),
	}
}

// fromContainerStatus converts a CRI container status. CRI does not name the
// sandbox in a status; the caller fills SandboxID when it knows it.
func fromContainerStatus(s *runtimeapi.ContainerStatus) runtime.ContainerStatus {
	return runtime.ContainerStatus{
		Container: runtime.Container{
			ID:          runtime.ContainerID(s.GetId()),
			Name:        s.GetMetadata().GetName(),
			Attempt:     s.GetMetadata().GetAttempt(),
			Image:       s.GetImage().GetImage(),
			ImageRef:    s.GetImageRef(),
			State:       fromContainerState(s.GetState()),
			CreatedAt:   fromNanos(s.GetCreatedAt()),
			Labels:      s.GetLabels(),
			Annotations: s.GetAnnotations(),
		},
		StartedAt:  fromNanos(s.GetStartedAt()),
		FinishedAt: fromNanos(s.GetFinishedAt()),
		ExitCode:   s.GetExitCode(),
		Reason:     s.GetReason(),
		Message:    s.GetMessage(),
		LogPath:    s.GetLogPath(),
	}
}

func fromContainerStats(s *runtimeapi.ContainerStats) runtime.ContainerStats {
	ts := s.GetCpu().GetTimestamp()
	if ts == 0 {
		ts = s.GetMemory().GetTimestamp()
	}
	return runtime.ContainerStats{
		ID:                      runtime.ContainerID(s.GetAttributes().GetId()),
		Timestamp:               fromNanos(ts),
		CPUUsageCoreNanoSeconds: s.GetCpu().GetUsageCoreNanoSeconds().GetValue(),
		MemoryWorkingSetBytes:   s.GetMemory().GetWorkingSetBytes().GetValue(),
	}
}

func fromImage(i *runtimeapi.Image) runtime.Image {
	return runtime.Image{
		ID:          i.GetId(),
		RepoTags:    i.GetRepoTags(),
		RepoDigests: i.GetRepoDigests(),
		Size:        i.GetSize(),
	}
}

// seconds rounds a duration up to whole seconds, as CRI timeouts are.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
