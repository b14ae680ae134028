package process

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/drover/drover/internal/runtime"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want procStat
		err  bool
	}{
		{
			name: "plain",
			in:   "1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 555 1000 10 18446744073709551615\n",
			want: procStat{State: 'S', PGrp: 1234, CPUTicks: 13, StartTime: 555},
		},
		{
			name: "name with spaces and parentheses",
			in:   "77 (a (b) c) Z 1 70 70 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 0 0",
			want: procStat{State: 'Z', PGrp: 70, CPUTicks: 2, StartTime: 9},
		},
		{name: "no name", in: "77 S 1 2 3", err: true},
		{name: "too short", in: "77 (x) S 1 2 3", err: true},
		{name: "bad number", in: "1 (x) S 1 y 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 0", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("parseProcStat = %+v, %v; want %+v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestAliveSelf(t *testing.T) {
	s, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !alive(os.Getpid(), s.StartTime) {
		t.Error("this process is not alive")
	}
	if alive(os.Getpid(), s.StartTime+1) {
		t.Error("a different start time is the same process")
	}
	if alive(0, 0) || alive(-1, 0) {
		t.Error("pid 0 or -1 alive")
	}
}

func TestParseVmRSS(t *testing.T) {
	in := "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\nRssAnon:\t 1000 kB\n"
	if got := parseVmRSS([]byte(in)); got != 1234<<10 {
		t.Errorf("parseVmRSS = %d", got)
	}
	if got := parseVmRSS([]byte("Name:\tkthreadd\n")); got != 0 {
		t.Errorf("parseVmRSS without VmRSS = %d", got)
	}
}

func TestParsePodSubnet(t *testing.T) {
	for in, ok := range map[string]bool{
		"127.0.0.0/16":   true,
		"127.1.0.0/16":   true,
		"127.9.9.0/24":   true,
		"127.0.0.0/8":    true,
		"127.1.2.3/16":   true, // masked
		"10.0.0.0/8":     false,
		"126.0.0.0/7":    false,
		"127.0.0.0/31":   false,
		"::1/128":        false,
		"not-a-cidr":     false,
		"127.0.0.0/8/16": false,
	} {
		if _, err := parsePodSubnet(in); (err == nil) != ok {
			t.Errorf("parsePodSubnet(%q) error = %v, want ok %v", in, err, ok)
		}
	}
}

func TestAllocateIP(t *testing.T) {
	none := func(netip.Addr) bool { return false }
	tests := []struct {
		subnet   string
		next     uint64
		inUse    []string
		want     string
		wantNext uint64
	}{
		// The default subnet skips 127.0.0.0/23 (localhost, the
		// hostname) and starts at 127.0.2.1.
		{subnet: "127.0.0.0/16", next: 0, want: "127.0.2.1", wantNext: 514},
		{subnet: "127.0.0.0/16", next: 514, want: "127.0.2.2", wantNext: 515},
		// .255 and .0 are skipped.
		{subnet: "127.0.0.0/16", next: 767, want: "127.0.3.1", wantNext: 770},
		// Addresses in use are skipped.
		{subnet: "127.0.0.0/16", next: 514, inUse: []string{"127.0.2.2", "127.0.2.3"}, want: "127.0.2.4", wantNext: 517},
		// The counter wraps around to the start of the subnet.
		{subnet: "127.5.0.0/24", next: 254, want: "127.5.0.254", wantNext: 255},
		{subnet: "127.5.0.0/24", next: 255, want: "127.5.0.1", wantNext: 2},
		// A counter past the end (a smaller subnet configured since) is
		// taken modulo its size.
		{subnet: "127.5.0.0/24", next: 1000, want: "127.5.0.232", wantNext: 233},
		{subnet: "127.5.0.0/30", next: 0, inUse: []string{"127.5.0.1"}, want: "127.5.0.2", wantNext: 3},
	}
	for _, tt := range tests {
		p, err := parsePodSubnet(tt.subnet)
		if err != nil {
			t.Fatal(err)
		}
		inUse := func(a netip.Addr) bool { return slices.Contains(tt.inUse, a.String()) }
		got, next, err := allocateIP(p, tt.next, inUse)
		if err != nil || got.String() != tt.want || next != tt.wantNext {
			t.Errorf("allocateIP(%s, %d, %v) = %s, %d, %v; want %s, %d", tt.subnet, tt.next, tt.inUse, got, next, err, tt.want, tt.wantNext)
		}
	}
	full, _ := parsePodSubnet("127.5.0.0/30")
	if _, _, err := allocateIP(full, 0, func(netip.Addr) bool { return true }); err == nil {
		t.Error("allocateIP in a full subnet succeeded")
	}
	if _, _, err := allocateIP(netip.MustParsePrefix("127.0.0.0/24"), 0, none); err == nil {
		t.Error("allocateIP found an address in the reserved 127.0.0.0/24")
	}
}

const mountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup rw shared:5 - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:6 - cgroup cgroup rw,cpu,cpuacct
32 30 0:28 /kubepods /sys/fs/cgroup/memory rw,relatime shared:7 - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/my\040pids rw,relatime shared:8 - cgroup cgroup rw,pids
34 30 0:30 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw
`

func TestCgroupPaths(t *testing.T) {
	hs := parseMountinfo([]byte(mountinfo), append(controllers, "pids"))
	want := map[string]hierarchy{
		"cpu":     {Mount: "/sys/fs/cgroup/cpu,cpuacct", Root: "/"},
		"cpuacct": {Mount: "/sys/fs/cgroup/cpu,cpuacct", Root: "/"},
		"memory":  {Mount: "/sys/fs/cgroup/memory", Root: "/kubepods"},
		"pids":    {Mount: "/sys/fs/cgroup/my pids", Root: "/"},
	}
	if !reflect.DeepEqual(hs, want) {
		t.Errorf("parseMountinfo = %+v, want %+v", hs, want)
	}
	own := parseProcCgroup([]byte("5:pids:/\n3:cpu,cpuacct:/agent\n2:memory:/kubepods/agent\n0::/\n"))
	if own["cpu"] != "/agent" || own["cpuacct"] != "/agent" || own["memory"] != "/kubepods/agent" {
		t.Errorf("parseProcCgroup = %v", own)
	}
	// Relative: under the agent's own cgroup, co-mounted hierarchies once.
	dirs, err := cgroupDirs(hs, own, "drover-process/pod1")
	if err != nil {
		t.Fatal(err)
	}
	if w := []string{"/sys/fs/cgroup/cpu,cpuacct/agent/drover-process/pod1", "/sys/fs/cgroup/memory/agent/drover-process/pod1"}; !slices.Equal(dirs, w) {
		t.Errorf("relative cgroupDirs = %q, want %q", dirs, w)
	}
	// Absolute: from the hierarchy's root (seen through the mount's root).
	dirs, err = cgroupDirs(hs, own, "/kubepods/pod1")
	if err != nil {
		t.Fatal(err)
	}
	if w := []string{"/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1", "/sys/fs/cgroup/memory/pod1"}; !slices.Equal(dirs, w) {
		t.Errorf("absolute cgroupDirs = %q, want %q", dirs, w)
	}
	delete(hs, "memory")
	if _, err := cgroupDirs(hs, own, "x"); err == nil {
		t.Error("cgroupDirs without a memory hierarchy succeeded")
	}
}

func TestLimitFiles(t *testing.T) {
	got := limitFiles(runtime.Resources{CPUShares: 512, CPUQuota: 50000, MemoryLimitBytes: 1 << 20})
	want := [][2]string{
		{"cpu.shares", "512"},
		{"cpu.cfs_period_us", "100000"},
		{"cpu.cfs_quota_us", "50000"},
		{"memory.limit_in_bytes", "1048576"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("limitFiles = %v, want %v", got, want)
	}
	if got := limitFiles(runtime.Resources{}); len(got) != 0 {
		t.Errorf("limitFiles of no resources = %v", got)
	}
}

func TestWorkingSet(t *testing.T) {
	stat := []byte("cache 100\ninactive_file 7\ntotal_inactive_file 40\n")
	if got := workingSet(100, stat); got != 60 {
		t.Errorf("workingSet = %d, want 60", got)
	}
	if got := workingSet(10, stat); got != 0 {
		t.Errorf("workingSet below zero = %d, want 0", got)
	}
	if n, ok := statValue([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), "oom_kill"); !ok || n != 2 {
		t.Errorf("statValue(oom_kill) = %d, %v", n, ok)
	}
}

func TestContainerEnv(t *testing.T) {
	got := containerEnv([]runtime.EnvVar{{Name: "A", Value: "1"}, {Name: "PATH", Value: "/opt/bin"}, {Name: "A", Value: "2"}}, "web", "127.0.2.1")
	want := []string{"PATH=/opt/bin", "HOSTNAME=web", "A=2", "POD_IP=127.0.2.1"}
	if !slices.Equal(got, want) {
		t.Errorf("containerEnv = %q, want %q", got, want)
	}
	got = containerEnv([]runtime.EnvVar{{Name: "POD_IP", Value: "10.0.0.1"}}, "web", "127.0.2.1")
	if envValue(got, "POD_IP") != "10.0.0.1" || envValue(got, "PATH") != defaultPath {
		t.Errorf("containerEnv with POD_IP set = %q", got)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "data"), []byte("x"), 0o644)
	tests := []struct {
		file, path, want string
		notFound         bool
	}{
		{file: "tool", path: "/nonexistent:" + bin, want: filepath.Join(bin, "tool")},
		{file: "tool", path: "bin", want: filepath.Join(bin, "tool")}, // relative PATH entries are under dir
		{file: "./bin/tool", path: "", want: filepath.Join(bin, "tool")},
		{file: filepath.Join(bin, "tool"), path: "", want: filepath.Join(bin, "tool")},
		{file: "data", path: bin, notFound: true},
		{file: "missing", path: bin, notFound: true},
	}
	for _, tt := range tests {
		got, err := lookPath(tt.file, tt.path, dir)
		if tt.notFound {
			if !errors.Is(err, exec.ErrNotFound) {
				t.Errorf("lookPath(%q, %q) = %q, %v; want not found", tt.file, tt.path, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("lookPath(%q, %q) = %q, %v; want %q", tt.file, tt.path, got, err, tt.want)
		}
	}
	if _, err := lookPath("./bin/data", "", dir); err == nil {
		t.Error("lookPath of a file that is not executable succeeded")
	}
}

func TestMatch(t *testing.T) {
	ready, notReady := runtime.SandboxReady, runtime.SandboxNotReady
	s := runtime.PodSandbox{ID: "s1", State: runtime.SandboxReady, Labels: map[string]string{"a": "1", "b": "2"}}
	for _, tt := range []struct {
		f    runtime.PodSandboxFilter
		want bool
	}{
		{runtime.PodSandboxFilter{}, true},
		{runtime.PodSandboxFilter{ID: "s1", State: &ready, Labels: map[string]string{"a": "1"}}, true},
		{runtime.PodSandboxFilter{ID: "s2"}, false},
		{runtime.PodSandboxFilter{State: &notReady}, false},
		{runtime.PodSandboxFilter{Labels: map[string]string{"a": "2"}}, false},
		{runtime.PodSandboxFilter{Labels: map[string]string{"c": ""}}, false},
	} {
		if got := matchSandbox(tt.f, s); got != tt.want {
			t.Errorf("matchSandbox(%+v) = %v", tt.f, got)
		}
	}
	running, exited := runtime.ContainerRunning, runtime.ContainerExited
	c := runtime.Container{ID: "c1", SandboxID: "s1", State: runtime.ContainerRunning, Labels: map[string]string{"a": "1"}}
	for _, tt := range []struct {
		f    runtime.ContainerFilter
		want bool
	}{
		{runtime.ContainerFilter{}, true},
		{runtime.ContainerFilter{ID: "c1", SandboxID: "s1", State: &running, Labels: map[string]string{"a": "1"}}, true},
		{runtime.ContainerFilter{SandboxID: "s2"}, false},
		{runtime.ContainerFilter{State: &exited}, false},
	} {
		if got := matchContainer(tt.f, c); got != tt.want {
			t.Errorf("matchContainer(%+v) = %v", tt.f, got)
		}
	}
}

func TestTCPMappings(t *testing.T) {
	web := runtime.PortMapping{ContainerPort: 80, HostPort: 8080}
	tcp := runtime.PortMapping{ContainerPort: 81, HostPort: 8081, Protocol: runtime.ProtocolTCP, HostIP: "127.0.0.1"}
	dns := runtime.PortMapping{ContainerPort: 53, HostPort: 53, Protocol: runtime.ProtocolUDP}
	unpublished := runtime.PortMapping{ContainerPort: 9090}
	gotTCP, gotOther := tcpMappings([]runtime.PortMapping{web, tcp, dns, unpublished})
	if !slices.Equal(gotTCP, []runtime.PortMapping{web, tcp}) || !slices.Equal(gotOther, []runtime.PortMapping{dns}) {
		t.Errorf("tcpMappings = %v, %v", gotTCP, gotOther)
	}
}
