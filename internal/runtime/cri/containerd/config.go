package containerd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/drover/drover/internal/image"
)

// Defaults for Config.
const (
	DefaultBridge    = "drover0"
	DefaultNetwork   = "drover"
	DefaultPodSubnet = "10.244.0.0/24"
	DefaultCNIBinDir = "/usr/lib/cni"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes with the terminating NUL).
const maxSocketPath = 107

// Config says how to run a containerd for Drover.
type Config struct {
	// Dir holds everything: config.toml, root/, state/, cni/, the socket
	// and containerd.log. Keep it short: the socket path must stay under
	// 108 bytes. Required.
	Dir string
	// Binary is the containerd executable; default: Find().
	Binary string
	// PodSubnet is the CIDR pod IPs come from on this node; default
	// DefaultPodSubnet.
	PodSubnet string
	// Bridge is the Linux bridge pods attach to (at most 15 bytes);
	// default DefaultBridge. Give each containerd on one host its own
	// bridge and subnet.
	Bridge string
	// Network is the CNI network name; default DefaultNetwork.
	Network string
	// SandboxImage is the pause image; default image.PauseImage. It must
	// be imported before the first pod runs: it cannot be pulled.
	SandboxImage string
	// CNIBinDir holds the CNI plugins; default: FindCNIBinDir().
	CNIBinDir string
}

// Paths under Config.Dir.
func (c Config) socket() string     { return filepath.Join(c.Dir, "containerd.sock") }
func (c Config) configFile() string { return filepath.Join(c.Dir, "config.toml") }
func (c Config) root() string       { return filepath.Join(c.Dir, "root") }
func (c Config) state() string      { return filepath.Join(c.Dir, "state") }
func (c Config) cniConfDir() string { return filepath.Join(c.Dir, "cni", "net.d") }
func (c Config) ipamDir() string    { return filepath.Join(c.Dir, "cni", "ipam") }
func (c Config) logFile() string    { return filepath.Join(c.Dir, "containerd.log") }

// withDefaults fills empty fields that need no detection and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("containerd: Config.Dir is required")
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return c, fmt.Errorf("containerd: dir: %w", err)
	}
	c.Dir = dir
	if c.PodSubnet == "" {
		c.PodSubnet = DefaultPodSubnet
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.Network == "" {
		c.Network = DefaultNetwork
	}
	if c.SandboxImage == "" {
		c.SandboxImage = image.PauseImage
	}
	// containerd also listens on <socket>.ttrpc.
	if n := len(c.socket() + ".ttrpc"); n > maxSocketPath {
		return c, fmt.Errorf("containerd: dir %s is too long: socket path would be %d bytes, the limit is %d", c.Dir, n, maxSocketPath)
	}
	if len(c.Bridge) > 15 {
		return c, fmt.Errorf("containerd: bridge name %q is longer than 15 bytes", c.Bridge)
	}
	if _, _, err := net.ParseCIDR(c.PodSubnet); err != nil {
		return c, fmt.Errorf("containerd: pod subnet: %w", err)
	}
	return c, nil
}

// ConfigTOML renders containerd's config.toml (version 2) for c, whose
// fields must be filled. The settings are those this machine kind needs
// (see notes/containerd.md): restrict_oom_score_adj, a local sandbox image,
// and Drover's own CNI directories.
func ConfigTOML(c Config) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "version = 2\n")
	fmt.Fprintf(&b, "root = %s\nstate = %s\n", q(c.root()), q(c.state()))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %s\n", q(c.socket()))
	// The opt plugin would install into /opt/containerd otherwise.
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %s\n", q(filepath.Join(c.Dir, "opt")))
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\"]\n")
	fmt.Fprintf(&b, "  restrict_oom_score_adj = true\n")
	fmt.Fprintf(&b, "  sandbox_image = %s\n", q(c.SandboxImage))
	fmt.Fprintf(&b, "  stream_server_address = \"127.0.0.1\"\n")
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n")
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n")
	fmt.Fprintf(&b, "  bin_dir = %s\n  conf_dir = %s\n  max_conf_num = 1\n", q(c.CNIBinDir), q(c.cniConfDir()))
	return b.String()
}

// cniConfList mirrors the CNI network configuration list format.
type cniConfList struct {
	CNIVersion string      `json:"cniVersion"`
	Name       string      `json:"name"`
	Plugins    []cniPlugin `json:"plugins"`
}

type cniPlugin struct {
	Type         string          `json:"type"`
	Bridge       string          `json:"bridge,omitempty"`
	IsGateway    bool            `json:"isGateway,omitempty"`
	IPMasq       bool            `json:"ipMasq,omitempty"`
	HairpinMode  bool            `json:"hairpinMode,omitempty"`
	IPAM         *cniIPAM        `json:"ipam,omitempty"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
}

type cniIPAM struct {
	Type    string             `json:"type"`
	Ranges  [][]map[string]any `json:"ranges"`
	Routes  []map[string]any   `json:"routes"`
	DataDir string             `json:"dataDir"`
}

// CNIConfList renders the CNI network for c: a bridge with host-local
// addresses from the pod subnet (recorded under Dir, not /var/lib/cni),
// the bridge as the pods' gateway with masquerading for outside traffic,
// then portmap for hostPort mappings.
func CNIConfList(c Config) ([]byte, error) {
	_, subnet, err := net.ParseCIDR(c.PodSubnet)
	if err != nil {
		return nil, fmt.Errorf("containerd: pod subnet: %w", err)
	}
	defaultRoute := "0.0.0.0/0"
	if subnet.IP.To4() == nil {
		defaultRoute = "::/0"
	}
	list := cniConfList{
		CNIVersion: "0.4.0",
		Name:       c.Network,
		Plugins: []cniPlugin{
			{
				Type:        "bridge",
				Bridge:      c.Bridge,
				IsGateway:   true,
				IPMasq:      true,
				HairpinMode: true,
				IPAM: &cniIPAM{
					Type:    "host-local",
					Ranges:  [][]map[string]any{{{"subnet": subnet.String()}}},
					Routes:  []map[string]any{{"dst": defaultRoute}},
					DataDir: c.ipamDir(),
				},
			},
			{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("containerd: cni config: %w", err)
	}
	return append(b, '\n'), nil
}
