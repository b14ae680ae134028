// Package bench measures Drover end to end on simulated nodes: it starts a
// control plane (or targets one by kubeconfig) and a fleet of simulated
// nodes, creates Deployments of sim pods, waits (by watch) until every pod
// is Running and Ready, and reports throughput, pod startup latency, the API
// server's request latency by verb (from its own histograms, diffed over
// the run), memory, etcd size and CPU time.
//
//	res, err := bench.Run(ctx, bench.Config{Nodes: 500, Pods: 10000})
//	res.WriteTable(os.Stdout)
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/agent/simfleet"
	"github.com/drover/drover/internal/controlplane"
	"github.com/drover/drover/internal/kubeclient"
)

// Defaults for Config.
const (
	DefaultNodes       = 100
	DefaultPods        = 3000
	DefaultDeployments = 1
	DefaultConcurrency = 16
	DefaultTimeout     = 10 * time.Minute
	DefaultNamespace   = "drover-bench"
	DefaultNodePrefix  = "bench-"
	// clientQPS lifts client-go's rate limits for the bench's own clients.
	clientQPS, clientBurst = 5000, 10000
)

// Fleet modes: where the simulated nodes run.
const (
	// FleetInProcess runs the fleet in this process.
	FleetInProcess = "in-process"
	// FleetChild runs the fleet as `EXE agent --runtime sim --nodes N` in
	// a child process, so that the server's memory and CPU are measured
	// apart from the fleet's.
	FleetChild = "child"
	// FleetNone starts no nodes: they exist already (e.g. kwok, or a
	// separate `drover agent --nodes`).
	FleetNone = "none"
)

// Config shapes a run. Zero fields take the defaults.
type Config struct {
	Nodes, Pods, Deployments int
	// Concurrency is how many Deployments are created at once.
	Concurrency int
	// Kubeconfig targets an existing cluster; empty starts a control plane
	// in a temporary directory in this process.
	Kubeconfig string
	// Fleet is FleetInProcess (default), FleetChild or FleetNone.
	Fleet string
	// WatchPerNode gives each simulated node its own pod watch (as real
	// nodes have) instead of one shared by the fleet (as KWOK has).
	WatchPerNode bool
	// HeartbeatInterval is the simulated nodes' Lease renewal period;
	// default HeartbeatFor(Nodes, UpstreamHeartbeatInterval), or
	// MaxHeartbeatInterval with Kubeconfig.
	HeartbeatInterval time.Duration
	// NodeMonitorGracePeriod is the own control plane's (none with
	// Kubeconfig); default GracePeriodFor(HeartbeatInterval).
	NodeMonitorGracePeriod time.Duration
	// LeaderElection is the own control plane's leader election timing
	// (none with Kubeconfig); zero fields take UpstreamLeaderElection's.
	LeaderElection controlplane.LeaderElection
	// Executable is the drover binary for FleetChild; default
	// os.Executable().
	Executable string
	// FleetCPUProfile, if set, is where the FleetChild process writes a
	// CPU profile of its whole life.
	FleetCPUProfile string
	// Namespace the workload is created in; default DefaultNamespace.
	Namespace string
	// NodePrefix names the simulated nodes; default DefaultNodePrefix.
	NodePrefix string
	// Timeout bounds the whole run; default DefaultTimeout.
	Timeout time.Duration
	// Logger receives progress; default slog.Default(). The control
	// plane's own logs are dropped below Warn.
	Logger *slog.Logger
	// Started, if set, is called with the API server's client config once
	// nodes are ready and before the workload is created (to start a
	// profile, say).
	Started func(*rest.Config)
}

// Result is what a run measured. Durations are in seconds, sizes in bytes.
type Result struct {
	Nodes       int `json:"nodes"`
	Pods        int `json:"pods"`
	Deployments int `json:"deployments"`
	// Seconds is from the first create to the last pod Ready.
	Seconds    float64 `json:"seconds"`
	PodsPerSec float64 `json:"podsPerSecond"`
	// SchedulerPodsPerSec is pods over the span from the first pod bound
	// to the last (as the watch saw them).
	SchedulerPodsPerSec float64 `json:"schedulerPodsPerSecond"`
	// SecondsToAllScheduled is from the first create to the last bind.
	SecondsToAllScheduled float64 `json:"secondsToAllScheduled"`
	// Startup is pod creation to Ready (watch-observed times) in seconds.
	Startup Percentiles `json:"podStartupSeconds"`
	// API is the API server's request latency by verb over the run, from
	// apiserver_request_duration_seconds (WATCH excluded).
	API map[string]APILatency `json:"apiLatencySeconds"`
	// Requests counts the API requests made during the workload, keyed
	// "VERB resource[/subresource] code".
	Requests map[string]float64 `json:"requests"`
	// Queued is, by priority level, how many requests waited in the API
	// server's queues for an in-flight slot and how long, from
	// apiserver_flowcontrol_request_wait_duration_seconds (those then
	// rejected included).
	Queued map[string]APILatency `json:"queuedSeconds,omitempty"`
	// Rejected counts the requests the in-flight limits refused (429),
	// keyed "priority-level reason".
	Rejected map[string]float64 `json:"rejected,omitempty"`
	// PeakRSS is this process's VmHWM; with the fleet in process it holds
	// control plane, fleet and bench together.
	PeakRSS int64 `json:"peakRSSBytes"`
	// FleetPeakRSS is the child fleet's VmHWM (FleetChild only).
	FleetPeakRSS int64 `json:"fleetPeakRSSBytes,omitempty"`
	// FileRSS is the part of this process's resident memory, when all pods
	// are Ready, that maps files (RssFile): the executable and etcd's
	// database, pages the kernel can drop and read again.
	FileRSS int64 `json:"fileRSSBytes,omitempty"`
	// LiveHeap is the Go heap still in use once all pods are Ready, after a
	// forced collection: what the process keeps, where PeakRSS adds the
	// garbage the collector lets grow between cycles.
	LiveHeap uint64 `json:"liveHeapBytes"`
	// EtcdDBSize is the embedded etcd's database file (own control plane only).
	EtcdDBSize int64 `json:"etcdDBSizeBytes,omitempty"`
	// CPUSeconds is user+system CPU of this process over the whole run
	// (start-up included); FleetCPUSeconds the child fleet's.
	CPUSeconds      float64 `json:"cpuSeconds"`
	FleetCPUSeconds float64 `json:"fleetCPUSeconds,omitempty"`
	// WorkloadCPUSeconds is this process's CPU from the first create to
	// the last Ready.
	WorkloadCPUSeconds float64 `json:"workloadCPUSeconds"`
	// GCCycles and GCCPUSeconds are this process's garbage collections
	// from the first create to the last Ready, and the CPU the Go runtime
	// estimates they took (runtime/metrics /cpu/classes/gc/total).
	GCCycles     uint64  `json:"gcCycles"`
	GCCPUSeconds float64 `json:"gcCPUSeconds"`
	Fleet        string  `json:"fleet"`
	WatchPerNode bool    `json:"watchPerNode"`
	// HeartbeatSeconds is the simulated nodes' Lease renewal period.
	HeartbeatSeconds float64 `json:"heartbeatSeconds,omitempty"`
	// NodeMonitorGraceSeconds and the Leader* timings are the own control
	// plane's (absent with a kubeconfig).
	NodeMonitorGraceSeconds float64 `json:"nodeMonitorGraceSeconds,omitempty"`
	LeaderLeaseSeconds      float64 `json:"leaderLeaseSeconds,omitempty"`
	LeaderRenewSeconds      float64 `json:"leaderRenewSeconds,omitempty"`
	LeaderRetrySeconds      float64 `json:"leaderRetrySeconds,omitempty"`
	// LeaderChanges counts changes of the controllers' leader (new terms
	// of the kube-system/drover-controllers Lease) from the nodes being
	// Ready to the last pod Ready; each restarts every controller. 0 in a
	// healthy run.
	LeaderChanges int `json:"leaderChanges"`
	// NodeReadyLost counts the times a node's Ready condition left True
	// over the same span (the node lifecycle controller found a heartbeat
	// late). 0 in a healthy run.
	NodeReadyLost int `json:"nodeReadyLost"`
}

// Percentiles of a latency distribution, in seconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// APILatency is one verb's request count and latency percentiles.
type APILatency struct {
	Count float64 `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
}

func (c *Config) setDefaults() error {
	if c.Nodes <= 0 {
		c.Nodes = DefaultNodes
	}
	if c.Pods <= 0 {
		c.Pods = DefaultPods
	}
	if c.Deployments <= 0 {
		c.Deployments = DefaultDeployments
	}
	if c.Deployments > c.Pods {
		return fmt.Errorf("bench: %d deployments for %d pods", c.Deployments, c.Pods)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	switch c.Fleet {
	case "":
		c.Fleet = FleetInProcess
	case FleetInProcess, FleetChild, FleetNone:
	default:
		return fmt.Errorf("bench: fleet %q: want %s, %s or %s", c.Fleet, FleetInProcess, FleetChild, FleetNone)
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.NodePrefix == "" {
		c.NodePrefix = DefaultNodePrefix
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HeartbeatInterval <= 0 && c.Fleet != FleetNone {
		limit := UpstreamHeartbeatInterval
		if c.Kubeconfig != "" {
			limit = MaxHeartbeatInterval
		}
		c.HeartbeatInterval = HeartbeatFor(c.Nodes, limit)
	}
	if c.Kubeconfig == "" {
		if c.NodeMonitorGracePeriod <= 0 {
			c.NodeMonitorGracePeriod = GracePeriodFor(c.HeartbeatInterval)
		}
		le := &c.LeaderElection
		if le.LeaseDuration == 0 {
			le.LeaseDuration = UpstreamLeaderElection.LeaseDuration
		}
		if le.RenewDeadline == 0 {
			le.RenewDeadline = UpstreamLeaderElection.RenewDeadline
		}
		if le.RetryPeriod == 0 {
			le.RetryPeriod = UpstreamLeaderElection.RetryPeriod
		}
		if err := (controlplane.Config{NodeMonitorGracePeriod: c.NodeMonitorGracePeriod, LeaderElection: c.LeaderElection}).ValidateTimings(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Lease renewal budget of HeartbeatFor.
const (
	// LeaseWritesPerSecond is the rate of Lease renewals a fleet's
	// heartbeat interval is chosen to stay under.
	LeaseWritesPerSecond = 50
	// MaxHeartbeatInterval keeps renewals well inside the node lifecycle
	// controller's default 8s grace period, for a cluster the bench does
	// not start: a node that misses one renewal (a 429) still has two
	// retries before it is marked Unknown.
	MaxHeartbeatInterval = 3 * time.Second
	// UpstreamHeartbeatInterval is the kubelet's Lease renewal period, the
	// longest the bench's own control plane gets (its grace period follows
	// the interval): at 500 nodes and more, renewals every 3s were more
	// writes than the pods' own.
	UpstreamHeartbeatInterval = 10 * time.Second
)

// HeartbeatFor is the Lease renewal period for a fleet of n nodes: the
// agent's default (2s) up to LeaseWritesPerSecond renewals a second, then
// longer, up to limit.
func HeartbeatFor(n int, limit time.Duration) time.Duration {
	d := time.Duration(n) * time.Second / LeaseWritesPerSecond
	return min(max(d, agent.DefaultHeartbeatInterval), limit).Round(100 * time.Millisecond)
}

// Run performs one benchmark run and returns its figures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel() // runs before bg.Wait: stops the control plane and fleet

	res := &Result{Nodes: cfg.Nodes, Pods: cfg.Pods, Deployments: cfg.Deployments, Fleet: cfg.Fleet, WatchPerNode: cfg.WatchPerNode,
		HeartbeatSeconds: cfg.HeartbeatInterval.Seconds()}
	if cfg.Kubeconfig == "" {
		res.NodeMonitorGraceSeconds = cfg.NodeMonitorGracePeriod.Seconds()
		res.LeaderLeaseSeconds = cfg.LeaderElection.LeaseDuration.Seconds()
		res.LeaderRenewSeconds = cfg.LeaderElection.RenewDeadline.Seconds()
		res.LeaderRetrySeconds = cfg.LeaderElection.RetryPeriod.Seconds()
	}
	var (
		restCfg    *rest.Config
		kubeconfig = cfg.Kubeconfig
		dataDir    string
		bgErr      = make(chan error, 2)
	)
	// The pod watch that times the workload: with the bench's own control
	// plane, served in process, so that its cost (a decode of every pod
	// event, over TLS) is not counted as the control plane's.
	var trackerClient kubernetes.Interface
	if kubeconfig == "" {
		dir, err := os.MkdirTemp("", "drover-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		dataDir = dir
		ready := make(chan controlplane.Info, 1)
		bg.Go(func() {
			err := controlplane.Run(ctx, controlplane.Config{
				DataDir: dir, Listen: "127.0.0.1:0", Version: "bench",
				Logger: slog.New(quietHandler{log.Handler()}),
				Ready:  func(i controlplane.Info) { ready <- i },

				NodeMonitorGracePeriod: cfg.NodeMonitorGracePeriod,
				LeaderElection:         cfg.LeaderElection,
			})
			if err == nil && ctx.Err() == nil {
				err = errors.New("stopped")
			}
			if err != nil {
				bgErr <- fmt.Errorf("bench: control plane: %w", err)
			}
		})
		select {
		case info := <-ready:
			restCfg, kubeconfig = info.RestConfig, info.KubeconfigPath
			trackerClient = info.LocalClient
		case err := <-bgErr:
			return nil, err
		case <-ctx.Done():
			return nil, fmt.Errorf("bench: control plane did not start: %w", ctx.Err())
		}
		log.Info("control plane ready", "dataDir", dir)
	} else {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("bench: kubeconfig: %w", err)
		}
		restCfg = c
	}
	restCfg = rest.CopyConfig(restCfg)
	restCfg.QPS, restCfg.Burst = clientQPS, clientBurst
	restCfg.UserAgent = "drover-bench"
	client, err := kubernetes.NewForConfig(kubeclient.Protobuf(restCfg))
	if err != nil {
		return nil, fmt.Errorf("bench: client: %w", err)
	}

	// The fleet.
	var child *exec.Cmd
	switch cfg.Fleet {
	case FleetInProcess:
		fleetClient, err := kubernetes.NewForConfig(kubeclient.Protobuf(withAgent(restCfg, "drover-simfleet")))
		if err != nil {
			return nil, fmt.Errorf("bench: client: %w", err)
		}
		bg.Go(func() {
			fleetDir, err := scratchDir("drover-bench-fleet-")
			if err != nil {
				bgErr <- err
				return
			}
			defer os.RemoveAll(fleetDir)
			err = simfleet.Run(ctx, simfleet.Config{Nodes: cfg.Nodes, NamePrefix: cfg.NodePrefix, Client: fleetClient, WatchPerNode: cfg.WatchPerNode, HeartbeatInterval: cfg.HeartbeatInterval, DataDir: fleetDir})
			if err == nil && ctx.Err() == nil {
				err = errors.New("stopped")
			}
			if err != nil {
				bgErr <- fmt.Errorf("bench: fleet: %w", err)
			}
		})
	case FleetChild:
		exe := cfg.Executable
		if exe == "" {
			if exe, err = os.Executable(); err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
		}
		fleetDir, err := scratchDir("drover-bench-fleet-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(fleetDir)
		child = exec.Command(exe, "agent", "--runtime", "sim", "--nodes", strconv.Itoa(cfg.Nodes),
			"--node-name-prefix", cfg.NodePrefix, "--kubeconfig", kubeconfig, "--data-dir", fleetDir, "--log-level", "warn",
			"--sim-watch-per-node="+strconv.FormatBool(cfg.WatchPerNode))
		if cfg.FleetCPUProfile != "" {
			child.Args = append(child.Args, "--sim-cpuprofile", cfg.FleetCPUProfile)
		}
		if cfg.HeartbeatInterval > 0 {
			child.Args = append(child.Args, "--heartbeat-interval", cfg.HeartbeatInterval.String())
		}
		var stderr bytes.Buffer
		child.Stderr = &stderr
		if err := child.Start(); err != nil {
			return nil, fmt.Errorf("bench: fleet: %w", err)
		}
		childDone := make(chan struct{})
		bg.Go(func() {
			err := child.Wait()
			close(childDone)
			if ctx.Err() == nil {
				bgErr <- fmt.Errorf("bench: fleet process exited (%v): %s", err, strings.TrimSpace(stderr.String()))
			}
		})
		defer func() {
			child.Process.Signal(syscall.SIGTERM)
			select {
			case <-childDone:
			case <-time.After(10 * time.Second):
				child.Process.Kill()
			}
		}()
	}
	log.Info("waiting for nodes", "nodes", cfg.Nodes, "fleet", cfg.Fleet)
	if err := waitNodesReady(ctx, client, cfg.NodePrefix, cfg.Nodes, bgErr); err != nil {
		return nil, err
	}
	log.Info("nodes ready", "nodes", cfg.Nodes)

	if err := ensureNamespace(ctx, client, cfg.Namespace); err != nil {
		return nil, err
	}
	before, err := scrapeAPI(ctx, client)
	if err != nil {
		return nil, err
	}
	if trackerClient == nil {
		trackerClient = client
	}
	tracker, err := startTracker(ctx, trackerClient, cfg.Namespace, cfg.Pods)
	if err != nil {
		return nil, err
	}
	healthCtx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	health, err := startHealth(healthCtx, client)
	if err != nil {
		return nil, err
	}
	if cfg.Started != nil {
		cfg.Started(rest.CopyConfig(restCfg))
	}

	cpu0, gc0 := cpuSeconds(), readGC()
	start := time.Now()
	log.Info("creating workload", "pods", cfg.Pods, "deployments", cfg.Deployments)
	if err := createDeployments(ctx, client, cfg); err != nil {
		return nil, err
	}
	select {
	case <-tracker.done:
	case err := <-bgErr:
		return nil, err
	case <-ctx.Done():
		s := tracker.summary()
		return nil, fmt.Errorf("bench: %d of %d pods Ready (%d scheduled) when the run ended: %w%s", s.ready, cfg.Pods, s.scheduled, ctx.Err(), describeUnready(client, cfg.Namespace))
	}
	if err := tracker.err(); err != nil {
		return nil, err
	}
	res.WorkloadCPUSeconds = cpuSeconds() - cpu0
	gc := readGC()
	res.GCCycles, res.GCCPUSeconds = gc.cycles-gc0.cycles, gc.cpuSeconds-gc0.cpuSeconds
	res.LeaderChanges, res.NodeReadyLost = health.counts()
	stopHealth()
	log.Info("all pods ready", "seconds", time.Since(start).Seconds())

	after, err := scrapeAPI(ctx, client)
	if err != nil {
		return nil, err
	}
	res.API = map[string]APILatency{}
	for verb, h := range diff(after.latency, before.latency) {
		if h.Count() > 0 {
			res.API[verb] = APILatency{Count: h.Count(), P50: h.Quantile(0.5), P99: h.Quantile(0.99)}
		}
	}
	res.Requests = map[string]float64{}
	for k, v := range after.requests {
		if d := v - before.requests[k]; d > 0 {
			res.Requests[k] = d
		}
	}
	for level, h := range diff(after.queueWait, before.queueWait) {
		if h.Count() > 0 {
			if res.Queued == nil {
				res.Queued = map[string]APILatency{}
			}
			res.Queued[level] = APILatency{Count: h.Count(), P50: h.Quantile(0.5), P99: h.Quantile(0.99)}
		}
	}
	for k, v := range after.rejected {
		if d := v - before.rejected[k]; d > 0 {
			if res.Rejected == nil {
				res.Rejected = map[string]float64{}
			}
			res.Rejected[k] = d
		}
	}
	tracker.fill(res, start)
	res.PeakRSS = procStatusBytes("self", "VmHWM:")
	res.FileRSS = procStatusBytes("self", "RssFile:")
	res.LiveHeap = liveHeap()
	res.CPUSeconds = cpuSeconds()
	if child != nil {
		pid := strconv.Itoa(child.Process.Pid)
		res.FleetPeakRSS = procStatusBytes(pid, "VmHWM:")
		res.FleetCPUSeconds = procCPUSeconds(pid)
	}
	if dataDir != "" {
		res.EtcdDBSize = etcdDBSize(filepath.Join(dataDir, controlplane.EtcdDir))
	}
	if cfg.Kubeconfig != "" {
		// Leave the cluster as found; the namespace controller removes the rest.
		_ = client.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), cfg.Namespace, metav1.DeleteOptions{})
	}
	return res, nil
}

func withAgent(c *rest.Config, agent string) *rest.Config {
	c = rest.CopyConfig(c)
	c.UserAgent = agent
	return c
}

// quietHandler drops records below Warn (the control plane's chatter).
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h quietHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(a)}
}
func (h quietHandler) WithGroup(n string) slog.Handler { return quietHandler{h.Handler.WithGroup(n)} }

func ensureNamespace(ctx context.Context, client kubernetes.Interface, ns string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("bench: namespace %s: %w", ns, err)
	}
	return nil
}

// Split divides pods among n Deployments as evenly as possible.
func Split(pods, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = pods / n
		if i < pods%n {
			out[i]++
		}
	}
	return out
}

// Deployment is the bench's Deployment i with replicas sim pods.
func Deployment(ns string, i, replicas int) *appsv1.Deployment {
	name := fmt.Sprintf("bench-%d", i)
	labels := map[string]string{"app": name}
	r := int32(replicas)
	var zero int64
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &r,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &zero,
					Containers: []corev1.Container{{
						Name:  "app",
						Image: "example.local/bench:1",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("10m"),
							corev1.ResourceMemory: resource.MustParse("16Mi"),
						}},
					}},
				},
			},
		},
	}
}

func createDeployments(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	sizes := Split(cfg.Pods, cfg.Deployments)
	sem := make(chan struct{}, cfg.Concurrency)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i, n := range sizes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := client.AppsV1().Deployments(cfg.Namespace).Create(ctx, Deployment(cfg.Namespace, i, n), metav1.CreateOptions{})
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("bench: create deployment %d: %w", i, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// waitNodesReady watches nodes until want nodes named prefix* are Ready.
func waitNodesReady(ctx context.Context, client kubernetes.Interface, prefix string, want int, bgErr <-chan error) error {
	ready := map[string]bool{}
	for {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("bench: list nodes: %w", err)
		}
		for i := range list.Items {
			n := &list.Items[i]
			ready[n.Name] = strings.HasPrefix(n.Name, prefix) && nodeReady(n)
		}
		if count(ready) >= want {
			return nil
		}
		w, err := client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			return fmt.Errorf("bench: watch nodes: %w", err)
		}
		for done := false; !done; {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					done = true
					break
				}
				if n, ok := ev.Object.(*corev1.Node); ok {
					ready[n.Name] = strings.HasPrefix(n.Name, prefix) && nodeReady(n)
					if count(ready) >= want {
						w.Stop()
						return nil
					}
				}
			case err := <-bgErr:
				w.Stop()
				return err
			case <-ctx.Done():
				w.Stop()
				return fmt.Errorf("bench: %d of %d nodes Ready: %w", count(ready), want, ctx.Err())
			}
		}
	}
}

func count(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// apiScrape is what the bench reads from the API server's /metrics.
type apiScrape struct {
	latency  map[string]Histogram
	requests map[string]float64
	// queueWait is by priority level; rejected keyed "level reason".
	queueWait map[string]Histogram
	rejected  map[string]float64
}

// scrapeAPI reads the API server's request-duration histograms by verb and
// its request counts.
func scrapeAPI(ctx context.Context, client kubernetes.Interface) (apiScrape, error) {
	body, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiScrape{}, fmt.Errorf("bench: scrape /metrics: %w", err)
	}
	lat, err := parseHistograms(bytes.NewReader(body), "apiserver_request_duration_seconds", "verb")
	if err != nil {
		return apiScrape{}, fmt.Errorf("bench: /metrics: %w", err)
	}
	req, err := parseRequestCounts(bytes.NewReader(body))
	if err != nil {
		return apiScrape{}, fmt.Errorf("bench: /metrics: %w", err)
	}
	waits, err := parseHistograms(bytes.NewReader(body), "apiserver_flowcontrol_request_wait_duration_seconds", "priority_level")
	if err != nil {
		return apiScrape{}, fmt.Errorf("bench: /metrics: %w", err)
	}
	rejected, err := parseRejections(bytes.NewReader(body))
	if err != nil {
		return apiScrape{}, fmt.Errorf("bench: /metrics: %w", err)
	}
	return apiScrape{latency: lat, requests: req, queueWait: waits, rejected: rejected}, nil
}

// procStatusBytes reads a size field of a process's /proc status, such
// as VmHWM: (the peak resident set size), in bytes; 0 if unreadable.
func procStatusBytes(pid, field string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// liveHeap collects garbage and returns the heap bytes still in use.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// gcFigures are this process's garbage collections so far.
type gcFigures struct {
	cycles     uint64
	cpuSeconds float64
}

// readGC reads the collections and their CPU from runtime/metrics.
func readGC() gcFigures {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return gcFigures{cycles: s[0].Value.Uint64(), cpuSeconds: s[1].Value.Float64()}
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// procCPUSeconds is another process's user+system CPU from /proc/PID/stat
// (clock ticks of 1/100 s, Linux's USER_HZ).
func procCPUSeconds(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// Fields after the command: state is [0], utime [11], stime [12].
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// etcdDBSize is the size of the bbolt database file under dir.
func etcdDBSize(dir string) int64 {
	var size int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "db" {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	return size
}

// WriteTable prints the result for people.
func (r *Result) WriteTable(w io.Writer) {
	watches := "one pod watch for the fleet"
	if r.WatchPerNode {
		watches = "a pod watch per node"
	}
	if r.HeartbeatSeconds > 0 {
		watches += fmt.Sprintf(", heartbeat %gs", r.HeartbeatSeconds)
	}
	timings := ""
	if r.NodeMonitorGraceSeconds > 0 {
		timings = fmt.Sprintf("; node monitor grace %gs, leader lease %gs renew %gs retry %gs",
			r.NodeMonitorGraceSeconds, r.LeaderLeaseSeconds, r.LeaderRenewSeconds, r.LeaderRetrySeconds)
	}
	fmt.Fprintf(w, "nodes %d, pods %d, deployments %d, fleet %s (%s)%s\n", r.Nodes, r.Pods, r.Deployments, r.Fleet, watches, timings)
	fmt.Fprintf(w, "  end to end          %8.2f s   %8.1f pods/s\n", r.Seconds, r.PodsPerSec)
	fmt.Fprintf(w, "  scheduler           %8.2f s   %8.1f pods/s (first to last bind)\n", r.SecondsToAllScheduled, r.SchedulerPodsPerSec)
	fmt.Fprintf(w, "  leader changes      %8d     node Ready lost %d (both 0 when healthy)\n", r.LeaderChanges, r.NodeReadyLost)
	fmt.Fprintf(w, "  pod startup (s)     p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", r.Startup.P50, r.Startup.P90, r.Startup.P99, r.Startup.Max)
	verbs := make([]string, 0, len(r.API))
	for v := range r.API {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	for _, v := range verbs {
		a := r.API[v]
		fmt.Fprintf(w, "  API %-7s %8.0f requests   p50 %6.1f ms  p99 %6.1f ms\n", v, a.Count, a.P50*1000, a.P99*1000)
	}
	keys := make([]string, 0, len(r.Requests))
	for k := range r.Requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return r.Requests[keys[i]] > r.Requests[keys[j]] })
	for i, k := range keys {
		if i == 8 {
			break
		}
		fmt.Fprintf(w, "  requests %-36s %8.0f  (%.2f per pod)\n", k, r.Requests[k], r.Requests[k]/float64(max(r.Pods, 1)))
	}
	for _, level := range slices.Sorted(maps.Keys(r.Queued)) {
		q := r.Queued[level]
		fmt.Fprintf(w, "  queued %-16s %8.0f requests   p50 %6.1f ms  p99 %6.1f ms\n", level, q.Count, q.P50*1000, q.P99*1000)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Rejected)) {
		fmt.Fprintf(w, "  rejected %-31s %8.0f\n", k, r.Rejected[k])
	}
	fmt.Fprintf(w, "  peak RSS            %8.0f MiB", float64(r.PeakRSS)/(1<<20))
	if r.FleetPeakRSS > 0 {
		fmt.Fprintf(w, " (control plane + bench); fleet %.0f MiB", float64(r.FleetPeakRSS)/(1<<20))
	} else if r.Fleet == FleetInProcess {
		fmt.Fprint(w, " (control plane + fleet + bench)")
	}
	fmt.Fprintln(w)
	if r.LiveHeap > 0 {
		fmt.Fprintf(w, "  live heap           %8.0f MiB at the end, after a collection; %.0f MiB of the RSS maps files (binary, etcd db)\n", float64(r.LiveHeap)/(1<<20), float64(r.FileRSS)/(1<<20))
	}
	if r.EtcdDBSize > 0 {
		fmt.Fprintf(w, "  etcd db             %8.1f MiB\n", float64(r.EtcdDBSize)/(1<<20))
	}
	fmt.Fprintf(w, "  CPU                 %8.1f s (%.1f s during the workload)", r.CPUSeconds, r.WorkloadCPUSeconds)
	if r.FleetCPUSeconds > 0 {
		fmt.Fprintf(w, "; fleet %.1f s", r.FleetCPUSeconds)
	}
	fmt.Fprintln(w)
	if r.GCCycles > 0 {
		fmt.Fprintf(w, "  GC                  %8d cycles during the workload, %.1f CPU-s (control plane + bench)\n", r.GCCycles, r.GCCPUSeconds)
	}
}

// scratchDir makes a temporary directory for the simulated nodes' files (pod
// and log directories, one log line per container start): in memory
// (/dev/shm) where the machine has it, as they are scratch and creating
// 20,000 directories on a journaled disk cost the fleet a tenth of its CPU.
func scratchDir(pattern string) (string, error) {
	if dir, err := os.MkdirTemp("/dev/shm", pattern); err == nil {
		return dir, nil
	}
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("bench: scratch dir: %w", err)
	}
	return dir, nil
}
