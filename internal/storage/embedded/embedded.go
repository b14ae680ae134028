// Package embedded runs an etcd member inside the Drover process, the way
// `drover server` and `drover up` keep their state without an external etcd.
//
// A single member is the default. Several members (an HA control plane) are
// formed by giving each one the same InitialCluster and its own Name and URLs;
// with PeerTLS, members talk to each other over mutually authenticated TLS. A
// member joins a running cluster with ClusterState "existing" once it has been
// added to it (clientv3 MemberAdd or MemberAddAsLearner).
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
	"go.uber.org/zap"
)

// Defaults applied by Start to zero Config fields.
const (
	DefaultName                    = "drover"
	DefaultAutoCompactionRetention = "5m"
	DefaultStartTimeout            = time.Minute
	defaultDialTimeout             = 5 * time.Second
)

// Cluster states accepted in Config.ClusterState.
const (
	ClusterStateNew      = embed.ClusterStateFlagNew
	ClusterStateExisting = embed.ClusterStateFlagExisting
)

// Config describes one embedded etcd member. Zero fields take defaults.
type Config struct {
	// DataDir holds the member's WAL and database; created with mode 0700.
	DataDir string
	// Name is the member name (default "drover"); unique within a cluster.
	Name string
	// ClientURL is where clients connect, e.g. "http://127.0.0.1:2379".
	// Empty: http://127.0.0.1 on a free port.
	ClientURL string
	// PeerURL is where other members connect (advertised to them). Empty:
	// http://127.0.0.1 on a free port. With PeerTLS it must be https.
	PeerURL string
	// ListenPeerURL is the address the peer listener binds, e.g.
	// https://0.0.0.0:2380 to accept peers on every interface while
	// advertising PeerURL. Empty: PeerURL.
	ListenPeerURL string
	// PeerTLS, if set, secures peer traffic: members present CertFile and
	// require peers to present certificates signed by TrustedCAFile.
	PeerTLS *TLSFiles
	// InitialCluster lists "name=peerURL,..." for bootstrapping a cluster.
	// Empty: this member alone.
	InitialCluster string
	// ClusterState is "new" (default) to bootstrap or "existing" to join.
	ClusterState string
	// AutoCompactionRetention is the periodic compaction window, e.g. "5m"
	// (the default, as the Kubernetes API server compacts every 5 minutes);
	// "0" disables auto compaction.
	AutoCompactionRetention string
	// StartTimeout bounds the wait for the member to become ready
	// (default one minute).
	StartTimeout time.Duration
	// Logger receives etcd's logs: errors only, everything from info up when
	// the logger is enabled for debug. Nil means slog.Default().
	Logger *slog.Logger
	// Reserved says that the ports of the URLs set above are held with
	// ReservePort (the caller releases them once Start has returned): etcd's
	// listeners then bind with SO_REUSEPORT, and the ports Start chooses
	// itself are reserved the same way until etcd has bound them. Without
	// it, Start reserves the ports it chooses only when it chooses every
	// port; else it picks free ones and picks again if one is taken before
	// etcd binds it.
	Reserved bool
}

// TLSFiles names PEM files for a TLS endpoint. The certificate must be valid
// both for serving and as a client (peers dial each other with it), for the
// member's advertised host.
type TLSFiles struct {
	CertFile, KeyFile string
	// TrustedCAFile verifies the other side's certificate.
	TrustedCAFile string
}

// Member is a running embedded etcd member with a client connected to it.
type Member struct {
	etcd      *embed.Etcd
	client    *clientv3.Client
	endpoints []string
	closing   *atomic.Bool // demotes etcd's shutdown noise to debug
	errc      chan error
	closeOnce sync.Once
}

// Start starts an etcd member and waits until it serves requests.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	closing := new(atomic.Bool)
	zl := newZapLogger(loggerOf(cfg), closing)
	ecfg, ports, err := etcdConfig(cfg, zl)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		ports.release()
		return nil, fmt.Errorf("etcd: create data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		ports.release()
		return nil, fmt.Errorf("etcd: data dir permissions: %w", err)
	}

	e, err := embed.StartEtcd(ecfg)
	// A free port picked without a reservation may be taken by another
	// process before etcd binds it: pick again, if the port taken is one
	// picked (a port given by the caller stays taken).
	for try := 1; addrInUse(err) && try < 5 && pickedInUse(err, ports); try++ {
		if ecfg, ports, err = etcdConfig(cfg, zl); err != nil {
			return nil, err
		}
		e, err = embed.StartEtcd(ecfg)
	}
	ports.release() // bound by etcd, or of no use
	if err != nil {
		return nil, fmt.Errorf("etcd: start member %q in %s: %w", ecfg.Name, ecfg.Dir, err)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("etcd: member %q failed while starting: %w", ecfg.Name, err)
	case <-timer.C:
		closing.Store(true)
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd: member %q did not become ready within %s", ecfg.Name, timeout)
	case <-ctx.Done():
		closing.Store(true)
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd: member %q did not become ready: %w", ecfg.Name, ctx.Err())
	}

	endpoints := make([]string, 0, len(ecfg.AdvertiseClientUrls))
	for _, u := range ecfg.AdvertiseClientUrls {
		endpoints = append(endpoints, u.String())
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: defaultDialTimeout,
		Logger:      zl,
	})
	if err != nil {
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("etcd: connect to member %q: %w", ecfg.Name, err)
	}
	m := &Member{etcd: e, client: client, endpoints: endpoints, closing: closing, errc: make(chan error, 1)}
	go m.watch()
	return m, nil
}

// watch reports the member's end while it should run: a listener failing,
// or the server stopping by itself (removed from its cluster, a fatal
// storage error).
func (m *Member) watch() {
	select {
	case err, ok := <-m.etcd.Err():
		if ok && !m.closing.Load() {
			m.errc <- err
		}
	case <-m.etcd.Server.StopNotify():
		if m.closing.Load() {
			return
		}
		err := errors.New("etcd: member stopped by itself")
		if m.removed(context.Background()) {
			err = errors.New("etcd: member was removed from its cluster")
		}
		if !m.closing.Load() {
			m.errc <- err
		}
	}
}

// peerCheckTimeout bounds removed's questions to the other members.
const peerCheckTimeout = 5 * time.Second

// removed reports whether the stopped member was removed from its cluster.
//
// Its own member list says so only if it applied its removal before it
// stopped. Often it does not: once a peer has applied the removal, it
// answers the removed member's raft traffic with 410 Gone, and etcd stops
// the member at once, its own list unchanged. So the other members, at the
// peer URLs of its last view of the cluster, are asked too: the member was
// removed if one of them, of the same cluster, lists it no more.
func (m *Member) removed(ctx context.Context) bool {
	s := m.etcd.Server
	self := s.MemberID()
	if !s.IsMemberExist(self) {
		return true
	}
	rt, err := rafthttp.NewRoundTripper(m.etcd.Config().PeerTLSInfo, peerCheckTimeout)
	if err != nil {
		return false
	}
	client := &http.Client{Transport: rt, Timeout: peerCheckTimeout}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, peerCheckTimeout)
	defer cancel()
	cluster := s.Cluster()
	var peerURLs []string
	for _, p := range cluster.Members() {
		if p.ID != self {
			peerURLs = append(peerURLs, p.PeerURLs...)
		}
	}
	answers := make(chan bool, len(peerURLs))
	for _, u := range peerURLs {
		go func() { answers <- listsWithout(ctx, client, u, cluster.ID(), self) }()
	}
	removed := false
	for range peerURLs {
		removed = <-answers || removed
	}
	return removed
}

// listsWithout reports whether the member at peerURL, of cluster, answers
// with a member list that lacks id. Any failure is a no.
func listsWithout(ctx context.Context, client *http.Client, peerURL string, cluster, id types.ID) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(peerURL, "/")+"/members", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	if got, err := types.IDFromString(resp.Header.Get("X-Etcd-Cluster-ID")); err != nil || got != cluster {
		return false
	}
	var members []*membership.Member
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&members); err != nil || len(members) == 0 {
		return false
	}
	for _, p := range members {
		if p.ID == id {
			return false
		}
	}
	return true
}

// Client returns a client connected to this member. The member owns it;
// Close closes it (closing it earlier, e.g. via a store built on it, is fine).
func (m *Member) Client() *clientv3.Client { return m.client }

// InProcessClient returns a new client that calls this member's server
// directly, as etcd's own gateway does: no gRPC, no sockets, and requests and
// responses are passed as they are rather than encoded. The profile of the
// API server under load showed the gRPC hop at a tenth of its CPU.
//
// It is for a member alone in its cluster only: clientv3.WithRequireLeader
// is enforced by the server's gRPC interceptors, which this client bypasses,
// and a lone member always leads once it is ready. Clients of a cluster of
// several members use Client. The caller closes it, before Close.
func (m *Member) InProcessClient() *clientv3.Client { return v3client.New(m.etcd.Server) }

// InProcessKV returns the KV API of this member's server, called in process
// as InProcessClient calls it (v3client.New builds its KV the same way, with
// the server's quota check): for a store that sends its own requests rather
// than clientv3's, e.g. etcd.Options.KV. It is for a member alone in its
// cluster only, as InProcessClient.
func (m *Member) InProcessKV() etcdserverpb.KVClient {
	return adapter.KvServerToKvClient(v3rpc.NewQuotaKVServer(m.etcd.Server))
}

// ID returns the member's ID in its cluster.
func (m *Member) ID() uint64 { return uint64(m.etcd.Server.MemberID()) }

// Name returns the member's name.
func (m *Member) Name() string { return m.etcd.Config().Name }

// Endpoints returns the member's client URLs.
func (m *Member) Endpoints() []string { return append([]string(nil), m.endpoints...) }

// Err reports what stops the member while it runs (e.g. a listener failing,
// or its removal from the cluster); the server should exit when one arrives.
// Nothing arrives once Close has been called.
func (m *Member) Err() <-chan error { return m.errc }

// Close closes the client and stops the member, waiting for it to shut down.
// Calls after the first return nil.
func (m *Member) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.closing.Store(true)
		err = m.client.Close()
		if errors.Is(err, context.Canceled) {
			err = nil // already closed by its other user
		}
		m.etcd.Close()
		if err != nil {
			err = fmt.Errorf("etcd: close client: %w", err)
		}
	})
	return err
}

// picked are the ports Start chose for a member, reserved or not.
type picked struct {
	reserve bool               // hold them until etcd binds them
	held    []*PortReservation // if reserve
	addrs   []string           // host:port of each
}

// pick chooses a free loopback port.
func (p *picked) pick() (string, error) {
	if !p.reserve {
		port, err := freePort()
		if err == nil {
			p.addrs = append(p.addrs, net.JoinHostPort("127.0.0.1", port))
		}
		return port, err
	}
	r, err := ReservePort("127.0.0.1")
	if err != nil {
		return "", err
	}
	p.held = append(p.held, r)
	p.addrs = append(p.addrs, r.Addr())
	return strconv.Itoa(r.Port), nil
}

// release gives up the reservations.
func (p *picked) release() {
	if p == nil {
		return
	}
	for _, r := range p.held {
		r.Release()
	}
	p.held = nil
}

// pickedInUse reports whether err names a port that was picked without a
// reservation, which picking again may cure.
func pickedInUse(err error, p *picked) bool {
	if p == nil || p.reserve {
		return false
	}
	for _, a := range p.addrs {
		if strings.Contains(err.Error(), a) {
			return true
		}
	}
	return false
}

// etcdConfig turns cfg into an embed.Config, choosing free ports as needed.
// The caller releases the ports it returns once etcd has bound them.
func etcdConfig(cfg Config, zl *zap.Logger) (_ *embed.Config, _ *picked, err error) {
	if cfg.DataDir == "" {
		return nil, nil, errors.New("etcd: data dir is required")
	}
	ecfg := embed.NewConfig()
	ecfg.Dir = cfg.DataDir
	ecfg.Name = cfg.Name
	if ecfg.Name == "" {
		ecfg.Name = DefaultName
	}
	// Reserve the ports chosen here when every listener may then bind with
	// SO_REUSEPORT: when the caller reserved the ports it gives, or gives none.
	// Never on a port given but not reserved: a second server given the same
	// port would share it rather than fail.
	ports := &picked{reserve: cfg.Reserved || cfg.ClientURL == "" && cfg.PeerURL == "" && cfg.ListenPeerURL == ""}
	ecfg.SocketOpts.ReusePort = ports.reserve
	defer func() {
		if err != nil {
			ports.release()
		}
	}()

	clientURL, err := urlOrFree(cfg.ClientURL, ports)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: client url: %w", err)
	}
	peerURL, err := urlOrFree(cfg.PeerURL, ports)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: peer url: %w", err)
	}
	ecfg.ListenClientUrls = []url.URL{*clientURL}
	ecfg.AdvertiseClientUrls = []url.URL{*clientURL}
	listenPeerURL := peerURL
	if cfg.ListenPeerURL != "" {
		if listenPeerURL, err = urlOrFree(cfg.ListenPeerURL, ports); err != nil {
			return nil, nil, fmt.Errorf("etcd: listen peer url: %w", err)
		}
	}
	ecfg.ListenPeerUrls = []url.URL{*listenPeerURL}
	ecfg.AdvertisePeerUrls = []url.URL{*peerURL}
	if t := cfg.PeerTLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" || t.TrustedCAFile == "" {
			return nil, nil, errors.New("etcd: peer TLS needs a certificate, a key and a trusted CA")
		}
		if peerURL.Scheme != "https" || listenPeerURL.Scheme != "https" {
			return nil, nil, fmt.Errorf("etcd: peer TLS needs https peer URLs, got %s", peerURL)
		}
		ecfg.PeerTLSInfo = transport.TLSInfo{
			CertFile:       t.CertFile,
			KeyFile:        t.KeyFile,
			TrustedCAFile:  t.TrustedCAFile,
			ClientCertAuth: true,
		}
	} else if peerURL.Scheme == "https" {
		return nil, nil, fmt.Errorf("etcd: peer URL %s is https but no peer TLS is configured", peerURL)
	}

	ecfg.InitialCluster = cfg.InitialCluster
	if ecfg.InitialCluster == "" {
		ecfg.InitialCluster = ecfg.InitialClusterFromName(ecfg.Name)
	}
	switch cfg.ClusterState {
	case "", ClusterStateNew:
		ecfg.ClusterState = ClusterStateNew
	case ClusterStateExisting:
		ecfg.ClusterState = ClusterStateExisting
	default:
		return nil, nil, fmt.Errorf("etcd: cluster state %q: want %q or %q", cfg.ClusterState, ClusterStateNew, ClusterStateExisting)
	}

	ecfg.AutoCompactionMode = embed.CompactorModePeriodic
	ecfg.AutoCompactionRetention = cfg.AutoCompactionRetention
	if ecfg.AutoCompactionRetention == "" {
		ecfg.AutoCompactionRetention = DefaultAutoCompactionRetention
	}

	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)
	return ecfg, ports, nil
}

func loggerOf(cfg Config) *slog.Logger {
	if cfg.Logger != nil {
		return cfg.Logger
	}
	return slog.Default()
}

// urlOrFree parses raw, or picks http://127.0.0.1:<free port> when raw is empty.
func urlOrFree(raw string, ports *picked) (*url.URL, error) {
	if raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Port() == "" {
			return nil, fmt.Errorf("%q: want http(s)://host:port", raw)
		}
		return u, nil
	}
	port, err := ports.pick()
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", port)}, nil
}

// addrInUse reports whether err is a listener's "address already in use",
// however etcd wrapped it.
func addrInUse(err error) bool {
	return err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use"))
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before etcd binds it; the window is small.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}
