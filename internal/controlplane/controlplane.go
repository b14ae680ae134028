// Package controlplane assembles Drover's control plane in one process: an
// etcd member (or a client of external etcd), the cluster CA and admin
// credentials, the API server over HTTPS, and in-process components
// (controllers) that reach the API with client-go like any other client.
package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/authz"
	"github.com/drover/drover/internal/inprocess"
	"github.com/drover/drover/internal/metrics"
	"github.com/drover/drover/internal/metricsapi"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage/cacher"
	"github.com/drover/drover/internal/storage/embedded"
	etcdstore "github.com/drover/drover/internal/storage/etcd"
)

// Defaults and fixed names.
const (
	DefaultListen = ":6443"
	// AdminUser and AdminGroup identify the admin token's holder.
	AdminUser  = "admin"
	AdminGroup = "system:masters"
	// File and directory names inside DataDir.
	KubeconfigFile = "admin.kubeconfig"
	TokenFile      = "admin.token"
	PKIDir         = "pki"
	EtcdDir        = "etcd"
)

// Timeouts for start and stop.
const (
	etcdCheckTimeout = 10 * time.Second
	bootstrapTimeout = 30 * time.Second
	drainTimeout     = 3 * time.Second // for short requests before long-running ones are cut
	shutdownTimeout  = 10 * time.Second
)

// DefaultNodeMonitorGracePeriod is Config.NodeMonitorGracePeriod's
// default (upstream's is 40s; agents renew their Lease about every 2s).
const DefaultNodeMonitorGracePeriod = 8 * time.Second

// DefaultEventTTL is Config.EventTTL's default, upstream's --event-ttl.
const DefaultEventTTL = time.Hour

// ValidateTimings checks the node monitor grace period and the leader
// election's timings, with a message that names the upstream flag.
func (cfg Config) ValidateTimings() error {
	if cfg.NodeMonitorGracePeriod < 0 {
		return fmt.Errorf("node monitor grace period %v must be positive (--node-monitor-grace-period)", cfg.NodeMonitorGracePeriod)
	}
	return cfg.LeaderElection.Validate()
}

// Config describes a control plane. Zero fields take defaults.
type Config struct {
	// DataDir holds all state: etcd data, PKI, admin token and kubeconfig.
	// Created with mode 0700. Required.
	DataDir string
	// Listen is the API server's HOST:PORT (default ":6443"); port 0 picks a free port.
	Listen string
	// EtcdEndpoints, if set, are the client URLs of an external etcd cluster;
	// otherwise an embedded member keeps its data in DataDir/etcd.
	EtcdEndpoints []string
	// EtcdTLS is the client TLS for EtcdEndpoints (none when empty).
	EtcdTLS EtcdTLS
	// Cluster makes this server the first (Init) or another (JoinURL) of
	// a highly available control plane. Zero: a single server.
	Cluster Cluster
	// AdvertiseAddress is the host or IP clients use to reach the API server
	// (the admin kubeconfig points there, and the serving certificate names
	// it). Default: 127.0.0.1, or Listen's host when that is a specific address.
	AdvertiseAddress string
	// TLSSANs are extra names (DNS names or IPs) the serving certificate is
	// valid for, e.g. a load balancer's address in front of several servers.
	TLSSANs []string
	// Version is the GitVersion the API server reports at /version.
	Version string
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Components are extra in-process components started, after the
	// built-in ones, once the API serves (e.g. `drover up`'s agent).
	Components []Component
	// LeaderElection tunes the election that picks which server's
	// leader-only components act.
	LeaderElection LeaderElection
	// NodeMonitorGracePeriod is how long a node may go without a heartbeat
	// before the node lifecycle controller marks it NotReady (Unknown) and,
	// later, evicts its pods; 0 means DefaultNodeMonitorGracePeriod.
	NodeMonitorGracePeriod time.Duration
	// Ready, if set, is called once the API server serves and the built-in
	// namespaces exist. It runs on Run's goroutine and should return quickly.
	Ready func(Info)
	// MaxRequestsInFlight and MaxMutatingRequestsInFlight bound concurrent
	// read-only and mutating requests (queued, then 429 beyond); 0 means 400 and 200,
	// negative means no limit (see apiserver.Config).
	MaxRequestsInFlight, MaxMutatingRequestsInFlight int
	// EventTTL is how long events are kept after their last write
	// (upstream's --event-ttl); 0 means DefaultEventTTL, negative keeps
	// them forever.
	EventTTL time.Duration
}

// Info describes a serving control plane.
type Info struct {
	// Addr is the address the API server is bound to.
	Addr net.Addr
	// URL is the API server's URL as written into the admin kubeconfig.
	URL string
	// KubeconfigPath is the admin kubeconfig (DataDir/admin.kubeconfig).
	KubeconfigPath string
	// RestConfig is a client configuration for the admin; copy before changing.
	RestConfig *rest.Config
	// ServerName names this server (its Lease, and its etcd member in HA).
	ServerName string
	// JoinToken lets other servers join (--join URL --token T); empty for
	// a single server.
	JoinToken string
	// NodeToken lets agents join (drover agent --server URL --token T);
	// it is kept in DataDir/node-token.
	NodeToken string
	// LocalClient is an admin client for callers in this process: it calls
	// the API server's handler directly and watches pods from its watch
	// cache, whose objects it shares (see Clients.InformerClient): what it
	// watches must not be modified.
	LocalClient kubernetes.Interface
}

// Run starts the control plane and serves until ctx is done, then shuts down
// (components and HTTP, then etcd) and returns nil. A failure to start
// (port taken, data dir unusable, etcd unhealthy) is returned at once as a
// one-line error.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	err := run(ctx, cfg)
	if ctx.Err() != nil {
		// Stopped, possibly while starting: what failed then is beside the point.
		cfg.Logger.Info("control plane stopped")
		return nil
	}
	return err
}

func run(ctx context.Context, cfg Config) error {
	if cfg.DataDir == "" {
		return errors.New("controlplane: no data dir")
	}
	if err := cfg.ValidateTimings(); err != nil {
		return err
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// It holds the CA key and the admin token: only its owner may look in,
	// even when it existed before with wider permissions.
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// Bind first: a taken port should fail before anything else starts.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err // already "listen tcp :6443: bind: address already in use"
	}
	defer ln.Close() // no-op once the HTTP server has closed it

	advertise, err := advertiseHost(cfg.AdvertiseAddress, cfg.Listen)
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return fmt.Errorf("listener address: %w", err)
	}
	url := "https://" + net.JoinHostPort(advertise, port)
	cluster, err := prepareCluster(ctx, cfg, advertise, ln.Addr().(*net.TCPAddr).Port, log)
	if err != nil {
		return err
	}
	defer cluster.releasePeerPort() // if Run fails before etcd binds it

	// Credentials.
	ca, err := auth.EnsureCA(filepath.Join(cfg.DataDir, PKIDir))
	if err != nil {
		return err
	}
	certFile, keyFile, err := ca.EnsureServingCert(filepath.Join(cfg.DataDir, PKIDir), append(servingHosts(advertise, cfg.Listen), cfg.TLSSANs...))
	if err != nil {
		return err
	}
	peerTLS, err := cluster.ensureCredentials(ca, advertise)
	if err != nil {
		return err
	}
	serving, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load serving certificate: %w", err)
	}
	token, err := auth.EnsureToken(filepath.Join(cfg.DataDir, TokenFile))
	if err != nil {
		return err
	}
	nodeTok, err := EnsureNodeToken(cfg.DataDir, ca.CertPEM())
	if err != nil {
		return err
	}
	authn := auth.NewTokenAuthenticator()
	authn.Add(token, auth.User{Name: AdminUser, Groups: []string{AdminGroup}})

	// State.
	client, etcdKV, etcdErr, closeEtcd, err := startEtcd(ctx, cfg, cluster, peerTLS, log)
	if err != nil {
		return err
	}
	defer closeEtcd()
	// A watch cache per resource in front of etcd: watches and lists of
	// the latest revision are served from memory (a list only once the
	// cache has caught up with etcd's current revision, so it is as fresh
	// as a quorum read), so that N watchers cost one etcd watch.
	etcdStore := etcdstore.New(client, etcdstore.Options{KV: etcdKV})
	store, err := cacher.NewMulti(etcdStore, cacher.Options{Logger: log.With("component", "watch-cache")},
		apiserver.StoragePrefixes(registry.All())...)
	if err != nil {
		etcdStore.Close()
		return fmt.Errorf("watch cache: %w", err)
	}
	defer store.Close()

	// API server.
	apiMetrics := metrics.NewAPIMetrics()
	authzCache := authz.NewCache() // filled from the API once it serves; until then only system:masters
	authorizer := authz.Default(authzCache)
	handler, err := apiserver.New(apiserver.Config{
		Storage:       store,
		Resources:     registry.All(),
		Authenticator: authn,
		Authorizer:    authorizer,
		Admission:     authz.NewAdmission(authzCache, authorizer),
		Logger:        log.With("component", "apiserver"),
		GitVersion:    cfg.Version,
		Metrics:       apiMetrics,
		ExtraGroups:   []metav1.APIGroup{metricsapi.APIGroup()},

		MaxRequestsInFlight:         cfg.MaxRequestsInFlight,
		MaxMutatingRequestsInFlight: cfg.MaxMutatingRequestsInFlight,
		EventTTL:                    cfg.eventTTL(),
	})
	if err != nil {
		return fmt.Errorf("api server: %w", err)
	}
	handler.Mount("/metrics", apiMetrics.Handler())
	// metrics.k8s.io needs a client of this very server: it is served
	// once the admin clients exist, 503 until then.
	resourceMetrics := &lateHandler{}
	handler.Mount(metricsapi.Prefix, resourceMetrics)
	handler.Mount(PprofPrefix, pprofHandler(authn))
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	fullHandler := NewNodeJoinHandler(cluster.handler(handler, ca, authn, token), ca, cfg.DataDir, log.With("component", "nodejoin"))
	srv := &http.Server{
		Handler: fullHandler,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{serving},
			// Client certificates are optional, but verified when given.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  ca.Pool(),
		},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	log.Info("API server serving", "addr", ln.Addr().String(), "url", url)

	kubeconfig := filepath.Join(cfg.DataDir, KubeconfigFile)
	if err := auth.WriteKubeconfig(kubeconfig, url, ca.CertPEM(), AdminUser, token); err != nil {
		shutdownHTTP(srv, cancelBase, log)
		return err
	}
	log.Info("admin kubeconfig written", "path", kubeconfig)

	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		shutdownHTTP(srv, cancelBase, log)
		return fmt.Errorf("load admin kubeconfig: %w", err)
	}
	restCfg.UserAgent = "drover-controlplane"
	// In-process components share one server: client-go's default of 5
	// requests/s would throttle a 1,000-pod rollout to minutes.
	restCfg.QPS, restCfg.Burst = 2000, 4000
	// They call its handler directly rather than over TLS and HTTP/2 on
	// loopback (a sixth of the control plane's CPU under load), as the
	// admin all the same; restCfg stays the network's, for Info. The
	// transport bounds them (inProcessMaxConcurrent), not a client rate
	// limiter (QPS -1: none; with one, client-go also builds a URL
	// template for its metrics on every request).
	inProcessCfg := &rest.Config{
		Host: "http://inprocess", BearerToken: token, UserAgent: restCfg.UserAgent,
		QPS: -1,
		Transport: &inprocess.Transport{Handler: fullHandler, BaseContext: baseCtx, Logger: log.With("component", "inprocess"),
			MaxConcurrent: inProcessMaxConcurrent},
	}
	clients, err := newClients(inProcessCfg, url)
	if err != nil {
		shutdownHTTP(srv, cancelBase, log)
		return err
	}
	clients.InformerClient = localWatchClient{Interface: clients.Kube, watch: handler.Watch}
	clients.Metadata = localMetadataClient{Interface: clients.Metadata, watch: handler.WatchMetadata}
	if err := ensureNamespaces(ctx, clients.Kube, bootstrapTimeout); err != nil {
		shutdownHTTP(srv, cancelBase, log)
		return err
	}
	if err := ensureKubernetesService(ctx, clients.Kube, handler.KubernetesServiceIP(), advertise, int32(ln.Addr().(*net.TCPAddr).Port)); err != nil {
		shutdownHTTP(srv, cancelBase, log)
		return err
	}
	if err := authz.EnsureBootstrap(ctx, clients.Kube); err != nil {
		shutdownHTTP(srv, cancelBase, log)
		return err
	}

	// In-process components, on their own context so that shutdown stops
	// them in order rather than all at once.
	// The authorizer and metrics.k8s.io, which run on every server, share
	// one watch of pods and nodes (the leader's controllers have their own
	// for each term). Shut down once the components have stopped.
	serverInformers := informers.NewSharedInformerFactory(clients.informerClient(), 0)
	defer serverInformers.Shutdown()
	serverInformers.Core().V1().Nodes().Informer() // metrics.k8s.io's: started with the authorizer's, for the components' lifetime
	compCtx, stopComponents := context.WithCancel(context.WithoutCancel(ctx))
	defer stopComponents()
	// The authorizer's informers are clients too: they stop with the components.
	if err := authzCache.StartWith(compCtx, serverInformers); err != nil {
		shutdownHTTP(srv, cancelBase, log)
		return err
	}
	compErr := make(chan error, 1)
	var wg sync.WaitGroup
	metricsServer := metricsapi.New(clients.informerClient(), log.With("component", "metrics-api"), metricsapi.Options{Informers: serverInformers})
	resourceMetrics.set(metricsServer.Handler())
	scraper := Component{Name: "metrics-api", Run: func(ctx context.Context, _ Clients, _ *slog.Logger) error {
		return metricsServer.Run(ctx)
	}}
	repair := Component{Name: "service-allocation-repair", LeaderOnly: true, Run: func(ctx context.Context, _ Clients, log *slog.Logger) error {
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			if err := handler.RepairAllocations(ctx); err != nil && ctx.Err() == nil {
				log.Warn("repairing service allocations", "component", "service-allocation-repair", "err", err)
			}
		}, time.Minute)
		return nil
	}}
	comps := append(builtinComponents(cfg), repair, scraper, cluster.registry(url))
	if cluster.ha() {
		comps = append(comps, cluster.promoter())
		if cfg.LeaderElection.Identity == "" {
			// Say which server leads.
			cfg.LeaderElection.Identity = cluster.name + "_" + string(uuid.NewUUID())
		}
	}
	leaseReleased := make(chan struct{})
	for _, c := range arrange(append(comps, cfg.Components...), cfg.LeaderElection, func() { close(leaseReleased) }) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clog := log.With("component", c.Name)
			if c.Name == leaderElectionName {
				clog = log // its components name themselves
			}
			clog.Debug("component starting")
			err := c.Run(compCtx, clients, clog)
			if compCtx.Err() != nil {
				return
			}
			if err == nil {
				err = errors.New("exited")
			}
			select {
			case compErr <- fmt.Errorf("%s: %w", c.Name, err):
			default:
			}
		}()
	}

	if cfg.Ready != nil {
		info := Info{Addr: ln.Addr(), URL: url, KubeconfigPath: kubeconfig, RestConfig: rest.CopyConfig(restCfg), ServerName: cluster.name, NodeToken: nodeTok.String(),
			LocalClient: clients.InformerClient}
		if cluster.joinTok.Secret != "" {
			info.JoinToken = cluster.joinTok.String()
		}
		cfg.Ready(info)
	}
	log.Info("control plane ready")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("api server stopped: %w", err)
	case err := <-compErr:
		runErr = err
	case err := <-etcdErr:
		if err == nil {
			err = errors.New("no reason given")
		}
		runErr = fmt.Errorf("etcd member stopped: %w", err)
	}
	// Leave the lists of live servers while the API still answers.
	cluster.leave()
	// Components are clients: telling them to stop first ends their watches,
	// so the HTTP drain is not held up by them.
	stopComponents()
	// A cleanly stopped leader releases its lease, so that another server
	// takes over at once: over the API, so before it stops serving.
	select {
	case <-leaseReleased:
	case <-time.After(drainTimeout):
		log.Warn("leader election did not stop in time; the lease may stay held until it expires")
	}
	shutdownHTTP(srv, cancelBase, log)
	wg.Wait()
	// Deferred: the store, then etcd.
	return runErr
}

// inProcessMaxConcurrent bounds the in-process components' requests served
// at once, as their shared HTTP/2 connection's stream limit did: enough to
// keep two cores busy, and well under the server's in-flight limits (200
// mutating), so that a burst of theirs (a big ReplicaSet's creations) leaves
// nodes' status writes room rather than 429s.
const inProcessMaxConcurrent = 64

// startEtcd connects to external etcd or starts the embedded member, and
// checks that it answers. It returns a client, the KV API for the store's
// writes when the client calls the member in process (nil: the client's
// connection), a channel reporting the embedded member's failure while
// running (nil for external etcd), and a func that releases the member.
func startEtcd(ctx context.Context, cfg Config, cluster *clusterSetup, peerTLS *embedded.TLSFiles, log *slog.Logger) (*clientv3.Client, etcdserverpb.KVClient, <-chan error, func(), error) {
	elog := log.With("component", "etcd")
	if len(cfg.EtcdEndpoints) > 0 {
		tlsCfg, err := cfg.EtcdTLS.clientConfig()
		if err != nil {
			return nil, nil, nil, nil, err
		}
		client, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.EtcdEndpoints,
			DialTimeout: etcdCheckTimeout,
			TLS:         tlsCfg,
			Logger:      zap.NewNop(), // failures surface as errors
		})
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("etcd %v: %w", cfg.EtcdEndpoints, err)
		}
		checkCtx, cancel := context.WithTimeout(ctx, etcdCheckTimeout)
		defer cancel()
		if _, err := client.Get(clientv3.WithRequireLeader(checkCtx), "/drover/health-check"); err != nil {
			client.Close()
			return nil, nil, nil, nil, fmt.Errorf("etcd %v unhealthy: %w", cfg.EtcdEndpoints, err)
		}
		elog.Info("using external etcd", "endpoints", cfg.EtcdEndpoints)
		// The store owns and closes the client.
		return client, nil, nil, func() {}, nil
	}
	member, err := cluster.startMember(ctx, embedded.Config{
		DataDir: filepath.Join(cfg.DataDir, EtcdDir),
		Logger:  elog,
	}, peerTLS)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	elog.Info("embedded etcd member ready", "endpoints", member.Endpoints())
	client := member.Client()
	var kv etcdserverpb.KVClient
	if !cluster.ha() {
		// Alone in its cluster, the member is called in process: no gRPC
		// hop. The store owns and closes this client.
		client, kv = member.InProcessClient(), member.InProcessKV()
	}
	return client, kv, member.Err(), func() {
		if err := member.Close(); err != nil {
			elog.Warn("stopping etcd", "err", err)
		}
	}, nil
}

// shutdownHTTP stops accepting connections, lets short requests finish,
// then ends long-running ones (watches) by cancelling the request context.
func shutdownHTTP(srv *http.Server, cancelBase context.CancelFunc, log *slog.Logger) {
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err == nil {
		cancelBase()
		return
	}
	cancelBase()
	ctx, cancel2 := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel2()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("HTTP shutdown timed out; closing connections", "err", err)
		srv.Close()
	}
}

// advertiseHost picks the host clients should dial.
func advertiseHost(advertise, listen string) (string, error) {
	if advertise != "" {
		if host, _, err := net.SplitHostPort(advertise); err == nil {
			return host, nil // tolerate HOST:PORT; the bound port wins
		}
		return advertise, nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1", nil
	}
	return host, nil
}

// servingHosts lists the names the serving certificate must carry beyond
// the local ones.
func servingHosts(advertise, listen string) []string {
	hosts := []string{advertise}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	return hosts
}

// lateHandler serves with a handler set after the server started, and 503
// before that.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "metrics API starting", http.StatusServiceUnavailable)
}

// eventTTL is the API server's EventTTL: 0 keeps events forever.
func (cfg Config) eventTTL() time.Duration {
	switch {
	case cfg.EventTTL == 0:
		return DefaultEventTTL
	case cfg.EventTTL < 0:
		return 0
	}
	return cfg.EventTTL
}
