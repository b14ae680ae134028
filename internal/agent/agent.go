// Package agent is Drover's node agent, its kubelet: it registers a Node,
// keeps its Lease and Ready condition fresh, turns the pods bound to the
// node into sandboxes and containers through a [runtime.Runtime], probes
// them, reports their status, and serves their logs and usage over HTTP.
//
//	err := agent.Run(ctx, agent.Config{
//		NodeName: "node-1",
//		Client:   clientset,
//		Runtime:  rt, // cri, process or sim
//		DataDir:  "/var/lib/drover/agent",
//	})
//
// Everything goes through the API server. The agent keeps no state of its
// own that matters: what runs is read back from the runtime (by the
// io.kubernetes.pod.uid labels it puts on everything), so an agent that
// restarts adopts its containers and restarts none. Stopping the agent
// (cancelling ctx) leaves containers running.
//
// The pure parts, table-tested, are [Backoff] (CrashLoopBackOff),
// [ProbeState] (probe thresholds and timing), the status computation and
// environment resolution.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/drover/drover/internal/metrics"
	"github.com/drover/drover/internal/runtime"
)

// Defaults for Config.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultBackoffBase       = 10 * time.Second
	DefaultBackoffCap        = 5 * time.Minute
	DefaultBackoffReset      = 10 * time.Minute
	DefaultResyncInterval    = time.Second
	DefaultListenAddr        = ":10250"
	DefaultWorkers           = 8
	DefaultKubeletVersion    = "v1.37.2"
)

// Config configures an agent. NodeName, Client, Runtime and DataDir are
// required; zero values of the rest take the defaults named.
type Config struct {
	// NodeName is the Node's name.
	NodeName string
	// Client talks to the API server.
	Client kubernetes.Interface
	// Runtime runs the pods.
	Runtime runtime.Runtime
	// DataDir holds pod volumes (DataDir/pods/<uid>) and container logs
	// (DataDir/logs).
	DataDir string
	// Logger receives what the agent does; default slog.Default().
	Logger *slog.Logger

	// HeartbeatInterval is how often the Lease is renewed; default
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// NodeStatusInterval is how often the Node's status (and its Ready
	// condition's lastHeartbeatTime) is written when nothing changed;
	// default 5 × HeartbeatInterval. A change of runtime readiness is
	// written at the next heartbeat.
	NodeStatusInterval time.Duration
	// LeaseDuration is the Lease's leaseDurationSeconds; default 5 ×
	// HeartbeatInterval (at least 1s).
	LeaseDuration time.Duration

	// BackoffBase, BackoffCap and BackoffReset are the CrashLoopBackOff
	// policy (see Backoff); defaults 10s, 5m and 10m as upstream.
	BackoffBase, BackoffCap, BackoffReset time.Duration
	// EndpointDrainDelay is how long a terminating Service backend keeps
	// running after it left the Service's ready endpoints, before its
	// preStop hooks and SIGTERM (see drainEndpoints); default
	// DefaultEndpointDrainDelay, negative turns the wait off.
	EndpointDrainDelay time.Duration
	// ResyncInterval is how often each pod is compared with its runtime
	// state (to see containers exit); default DefaultResyncInterval.
	ResyncInterval time.Duration
	// Workers is how many pods are synced at once; default DefaultWorkers.
	Workers int

	// ListenAddr is the address of the HTTP endpoint (logs, stats,
	// healthz); default DefaultListenAddr. Use "127.0.0.1:0" for a free
	// port. Its port is published in the Node's daemonEndpoints.
	ListenAddr string
	// NodeIP is the node's InternalIP; default: the address of the
	// default route's interface.
	NodeIP string
	// Capacity overrides the node's capacity (cpu, memory, pods), for
	// simulated nodes; default: the host's, with pods MaxPods.
	Capacity corev1.ResourceList
	// ClusterDNS are the cluster DNS servers' addresses that pods with
	// dnsPolicy ClusterFirst get as nameservers (see dns.ForPod); empty
	// gives pods the host's resolver configuration.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain; default
	// dns.DefaultDomain (cluster.local).
	ClusterDomain string
	// ResolvConf is the host's resolver configuration file, the base of
	// pods' DNS settings; default /etc/resolv.conf.
	ResolvConf string
	// Labels are added to the Node's labels.
	Labels map[string]string
	// KubeletVersion is reported in nodeInfo; default
	// DefaultKubeletVersion.
	KubeletVersion string

	// Pods, if set, is a pod informer shared with other agents in this
	// process (a simulated fleet's one watch of all pods, as KWOK has):
	// the agent then opens no pod watch of its own and handles only the
	// pods bound to its node. The caller starts the informer.
	Pods *PodSource

	// Events, if set, is an event broadcaster shared with other agents in
	// this process (a simulated fleet's): the agent makes its recorder
	// from it, and neither starts it nor shuts it down. Default: a
	// broadcaster of the agent's own, recording to the API server.
	Events record.EventBroadcaster
	// NoQueueMetrics leaves the pod work queue out of the workqueue_*
	// metrics: in a process of many agents (a simulated fleet) every
	// agent's queue would report as the one "pods" queue, each over the
	// others' figures, and keep a ticker of its own for it.
	NoQueueMetrics bool

	// Ready, if set, is called once the node is registered and the HTTP
	// endpoint serves.
	Ready func(Info)

	// synced, if set, is called after each successful pod sync with
	// whether it wrote the pod's status (for tests).
	synced func(key string, wrote bool)
	// requeued, if set, is called with when a successful pod sync asked
	// to look at the pod again (for tests).
	requeued func(key string, after time.Duration)
}

// PodSource is a shared pod informer and a lister of one node's pods in it.
type PodSource struct {
	Informer cache.SharedIndexInformer
	// Lister lists and gets only the pods bound to the agent's node.
	Lister corelisters.PodLister
	// Subscribe, if set, registers the handler of the node's pod events
	// in place of a handler on Informer that filters every pod's events:
	// it is called with the events of the node's pods only, starting with
	// additions of those Informer holds. It returns how to unregister.
	Subscribe func(node string, h cache.ResourceEventHandler) (unsubscribe func())
}

// Info describes a running agent.
type Info struct {
	// Addr is the HTTP endpoint's address, e.g. "127.0.0.1:10250".
	Addr string
	// NodeIP is the node's InternalIP.
	NodeIP string
	// Runtime is the runtime's containerRuntimeVersion, e.g.
	// "containerd://1.6.20".
	Runtime string
}

func (c *Config) setDefaults() error {
	switch {
	case c.NodeName == "":
		return errors.New("agent: NodeName is required")
	case c.Client == nil:
		return errors.New("agent: Client is required")
	case c.Runtime == nil:
		return errors.New("agent: Runtime is required")
	case c.DataDir == "":
		return errors.New("agent: DataDir is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.NodeStatusInterval <= 0 {
		c.NodeStatusInterval = 5 * c.HeartbeatInterval
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = max(5*c.HeartbeatInterval, time.Second)
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffCap <= 0 {
		c.BackoffCap = DefaultBackoffCap
	}
	if c.BackoffReset <= 0 {
		c.BackoffReset = DefaultBackoffReset
	}
	if c.EndpointDrainDelay == 0 {
		c.EndpointDrainDelay = DefaultEndpointDrainDelay
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.NodeIP == "" {
		c.NodeIP = detectNodeIP()
	}
	if c.KubeletVersion == "" {
		c.KubeletVersion = DefaultKubeletVersion
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	c.DataDir = abs
	return nil
}

// agent is one running agent.
type agent struct {
	cfg         Config
	log         *slog.Logger
	host        hostInfo
	port        int
	runtimeName string // prefix of container IDs

	// Owned by the heartbeat goroutine after registration.
	node  *corev1.Node
	lease *coordinationv1.Lease

	pods        *podManager
	recorder    record.EventRecorder
	nodeCreated metav1.Time // set before the HTTP endpoint serves
}

// Run registers the node and runs the agent until ctx ends, then stops
// (containers keep running) and returns nil. It returns an error when it
// cannot start: bad configuration, the port is taken, the runtime does not
// answer, or the node cannot be registered.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	a := &agent{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName)}
	for _, dir := range []string{a.podsDir(), a.logsDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("agent: data dir: %w", err)
		}
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	v, err := cfg.Runtime.Version(vctx)
	cancel()
	if err != nil {
		return fmt.Errorf("agent: runtime %s: %w", cfg.Runtime.Name(), err)
	}
	a.runtimeName = v.RuntimeName
	if cfg.Capacity != nil {
		a.host = hostInfo{Capacity: cfg.Capacity, KernelVersion: readTrim("/proc/sys/kernel/osrelease"), OSImage: osImage()}
	} else {
		a.host = readHost()
	}
	a.host.RuntimeVersion = v.RuntimeName + "://" + v.RuntimeVersion

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("agent: listen on %s: %w", cfg.ListenAddr, err)
	}
	defer ln.Close()
	a.port = ln.Addr().(*net.TCPAddr).Port

	if err := a.registerNode(ctx); err != nil {
		return err
	}
	a.nodeCreated = a.node.CreationTimestamp
	if err := a.renewLease(ctx); err != nil {
		return err
	}
	broadcaster := cfg.Events
	if broadcaster == nil {
		broadcaster = record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cfg.Client.CoreV1().Events("")})
		defer broadcaster.Shutdown()
	}
	a.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: cfg.NodeName})
	a.recorder.Eventf(nodeRef(cfg.NodeName), corev1.EventTypeNormal, "Starting", "Starting drover agent.")
	a.log.Info("node registered", "runtime", a.host.RuntimeVersion, "ip", cfg.NodeIP, "port", a.port)

	ctx, cancel = context.WithCancel(ctx)
	defer cancel()
	metricsHandler := metrics.ComponentsHandler() // before the pod queue, so that it has metrics
	a.pods = newPodManager(a)
	srv := &http.Server{Handler: a.handler(metricsHandler), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	wg.Go(func() { a.heartbeat(ctx) })
	podsErr := make(chan error, 1)
	wg.Go(func() { podsErr <- a.pods.run(ctx) })

	if cfg.Ready != nil {
		host := cfg.NodeIP
		if h, _, err := net.SplitHostPort(ln.Addr().String()); err == nil && h != "::" && h != "0.0.0.0" {
			host = h
		}
		cfg.Ready(Info{Addr: net.JoinHostPort(host, strconv.Itoa(a.port)), NodeIP: cfg.NodeIP, Runtime: a.host.RuntimeVersion})
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	case runErr = <-podsErr:
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(shutdownCtx)
	cancelShutdown()
	srv.Close()
	cancel()
	wg.Wait()
	if runErr != nil {
		return fmt.Errorf("agent: %w", runErr)
	}
	a.log.Info("agent stopped; containers keep running")
	return nil
}

// event records an event about obj, as the kubelet would.
func (a *agent) event(obj apiruntime.Object, eventType, reason, format string, args ...any) {
	if a.recorder != nil {
		a.recorder.Eventf(obj, eventType, reason, format, args...)
	}
}

// nodeRef is how the kubelet names its node in events.
func nodeRef(name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Node", Name: name, UID: types.UID(name)}
}

func (a *agent) podsDir() string { return filepath.Join(a.cfg.DataDir, "pods") }
func (a *agent) logsDir() string { return filepath.Join(a.cfg.DataDir, "logs") }

func (a *agent) podDir(uid types.UID) string     { return filepath.Join(a.podsDir(), string(uid)) }
func (a *agent) volumesDir(uid types.UID) string { return filepath.Join(a.podDir(uid), "volumes") }
