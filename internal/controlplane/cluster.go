package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/storage/embedded"
)

// More names inside DataDir.
const (
	// JoinTokenFile holds the token other servers join this cluster with.
	JoinTokenFile = "join-token"
	// ServerNameFile holds this server's generated name.
	ServerNameFile = "server-name"
	// ClusterStateFile records that this data dir belongs to an HA cluster
	// and this member's peer URL, so restarts need no flags.
	ClusterStateFile = "cluster.json"
)

// promoteInterval is how often servers try to promote a joining learner.
const promoteInterval = time.Second

// restartQuorumTimeout bounds how long a restarting HA member waits for a
// majority of its cluster to run.
const restartQuorumTimeout = 10 * time.Minute

// Cluster says whether and how this server is part of a highly available
// control plane: several servers, each with an embedded etcd member of one
// Raft cluster (peer traffic over TLS with certificates of the cluster CA).
type Cluster struct {
	// Init starts the first server of an HA cluster: its etcd member
	// listens for peers on the advertised address, and a join token is
	// written to DataDir/join-token.
	Init bool
	// JoinURL is an existing server's URL (https://host:port); with Token,
	// this server fetches the cluster's CA and tokens from it and adds its
	// etcd member to the cluster (or, with external etcd, only the
	// credentials). Ignored once the data dir holds etcd data.
	JoinURL string
	// Token is the join token ("K10<ca hash>::<secret>") printed by the
	// first server and stored in its DataDir/join-token.
	Token string
	// PeerPort is the etcd peer port; default the API port + 1.
	PeerPort int
	// Name names this server and its etcd member (DNS-1123); default
	// <hostname>-<random>, generated once and kept in DataDir/server-name.
	Name string
}

// EtcdTLS names client TLS files for an external etcd cluster.
type EtcdTLS struct {
	CAFile, CertFile, KeyFile string
}

// clusterState is what ClusterStateFile records.
type clusterState struct {
	Name    string `json:"name"`
	PeerURL string `json:"peerURL"`
}

// clusterMode is how this server keeps its state.
type clusterMode int

const (
	modeSingle   clusterMode = iota // one embedded member on loopback, as without flags
	modeExternal                    // external etcd
	modeInit                        // first member of a new HA cluster
	modeJoin                        // new member of an existing HA cluster
	modeRestart                     // HA member restarting on its own data
	modeConvert                     // single server's member becoming the first of an HA cluster
)

// decideMode picks the mode from the configuration and what the data dir
// holds: HA state (cluster.json) and etcd data.
func decideMode(c Cluster, external, haveState, haveEtcdData bool) (clusterMode, error) {
	if c.Init && c.JoinURL != "" {
		return 0, errors.New("--cluster-init and --join are exclusive: the first server inits, the others join")
	}
	if c.JoinURL != "" && c.Token == "" {
		return 0, errors.New("--join needs --token (the first server's DATA_DIR/join-token)")
	}
	if external {
		if c.Init {
			return 0, errors.New("--cluster-init starts an embedded etcd cluster: not with --etcd-endpoints")
		}
		return modeExternal, nil
	}
	switch {
	case haveEtcdData && haveState:
		return modeRestart, nil
	case haveEtcdData && c.Init:
		return modeConvert, nil
	case haveEtcdData && c.JoinURL != "":
		return 0, errors.New("the data dir holds a single server's etcd data: joining would drop it; join with a new data dir, or make this server the first with --cluster-init")
	case haveEtcdData:
		return modeSingle, nil
	case c.JoinURL != "":
		return modeJoin, nil
	case c.Init:
		return modeInit, nil
	case haveState:
		return 0, errors.New("the data dir belongs to an HA cluster but has no etcd data: start with --join to rejoin")
	}
	return modeSingle, nil
}

// clusterSetup is this server's place in the cluster, worked out before
// etcd starts.
type clusterSetup struct {
	mode     clusterMode
	dataDir  string
	name     string // server name (leases, member name in HA)
	peerURL  string // advertised peer URL (HA)
	listen   string // peer listen URL (HA)
	initial  string // initial cluster (init, join)
	joinFrom *joinResponse
	joinTok  auth.JoinToken
	log      *slog.Logger

	// Set once etcd runs (embedded HA).
	etcd *clientv3.Client
	// reg announces this server (see servers.go).
	reg *registrar
	// peerHold holds the peer port chosen for a new member until etcd
	// binds it (see reservePeerPort); nil for a port given or derived.
	peerHold *embedded.PortReservation
}

// ha reports whether this server runs an HA embedded etcd member.
func (c *clusterSetup) ha() bool {
	return c.mode == modeInit || c.mode == modeJoin || c.mode == modeRestart || c.mode == modeConvert
}

// prepareCluster decides the mode and, for a server joining, fetches the
// cluster's credentials and adds its etcd member through an existing server.
// The credentials are written into the data dir, where the usual loading
// finds them.
func prepareCluster(ctx context.Context, cfg Config, advertise string, apiPort int, log *slog.Logger) (*clusterSetup, error) {
	log = log.With("component", "cluster")
	stateFile := filepath.Join(cfg.DataDir, ClusterStateFile)
	state, haveState, err := readClusterState(stateFile)
	if err != nil {
		return nil, err
	}
	haveData := hasEtcdData(filepath.Join(cfg.DataDir, EtcdDir))
	mode, err := decideMode(cfg.Cluster, len(cfg.EtcdEndpoints) > 0, haveState, haveData)
	if err != nil {
		return nil, err
	}
	name := cfg.Cluster.Name
	if haveState && mode == modeRestart && name != "" && name != state.Name {
		return nil, fmt.Errorf("--name %s: this data dir's etcd member is named %s", name, state.Name)
	}
	if name == "" && haveState {
		name = state.Name
	}
	if name, err = ensureServerName(filepath.Join(cfg.DataDir, ServerNameFile), name); err != nil {
		return nil, err
	}
	c := &clusterSetup{mode: mode, dataDir: cfg.DataDir, name: name, log: log}
	if !c.ha() {
		if mode == modeExternal && cfg.Cluster.JoinURL != "" && !fileExists(filepath.Join(cfg.DataDir, PKIDir, auth.CACertFile)) {
			// Servers sharing external etcd still share the CA and tokens.
			if err := c.join(ctx, cfg, ""); err != nil {
				return nil, err
			}
		}
		return c, nil
	}

	peerPort := cfg.Cluster.PeerPort
	if peerPort == 0 && (mode == modeInit || mode == modeJoin || mode == modeConvert) {
		peerPort = c.reservePeerPort(cfg.Listen)
	}
	if peerPort == 0 {
		peerPort = apiPort + 1
	}
	c.peerURL = "https://" + net.JoinHostPort(advertise, strconv.Itoa(peerPort))
	if mode == modeRestart {
		if state.PeerURL != c.peerURL {
			log.Warn("keeping the peer URL this member was added with", "peerURL", state.PeerURL, "computed", c.peerURL)
		}
		c.peerURL = state.PeerURL
	}
	if c.listen, err = peerListenURL(cfg.Listen, c.peerURL); err != nil {
		return nil, err
	}
	if ip := net.ParseIP(advertise); ip != nil && ip.IsLoopback() {
		log.Warn("the etcd peer URL is on loopback: only servers on this machine can join; set --advertise-address for others", "peerURL", c.peerURL)
	}
	switch mode {
	case modeInit:
		c.initial = c.name + "=" + c.peerURL
	case modeJoin:
		if err := c.join(ctx, cfg, c.peerURL); err != nil {
			c.releasePeerPort()
			return nil, err
		}
		c.initial = c.joinFrom.InitialCluster
	}
	if mode != modeRestart && mode != modeConvert { // a conversion writes it once done
		if err := writeClusterState(stateFile, clusterState{Name: c.name, PeerURL: c.peerURL}); err != nil {
			c.releasePeerPort()
			return nil, err
		}
	}
	return c, nil
}

// reservePeerPort picks the etcd peer port of a new member when the API
// listens on a port the kernel chose (listen's port is 0, as in tests):
// the API port + 1 is then anyone's, and is the parity the kernel prefers
// for outgoing connections' ports. It reserves a free port on the peer
// listener's host until etcd binds it, and returns 0 (the API port + 1 is
// used) for a fixed API port, or if no port can be reserved.
func (c *clusterSetup) reservePeerPort(listen string) int {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != "0" {
		return 0
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "0.0.0.0" // as peerListenURL
	}
	r, err := embedded.ReservePort(host)
	if err != nil {
		c.log.Debug("no etcd peer port reserved; using the API port + 1", "err", err)
		return 0
	}
	c.peerHold = r
	return r.Port
}

// releasePeerPort gives up the peer port reservation, if any: etcd has
// bound it, or will not.
func (c *clusterSetup) releasePeerPort() {
	if c.peerHold != nil {
		c.peerHold.Release()
	}
}

// join fetches the cluster's credentials (and adds an etcd learner for
// peerURL, if set) from cfg.Cluster.JoinURL, and writes them to the data dir.
func (c *clusterSetup) join(ctx context.Context, cfg Config, peerURL string) error {
	tok, err := auth.ParseJoinToken(cfg.Cluster.Token)
	if err != nil {
		return err
	}
	c.log.Info("joining cluster", "server", cfg.Cluster.JoinURL, "name", c.name, "peerURL", peerURL)
	resp, err := requestJoin(ctx, cfg.Cluster.JoinURL, tok, joinRequest{Name: c.name, PeerURL: peerURL}, c.log)
	if err != nil {
		return err
	}
	if peerURL != "" && resp.InitialCluster == "" {
		return fmt.Errorf("join %s: that server uses external etcd; start this one with --etcd-endpoints", cfg.Cluster.JoinURL)
	}
	pki := filepath.Join(cfg.DataDir, PKIDir)
	if _, err := auth.InstallCA(pki, []byte(resp.CACert), []byte(resp.CAKey)); err != nil {
		return err
	}
	if err := auth.WriteToken(filepath.Join(cfg.DataDir, TokenFile), resp.AdminToken); err != nil {
		return err
	}
	if err := auth.WriteJoinToken(filepath.Join(cfg.DataDir, JoinTokenFile), tok); err != nil {
		return err
	}
	if nodeTok, err := auth.ParseJoinToken(resp.NodeToken); err == nil {
		if err := auth.WriteJoinToken(filepath.Join(cfg.DataDir, NodeTokenFile), nodeTok); err != nil {
			return err
		}
	}
	c.joinFrom = resp
	return nil
}

// ensureCredentials issues this member's peer certificate and loads (or,
// on the first server, creates) the join token.
func (c *clusterSetup) ensureCredentials(ca *auth.CA, advertise string) (peer *embedded.TLSFiles, err error) {
	if !c.ha() && c.mode != modeExternal {
		return nil, nil
	}
	tok, err := auth.EnsureJoinToken(filepath.Join(c.dataDir, JoinTokenFile), ca.CertPEM())
	if err != nil {
		return nil, err
	}
	c.joinTok = tok
	if !c.ha() {
		return nil, nil
	}
	u, err := url.Parse(c.peerURL)
	if err != nil {
		return nil, fmt.Errorf("peer url: %w", err)
	}
	pki := filepath.Join(c.dataDir, PKIDir)
	certFile, keyFile, err := ca.EnsurePeerCert(pki, []string{advertise, u.Hostname()})
	if err != nil {
		return nil, err
	}
	return &embedded.TLSFiles{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: filepath.Join(pki, auth.CACertFile)}, nil
}

// memberConfig is the embedded member's configuration in HA mode.
func (c *clusterSetup) memberConfig(base embedded.Config, peerTLS *embedded.TLSFiles) embedded.Config {
	if !c.ha() {
		return base
	}
	base.Name = c.name
	base.PeerURL = c.peerURL
	base.ListenPeerURL = c.listen
	base.PeerTLS = peerTLS
	base.Reserved = c.peerHold != nil
	switch c.mode {
	case modeInit:
		base.InitialCluster, base.ClusterState = c.initial, embedded.ClusterStateNew
	case modeJoin:
		base.InitialCluster, base.ClusterState = c.initial, embedded.ClusterStateExisting
	case modeRestart, modeConvert:
		// The data dir knows the cluster; etcd ignores the initial cluster.
		base.InitialCluster, base.ClusterState = c.name+"="+c.peerURL, embedded.ClusterStateExisting
		// After an outage the servers come back one by one: wait for the
		// others rather than give up after a minute.
		base.StartTimeout = restartQuorumTimeout
		c.log.Info("starting etcd member: it serves once a majority of the cluster's members run", "name", c.name)
	}
	return base
}

// startMember starts the embedded member (base with this server's HA
// settings), converting a single server's member first if need be, and
// waits until it is a voting member.
func (c *clusterSetup) startMember(ctx context.Context, base embedded.Config, peerTLS *embedded.TLSFiles) (*embedded.Member, error) {
	if c.mode == modeConvert {
		if err := c.convert(ctx, base); err != nil {
			return nil, err
		}
	}
	m, err := embedded.Start(ctx, c.memberConfig(base, peerTLS))
	c.releasePeerPort() // bound by etcd, or of no use
	if err != nil {
		return nil, err
	}
	if err := c.waitPromoted(ctx, m, embedded.DefaultStartTimeout); err != nil {
		m.Close()
		return nil, err
	}
	c.etcd = m.Client()
	return m, nil
}

// convert turns a single server's member (loopback, plain HTTP peer URL)
// into the first member of an HA cluster: started as it was, it moves its
// peer URL to the advertised HTTPS one; the HA start then serves it there
// over TLS. etcd's data, and so the cluster's objects, stay.
func (c *clusterSetup) convert(ctx context.Context, base embedded.Config) error {
	c.log.Info("turning this single server into the first server of an HA cluster", "name", c.name, "peerURL", c.peerURL)
	m, err := embedded.Start(ctx, base)
	if err != nil {
		return err
	}
	defer m.Close()
	uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := m.Client().MemberList(uctx)
	if err != nil {
		return fmt.Errorf("etcd member list: %w", err)
	}
	if len(list.Members) != 1 {
		return fmt.Errorf("cannot convert: the etcd cluster has %d members, want 1", len(list.Members))
	}
	if _, err := m.Client().MemberUpdate(uctx, m.ID(), []string{c.peerURL}); err != nil {
		return fmt.Errorf("etcd member update to %s: %w", c.peerURL, err)
	}
	if err := m.Close(); err != nil {
		return err
	}
	return writeClusterState(filepath.Join(c.dataDir, ClusterStateFile), clusterState{Name: c.name, PeerURL: c.peerURL})
}

// waitPromoted waits until this member, which joined as a learner, is a
// voting member (another server promotes it once it has caught up). A
// learner cannot serve the API's writes.
func (c *clusterSetup) waitPromoted(ctx context.Context, m *embedded.Member, timeout time.Duration) error {
	if c.mode != modeJoin && c.mode != modeRestart {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := m.Client().MemberList(ctx, clientv3.WithSerializable())
		if err == nil {
			for _, mem := range resp.Members {
				if mem.ID == m.ID() && !mem.IsLearner {
					if c.mode == modeJoin {
						c.log.Info("etcd member promoted to voting member", "name", c.name)
					}
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd member %q not promoted from learner within %s (is the cluster healthy?)", c.name, timeout)
		case <-tick.C:
		}
	}
}

// promoter promotes learners (servers that joined) once they have caught
// up. Every HA server runs it; a promotion done twice fails harmlessly.
func (c *clusterSetup) promoter() Component {
	return Component{Name: "etcd-learner-promoter", Run: func(ctx context.Context, _ Clients, log *slog.Logger) error {
		tick := time.NewTicker(promoteInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			c.promoteLearners(ctx, log)
		}
	}}
}

func (c *clusterSetup) promoteLearners(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.etcd.MemberList(ctx)
	if err != nil {
		return
	}
	for _, m := range resp.Members {
		if !m.IsLearner {
			continue
		}
		if _, err := c.etcd.MemberPromote(ctx, m.ID); err != nil {
			log.Debug("learner not promoted yet", "member", m.Name, "err", err)
			continue
		}
		log.Info("promoted etcd learner to voting member", "member", m.Name, "peerURLs", m.PeerURLs)
	}
}

// peerListenURL is where the peer listener binds: the API's listen host
// (every interface when that is unspecified) on the peer URL's port.
func peerListenURL(listen, peerURL string) (string, error) {
	u, err := url.Parse(peerURL)
	if err != nil {
		return "", fmt.Errorf("peer url %q: %w", peerURL, err)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "0.0.0.0"
	}
	return "https://" + net.JoinHostPort(host, u.Port()), nil
}

// ensureServerName returns name if set (after validating it), else the
// name stored in path, else a new one <hostname>-<6 hex> which it stores.
func ensureServerName(path, name string) (string, error) {
	if name == "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			name = strings.TrimSpace(string(data))
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("read server name: %w", err)
		default:
			name = generateServerName()
			if err := os.WriteFile(path, []byte(name+"\n"), 0o600); err != nil {
				return "", fmt.Errorf("write server name: %w", err)
			}
		}
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", fmt.Errorf("server name %q: %s", name, strings.Join(errs, "; "))
	}
	return name, nil
}

func generateServerName() string {
	host, _ := os.Hostname()
	host = strings.ToLower(host)
	var b strings.Builder
	for _, r := range host {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	prefix := strings.Trim(b.String(), "-")
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	if prefix == "" {
		prefix = "server"
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	return prefix + "-" + hex.EncodeToString(suffix)
}

func readClusterState(path string) (clusterState, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return clusterState{}, false, nil
	}
	if err != nil {
		return clusterState{}, false, fmt.Errorf("read %s: %w", path, err)
	}
	var s clusterState
	if err := json.Unmarshal(data, &s); err != nil || s.Name == "" || s.PeerURL == "" {
		return clusterState{}, false, fmt.Errorf("%s is damaged (want {\"name\":...,\"peerURL\":...})", path)
	}
	return s, true, nil
}

func writeClusterState(path string, s clusterState) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

// hasEtcdData reports whether dir holds an etcd member's data.
func hasEtcdData(dir string) bool { return fileExists(filepath.Join(dir, "member", "wal")) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// clientConfig is the TLS configuration for external etcd, nil when no
// files are named.
func (t EtcdTLS) clientConfig() (*tls.Config, error) {
	if t == (EtcdTLS{}) {
		return nil, nil
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("etcd client TLS: --etcd-certfile and --etcd-keyfile go together")
	}
	info := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return cfg, nil
}
