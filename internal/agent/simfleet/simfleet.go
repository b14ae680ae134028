// Package simfleet runs many simulated nodes in one process, as KWOK does
// for Kubernetes: each node is a real [agent.Run] on its own [sim.Runtime],
// with its own Lease heartbeats, node status and pod status updates, and
// all of them share one API client (and so its connections).
//
//	err := simfleet.Run(ctx, simfleet.Config{
//		Nodes:  500,
//		Client: clientset,
//	})
//
// By default the nodes share one watch of the pods bound to a node (as KWOK
// has one), each agent handling only the pods bound to it; with WatchPerNode each agent
// watches its own pods (a field-selected watch) as a real node does, so a
// fleet of N nodes holds N pod watches on the API server. Each node has an
// HTTP listener (logs, stats) on 127.0.0.1.
package simfleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/runtime/sim"
)

// Defaults for Config.
const (
	DefaultNamePrefix   = "sim-"
	DefaultCPU          = "32"
	DefaultMemory       = "256Gi"
	DefaultPods         = 110
	DefaultWorkers      = 4
	DefaultStartWorkers = 32
	// DefaultResyncInterval is how often a simulated node looks at a pod
	// it runs when nothing about the pod changed, the kubelet's default
	// syncFrequency. A simulated container's scripted exit is seen when it
	// happens (the sim runtime forecasts it) and its probes are asked on
	// their own schedule, so nothing in a simulated pod waits for it; a
	// real agent's second would have a fleet of thousands of pods spend as
	// much CPU re-reading unchanged pods as the control plane spends in all.
	DefaultResyncInterval = time.Minute
	// DefaultNodeStatusInterval is how often a simulated node rewrites its
	// unchanged status, as the kubelet's nodeStatusReportFrequency: its
	// Lease says it is alive, and a fleet of hundreds of nodes writing
	// their whole Node every few seconds (and every node watcher decoding
	// it) costs the control plane more than the pods do.
	DefaultNodeStatusInterval = time.Minute
	// MaxNodes is how many nodes fit the simulated pod address plan (a /24
	// per node in 10.64.0.0/10).
	MaxNodes = 1 << 14
)

// Config configures a fleet. Nodes and Client are required.
type Config struct {
	// Nodes is how many simulated nodes to run (1..MaxNodes).
	Nodes int
	// NamePrefix names the nodes NamePrefix0, NamePrefix1, ...; default
	// DefaultNamePrefix.
	NamePrefix string
	// Client is shared by every node.
	Client kubernetes.Interface
	// DataDir holds each node's agent directory (DataDir/<node>); default a
	// temporary directory removed when Run returns.
	DataDir string
	// Capacity of each node; default DefaultCapacity().
	Capacity corev1.ResourceList
	// WatchPerNode gives each node its own pod watch, as real nodes have,
	// instead of one shared by the fleet.
	WatchPerNode bool
	// Labels are added to every node's labels.
	Labels map[string]string
	// HeartbeatInterval is each node's Lease renewal period; default
	// agent.DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// NodeStatusInterval is how often each node writes its status when
	// nothing in it changed; default DefaultNodeStatusInterval. A change
	// of readiness is written at once.
	NodeStatusInterval time.Duration
	// Workers is the pod sync workers per node; default DefaultWorkers.
	Workers int
	// ResyncInterval is each node's agent.Config.ResyncInterval; default
	// DefaultResyncInterval.
	ResyncInterval time.Duration
	// StartWorkers is how many nodes register at once; default
	// DefaultStartWorkers.
	StartWorkers int
	// Logger receives the agents' logs; default: discarded, as N agents'
	// logs drown everything else.
	Logger *slog.Logger
	// Ready, if set, is called once every node is registered, with their
	// names.
	Ready func(nodes []string)
}

// DefaultCapacity is a simulated node's capacity: 32 CPUs, 256Gi memory and
// 110 pods.
func DefaultCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(DefaultCPU),
		corev1.ResourceMemory: resource.MustParse(DefaultMemory),
		corev1.ResourcePods:   *resource.NewQuantity(DefaultPods, resource.DecimalSI),
	}
}

// NodeName is the name of node i of a fleet with this prefix.
func NodeName(prefix string, i int) string { return fmt.Sprintf("%s%d", prefix, i) }

// Subnet is node i's simulated pod CIDR, a /24 in 10.64.0.0/10.
func Subnet(i int) string { return fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256) }

func (c *Config) setDefaults() error {
	switch {
	case c.Nodes <= 0 || c.Nodes > MaxNodes:
		return fmt.Errorf("simfleet: %d nodes: want 1 to %d", c.Nodes, MaxNodes)
	case c.Client == nil:
		return errors.New("simfleet: Client is required")
	}
	if c.NamePrefix == "" {
		c.NamePrefix = DefaultNamePrefix
	}
	if c.Capacity == nil {
		c.Capacity = DefaultCapacity()
	}
	if c.NodeStatusInterval <= 0 {
		c.NodeStatusInterval = DefaultNodeStatusInterval
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.StartWorkers <= 0 {
		c.StartWorkers = DefaultStartWorkers
	}
	if c.Logger == nil {
		// Disabled, not writing to io.Discard: a text handler formats each
		// record before discarding it.
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run registers the nodes and runs them until ctx ends, then stops them
// and returns nil. It returns an error if a node cannot start (all the
// others are stopped first) or if one stops with an error.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "drover-simfleet-")
		if err != nil {
			return fmt.Errorf("simfleet: data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		runErr  error
		started = make(chan struct{}, cfg.Nodes)
		slots   = make(chan struct{}, cfg.StartWorkers)
	)
	fail := func(err error) {
		errOnce.Do(func() { runErr = err })
		cancel()
	}
	var (
		shared cache.SharedIndexInformer
		disp   *dispatcher
	)
	if !cfg.WatchPerNode {
		// Only bound pods, as KWOK watches: the fleet has nothing to do
		// with a pod until it is bound (it enters the watch then), and a
		// fleet watching all pods decoded every pod's creation for nothing.
		bound := fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = bound }))
		shared = factory.Core().V1().Pods().Informer()
		if err := shared.AddIndexers(cache.Indexers{nodeIndex: indexByNode}); err != nil {
			return fmt.Errorf("simfleet: %w", err)
		}
		disp = newDispatcher(shared.GetIndexer())
		if _, err := shared.AddEventHandler(disp); err != nil {
			return fmt.Errorf("simfleet: %w", err)
		}
		factory.Start(ctx.Done())
		defer factory.Shutdown()
	}
	events, sink := newEventBroadcaster(ctx, cfg.Client.CoreV1(), eventWorkers, cfg.Logger)
	defer sink.Wait()
	defer events.Shutdown()
	defer cancel() // the sink's workers stop with ctx
	names := make([]string, cfg.Nodes)
	for i := range cfg.Nodes {
		names[i] = NodeName(cfg.NamePrefix, i)
	}
	wg.Go(func() {
		// Register in waves of StartWorkers so that a large fleet does not
		// open every watch at the same instant.
		for i := range cfg.Nodes {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			acfg := agent.Config{
				NodeName:           names[i],
				Client:             cfg.Client,
				Runtime:            sim.New(sim.Config{Subnet: Subnet(i)}),
				DataDir:            filepath.Join(cfg.DataDir, names[i]),
				Logger:             cfg.Logger,
				HeartbeatInterval:  cfg.HeartbeatInterval,
				NodeStatusInterval: cfg.NodeStatusInterval,
				Workers:            cfg.Workers,
				ResyncInterval:     cfg.ResyncInterval,
				ListenAddr:         "127.0.0.1:0",
				NodeIP:             "127.0.0.1",
				Capacity:           cfg.Capacity.DeepCopy(),
				Labels:             cfg.Labels,
				Events:             events,
				NoQueueMetrics:     true,
			}
			if shared != nil {
				acfg.Pods = &agent.PodSource{Informer: shared, Lister: nodePods{idx: shared.GetIndexer(), node: names[i]}, Subscribe: disp.subscribe}
			}
			var once sync.Once
			release := func() { once.Do(func() { <-slots }) }
			acfg.Ready = func(agent.Info) {
				release()
				started <- struct{}{}
			}
			wg.Go(func() {
				defer release()
				if err := agent.Run(ctx, acfg); err != nil {
					fail(fmt.Errorf("simfleet: node %s: %w", acfg.NodeName, err))
				} else if ctx.Err() == nil {
					fail(fmt.Errorf("simfleet: node %s stopped", acfg.NodeName))
				}
			})
		}
	})

	for n := 0; n < cfg.Nodes; n++ {
		select {
		case <-started:
		case <-ctx.Done():
			wg.Wait()
			return runErr
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(names)
	}
	<-ctx.Done()
	wg.Wait()
	return runErr
}
