package containerd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func filled(t *testing.T) Config {
	t.Helper()
	c, err := Config{Dir: "/run/dr", PodSubnet: "10.9.8.0/24", CNIBinDir: "/usr/lib/cni"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigTOML(t *testing.T) {
	got := ConfigTOML(filled(t))
	for _, want := range []string{
		"version = 2\n",
		`root = "/run/dr/root"`,
		`state = "/run/dr/state"`,
		`address = "/run/dr/containerd.sock"`,
		"[plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n",
		`sandbox_image = "drover.local/pause:1"`,
		"[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"/run/dr/cni/net.d\"\n",
		`path = "/run/dr/opt"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config.toml lacks %q:\n%s", want, got)
		}
	}
}

func TestCNIConfList(t *testing.T) {
	c := filled(t)
	c.Bridge = "drvtest1"
	b, err := CNIConfList(c)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type         string          `json:"type"`
			Bridge       string          `json:"bridge"`
			IsGateway    bool            `json:"isGateway"`
			Capabilities map[string]bool `json:"capabilities"`
			IPAM         struct {
				Type    string                `json:"type"`
				Ranges  [][]map[string]string `json:"ranges"`
				DataDir string                `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, b)
	}
	if list.Name != "drover" || list.CNIVersion == "" || len(list.Plugins) != 2 {
		t.Fatalf("conflist = %+v", list)
	}
	br, pm := list.Plugins[0], list.Plugins[1]
	if br.Type != "bridge" || br.Bridge != "drvtest1" || !br.IsGateway {
		t.Errorf("bridge plugin = %+v", br)
	}
	if br.IPAM.Type != "host-local" || br.IPAM.Ranges[0][0]["subnet"] != "10.9.8.0/24" || br.IPAM.DataDir != "/run/dr/cni/ipam" {
		t.Errorf("ipam = %+v", br.IPAM)
	}
	if pm.Type != "portmap" || !pm.Capabilities["portMappings"] {
		t.Errorf("portmap plugin = %+v", pm)
	}

	c.PodSubnet = "10.9.8.1/24" // a host address: the network is used
	b, _ = CNIConfList(c)
	if !strings.Contains(string(b), `"subnet": "10.9.8.0/24"`) {
		t.Errorf("subnet not normalised:\n%s", b)
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	c, err := Config{Dir: "/x"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Bridge != DefaultBridge || c.PodSubnet != DefaultPodSubnet || c.Network != DefaultNetwork || c.SandboxImage == "" {
		t.Errorf("defaults = %+v", c)
	}
	for name, bad := range map[string]Config{
		"no dir":        {},
		"long dir":      {Dir: "/" + strings.Repeat("d", 90)},
		"long bridge":   {Dir: "/x", Bridge: "a-very-long-bridge"},
		"bad subnet":    {Dir: "/x", PodSubnet: "10.0.0.0/33"},
		"subnet no len": {Dir: "/x", PodSubnet: "10.0.0.0"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	info := `22 1 0:21 / / rw shared:1 - ext4 /dev/root rw
30 22 0:30 / /run/dr rw - tmpfs tmpfs rw
31 30 0:31 / /run/dr/state/a rw - shm shm rw
32 31 0:32 / /run/dr/state/a/b\040c rw - overlay overlay rw
33 22 0:33 / /run/drover-other rw - tmpfs tmpfs rw
`
	path := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(path, []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := mountsUnder(path, "/run/dr")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/run/dr/state/a/b c", "/run/dr/state/a", "/run/dr"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnder = %q, want %q", got, want)
	}
}

func TestHasArg(t *testing.T) {
	args := []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-address", "/run/dr/containerd.sock", "-id", "x"}
	if !hasArg(args, "-address", "/run/dr/containerd.sock") {
		t.Error("separate flag and value not found")
	}
	if hasArg(args, "-address", "/run/dr/containerd.sock2") || hasArg(args, "-id", "k8s.io") {
		t.Error("false match")
	}
	if !hasArg([]string{"shim", "-address=/s"}, "-address", "/s") {
		t.Error("flag=value not found")
	}
}
