package cri

import (
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/drover/drover/internal/runtime"
)

func TestToSandboxConfig(t *testing.T) {
	c := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: "web-1", Namespace: "default", UID: "u1", Attempt: 2},
		LogDirectory: "/logs/default_web-1_u1",
		DNS:          &runtime.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"default.svc"}, Options: []string{"ndots:5"}},
		PortMappings: []runtime.PortMapping{
			{ContainerPort: 8080, HostPort: 30080},
			{Protocol: runtime.ProtocolUDP, ContainerPort: 53, HostPort: 5353, HostIP: "127.0.0.1"},
		},
		Labels: map[string]string{runtime.LabelPodUID: "u1"},
	}
	got := toSandboxConfig(c)
	if got.GetHostname() != "web-1" {
		t.Errorf("hostname = %q, want the pod name", got.GetHostname())
	}
	m := got.GetMetadata()
	if m.GetName() != "web-1" || m.GetNamespace() != "default" || m.GetUid() != "u1" || m.GetAttempt() != 2 {
		t.Errorf("metadata = %v", m)
	}
	if got.GetLogDirectory() != c.LogDirectory || got.GetLabels()[runtime.LabelPodUID] != "u1" {
		t.Errorf("log directory %q labels %v", got.GetLogDirectory(), got.GetLabels())
	}
	if d := got.GetDnsConfig(); len(d.GetServers()) != 1 || d.GetOptions()[0] != "ndots:5" {
		t.Errorf("dns = %v", d)
	}
	ports := got.GetPortMappings()
	if len(ports) != 2 || ports[0].GetProtocol() != runtimeapi.Protocol_TCP || ports[1].GetProtocol() != runtimeapi.Protocol_UDP ||
		ports[1].GetHostIp() != "127.0.0.1" || ports[0].GetHostPort() != 30080 {
		t.Errorf("ports = %v", ports)
	}
	if n := got.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork(); n != runtimeapi.NamespaceMode_POD {
		t.Errorf("network namespace = %v, want POD", n)
	}

	c.Hostname, c.HostNetwork, c.DNS = "node-a", true, nil
	got = toSandboxConfig(c)
	if got.GetHostname() != "node-a" || got.GetDnsConfig() != nil {
		t.Errorf("hostname %q dns %v", got.GetHostname(), got.GetDnsConfig())
	}
	if n := got.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork(); n != runtimeapi.NamespaceMode_NODE {
		t.Errorf("host network: namespace = %v, want NODE", n)
	}
}

func TestToContainerConfig(t *testing.T) {
	c := runtime.ContainerConfig{
		Name: "web", Attempt: 1, Image: "drover.local/web:1",
		Command: []string{"/web"}, Args: []string{"-version", "v2"},
		Env:        []runtime.EnvVar{{Name: "B", Value: "2"}, {Name: "A", Value: "1"}},
		WorkingDir: "/tmp",
		Mounts:     []runtime.Mount{{ContainerPath: "/data", HostPath: "/var/lib/x", ReadOnly: true}},
		Resources:  runtime.Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimitBytes: 64 << 20},
		LogPath:    "web/1.log",
	}
	got := toContainerConfig(runtime.PodSandboxConfig{HostNetwork: true}, c)
	if got.GetMetadata().GetName() != "web" || got.GetMetadata().GetAttempt() != 1 || got.GetImage().GetImage() != c.Image {
		t.Errorf("metadata %v image %v", got.GetMetadata(), got.GetImage())
	}
	if got.GetArgs()[1] != "v2" || got.GetCommand()[0] != "/web" || got.GetWorkingDir() != "/tmp" || got.GetLogPath() != "web/1.log" {
		t.Errorf("command %q args %q dir %q log %q", got.GetCommand(), got.GetArgs(), got.GetWorkingDir(), got.GetLogPath())
	}
	env := got.GetEnvs()
	if len(env) != 2 || env[0].GetKey() != "B" || string(env[0].GetValue()) != "2" || env[1].GetKey() != "A" {
		t.Errorf("env order or values lost: %v", env)
	}
	mounts := got.GetMounts()
	if len(mounts) != 1 || !mounts[0].GetReadonly() || mounts[0].GetHostPath() != "/var/lib/x" || mounts[0].GetContainerPath() != "/data" {
		t.Errorf("mounts = %v", mounts)
	}
	res := got.GetLinux().GetResources()
	if res.GetCpuShares() != 512 || res.GetCpuQuota() != 50000 || res.GetCpuPeriod() != 100000 || res.GetMemoryLimitInBytes() != 64<<20 {
		t.Errorf("resources = %v", res)
	}
	if n := got.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork(); n != runtimeapi.NamespaceMode_NODE {
		t.Errorf("container in a host-network pod: namespace = %v, want NODE", n)
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []runtime.ContainerState{runtime.ContainerCreated, runtime.ContainerRunning, runtime.ContainerExited, runtime.ContainerUnknown} {
		if got := fromContainerState(toContainerState(s)); got != s {
			t.Errorf("container state %v round trip = %v", s, got)
		}
	}
	for _, s := range []runtime.SandboxState{runtime.SandboxReady, runtime.SandboxNotReady} {
		if got := fromSandboxState(toSandboxState(s)); got != s {
			t.Errorf("sandbox state %v round trip = %v", s, got)
		}
	}
}

func TestFilters(t *testing.T) {
	ready := runtime.SandboxReady
	sf := toSandboxFilter(runtime.PodSandboxFilter{State: &ready, Labels: map[string]string{"a": "b"}})
	if sf.GetState().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || sf.GetLabelSelector()["a"] != "b" {
		t.Errorf("sandbox filter = %v", sf)
	}
	if toSandboxFilter(runtime.PodSandboxFilter{}).GetState() != nil {
		t.Error("zero sandbox filter selects a state")
	}
	exited := runtime.ContainerExited
	cf := toContainerFilter(runtime.ContainerFilter{SandboxID: "s1", State: &exited})
	if cf.GetPodSandboxId() != "s1" || cf.GetState().GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container filter = %v", cf)
	}
}

func TestFromContainerStatus(t *testing.T) {
	started := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	s := fromContainerStatus(&runtimeapi.ContainerStatus{
		Id:        "c1",
		Metadata:  &runtimeapi.ContainerMetadata{Name: "web", Attempt: 3},
		State:     runtimeapi.ContainerState_CONTAINER_EXITED,
		StartedAt: started.UnixNano(),
		ExitCode:  137,
		Reason:    "OOMKilled",
		LogPath:   "/logs/web/3.log",
	})
	if s.ID != "c1" || s.Name != "web" || s.Attempt != 3 || s.State != runtime.ContainerExited || s.ExitCode != 137 || s.Reason != runtime.ReasonOOMKilled {
		t.Errorf("status = %+v", s)
	}
	if !s.StartedAt.Equal(started) || !s.FinishedAt.IsZero() || !s.CreatedAt.IsZero() {
		t.Errorf("times: started %v finished %v created %v", s.StartedAt, s.FinishedAt, s.CreatedAt)
	}
}

func TestFromContainerStats(t *testing.T) {
	st := fromContainerStats(&runtimeapi.ContainerStats{
		Cpu:    &runtimeapi.CpuUsage{UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 1500}},
		Memory: &runtimeapi.MemoryUsage{Timestamp: 42, WorkingSetBytes: &runtimeapi.UInt64Value{Value: 4096}},
	})
	if st.CPUUsageCoreNanoSeconds != 1500 || st.MemoryWorkingSetBytes != 4096 || st.Timestamp.UnixNano() != 42 {
		t.Errorf("stats = %+v", st)
	}
	if st := fromContainerStats(nil); st.CPUUsageCoreNanoSeconds != 0 || !st.Timestamp.IsZero() {
		t.Errorf("nil stats = %+v", st)
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{0, 0}, {-time.Second, 0}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {30 * time.Second, 30}} {
		if got := seconds(tc.d); got != tc.want {
			t.Errorf("seconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
