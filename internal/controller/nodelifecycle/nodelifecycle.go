// Package nodelifecycle is the node lifecycle controller: it notices nodes
// whose agent went silent, marks them, and moves their pods away, as
// upstream's node lifecycle controller, taint manager and PodGC do together,
// with Drover's shorter timings.
//
//   - Agents renew a Lease in kube-node-lease every ~2s. A node that shows
//     no sign of life (lease renewal or Ready heartbeat) for
//     NodeMonitorGracePeriod gets Ready (and the pressure conditions it has)
//     set to Unknown, reason NodeStatusUnknown.
//   - Nodes carry the NoSchedule taints their conditions call for
//     (not-ready, unreachable, pressure, unschedulable for cordoned nodes)
//     and, when not Ready, the NoExecute taint unreachable (Unknown) or
//     not-ready (False). NoExecute taints are added at a per-zone rate that
//     drops when most of a zone is unhealthy and stops when every node is:
//     a control plane cut off from its nodes must not evict the cluster.
//   - Pods on a node with a NoExecute taint they do not tolerate are
//     deleted at once; those that tolerate it for tolerationSeconds when
//     that runs out (the API server gives every new pod a short one: registry.AddDefaultTolerations).
//   - A terminating pod on a node that is not Ready cannot be confirmed
//     gone by its agent: once its grace period has elapsed it is deleted
//     with grace period 0, so its controller's count settles.
//
// The decisions are the pure functions of decide.go; Run is the loop.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Options are the controller's timings; zero fields take the defaults.
type Options struct {
	// NodeMonitorGracePeriod is how long a node may show no sign of life
	// before it is marked Unknown (default 8s; upstream 40s). Agents renew
	// their lease about every 2s.
	NodeMonitorGracePeriod time.Duration
	// NodeStartupGracePeriod replaces it for a node that never posted a
	// Ready condition (default 30s; upstream 60s).
	NodeStartupGracePeriod time.Duration
	// NodeMonitorPeriod is how often node health is checked (default 1s;
	// upstream 5s).
	NodeMonitorPeriod time.Duration
	// EvictionRate is how many nodes per second get a NoExecute taint in a
	// healthy zone (default 1; upstream 0.1).
	EvictionRate float64
	// SecondaryEvictionRate replaces it in a zone of more than
	// LargeClusterSizeThreshold nodes in partial disruption (default 0.1;
	// upstream 0.01); smaller zones in partial disruption taint nothing.
	SecondaryEvictionRate float64
	// UnhealthyZoneThreshold is the share of unhealthy nodes (and more than
	// two) that puts a zone in partial disruption (default 0.55, upstream).
	UnhealthyZoneThreshold float64
	// LargeClusterSizeThreshold: see SecondaryEvictionRate (default 50,
	// upstream).
	LargeClusterSizeThreshold int
	// Workers is how many pods are checked at once (default 4).
	Workers int
	// Resync is the informers' resync period (default 10 minutes).
	Resync time.Duration
	// Informers, if set, is a factory shared with other controllers: Run
	// registers its node and pod informers and handlers on it, then calls
	// its Start once, and leaves shutting it down to its owner. If nil, Run
	// makes, starts and stops its own. Leases always come from a factory of
	// Run's own, limited to kube-node-lease.
	Informers informers.SharedInformerFactory
}

func (o *Options) defaults() {
	if o.NodeMonitorGracePeriod <= 0 {
		o.NodeMonitorGracePeriod = 8 * time.Second
	}
	if o.NodeStartupGracePeriod <= 0 {
		o.NodeStartupGracePeriod = 30 * time.Second
	}
	if o.NodeMonitorPeriod <= 0 {
		o.NodeMonitorPeriod = time.Second
	}
	if o.EvictionRate <= 0 {
		o.EvictionRate = 1
	}
	if o.SecondaryEvictionRate <= 0 {
		o.SecondaryEvictionRate = 0.1
	}
	if o.UnhealthyZoneThreshold <= 0 {
		o.UnhealthyZoneThreshold = 0.55
	}
	if o.LargeClusterSizeThreshold <= 0 {
		o.LargeClusterSizeThreshold = 50
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Resync <= 0 {
		o.Resync = 10 * time.Minute
	}
}

const byNode = "spec.nodeName"

// Run runs the controller until ctx is done, then returns nil; an error only
// if it cannot start.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger, opts Options) error {
	opts.defaults()
	if logger == nil {
		logger = slog.Default()
	}
	c := &controller{
		client: client,
		opts:   opts,
		log:    logger.With("controller", "nodelifecycle"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodelifecycle-pods"}),
		probes:    map[string]Probe{},
		buckets:   map[string]*Bucket{},
		taintSeen: map[string]time.Time{},
	}
	factory, own := opts.Informers, opts.Informers == nil
	if own {
		factory = informers.NewSharedInformerFactory(client, opts.Resync)
	}
	leaseFactory := informers.NewSharedInformerFactoryWithOptions(client, opts.Resync, informers.WithNamespace(corev1.NamespaceNodeLease))
	nodes := factory.Core().V1().Nodes()
	pods := factory.Core().V1().Pods()
	leases := leaseFactory.Coordination().V1().Leases()
	c.nodes, c.leases = nodes.Lister(), leases.Lister()
	if err := pods.Informer().AddIndexers(cache.Indexers{byNode: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return fmt.Errorf("nodelifecycle: pod index: %w", err)
	}
	c.pods = pods.Informer().GetIndexer()
	if _, err := pods.Informer().AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueuePod,
		UpdateFunc: func(_, obj any) { c.enqueuePod(obj) },
	}, opts.Resync); err != nil {
		return fmt.Errorf("nodelifecycle: watching pods: %w", err)
	}
	if _, err := nodes.Informer().AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueNodePods(obj.(*corev1.Node).Name) },
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.Node), obj.(*corev1.Node)
			if Ready(o) != Ready(n) || !apiequality.Semantic.DeepEqual(NoExecuteTaints(o), NoExecuteTaints(n)) {
				c.enqueueNodePods(n.Name)
			}
		},
	}, opts.Resync); err != nil {
		return fmt.Errorf("nodelifecycle: watching nodes: %w", err)
	}
	factory.Start(ctx.Done())
	leaseFactory.Start(ctx.Done())
	if own {
		defer factory.Shutdown()
	}
	defer leaseFactory.Shutdown()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced, pods.Informer().HasSynced, leases.Informer().HasSynced) {
		return nil
	}

	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	tick := time.NewTicker(opts.NodeMonitorPeriod)
	defer tick.Stop()
	for {
		c.monitor(ctx, time.Now())
		select {
		case <-ctx.Done():
			c.queue.ShutDown()
			wg.Wait()
			return nil
		case <-tick.C:
		}
	}
}

type controller struct {
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger
	nodes  corelisters.NodeLister
	leases coordinationlisters.LeaseLister
	pods   cache.Indexer
	queue  workqueue.TypedRateLimitingInterface[string]

	// Monitor state, used by the monitor loop only.
	probes  map[string]Probe
	buckets map[string]*Bucket // by zone
	pending []string           // nodes waiting for a NoExecute taint, first come first
	allDown bool

	mu sync.Mutex
	// taintSeen is when the controller first saw NoExecute taints without
	// TimeAdded on a node (by node name).
	taintSeen map[string]time.Time
}

// monitor is one pass over every node: health, zone states, taints.
func (c *controller) monitor(ctx context.Context, now time.Time) {
	all, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	seen := map[string]bool{}
	var nodes []*corev1.Node
	for _, node := range all {
		seen[node.Name] = true
		lease, _ := c.leases.Leases(corev1.NamespaceNodeLease).Get(node.Name)
		p := Observe(c.probes[node.Name], node, lease, now)
		c.probes[node.Name] = p
		if Silent(node, p, now, c.opts.NodeMonitorGracePeriod, c.opts.NodeStartupGracePeriod) {
			if status, changed := MarkUnknown(node, now); changed {
				next := node.DeepCopy()
				next.Status = *status
				updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, next, metav1.UpdateOptions{})
				switch {
				case apierrors.IsConflict(err):
					// The cache is behind: the node changed (maybe it
					// posted status); look again next pass.
					c.log.Debug("node changed while being marked Unknown", "node", node.Name)
				case err != nil:
					c.log.Warn("marking node Unknown, retrying", "node", node.Name, "err", err)
				default:
					c.log.Info("node stopped posting status: Ready Unknown", "node", node.Name,
						"silentFor", now.Sub(p.Seen).Round(time.Millisecond))
					node = updated
				}
			}
		}
		nodes = append(nodes, node)
	}
	for name := range c.probes {
		if !seen[name] {
			delete(c.probes, name)
		}
	}

	// Zone states decide the tainting rates.
	ready, unhealthy, sizes := map[string]int{}, map[string]int{}, map[string]int{}
	for _, node := range nodes {
		z := Zone(node)
		sizes[z]++
		if Ready(node) == corev1.ConditionTrue {
			ready[z]++
		} else {
			unhealthy[z]++
		}
	}
	states := map[string]ZoneState{}
	for z := range sizes {
		states[z] = ComputeZoneState(ready[z], unhealthy[z], c.opts.UnhealthyZoneThreshold)
	}
	rates, allDown := ZoneRates(states, sizes, RateOptions{
		EvictionRate: c.opts.EvictionRate, SecondaryEvictionRate: c.opts.SecondaryEvictionRate,
		LargeClusterSizeThreshold: c.opts.LargeClusterSizeThreshold,
	})
	switch {
	case allDown && !c.allDown:
		c.log.Warn("no node is ready: assuming the control plane is cut off, evicting nothing", "nodes", len(nodes))
	case !allDown && c.allDown:
		c.log.Info("nodes are ready again: leaving full disruption; every node gets a fresh grace period")
		for name, p := range c.probes {
			p.Seen = now
			c.probes[name] = p
		}
	}
	c.allDown = allDown
	for z, r := range rates {
		if b, ok := c.buckets[z]; ok {
			if b.Rate != r {
				c.log.Info("zone eviction rate", "zone", z, "state", states[z], "rate", r)
			}
			b.SetRate(r, now)
		} else {
			c.buckets[z] = NewBucket(r, now)
		}
	}

	// Taints: NoSchedule and removals at once, new NoExecute taints at the
	// zone's rate, first come first.
	wantNew := map[string]bool{}
	for _, node := range nodes {
		if ne := NoExecuteTaint(node); ne != nil && CurrentNoExecute(node) == nil && !allDown {
			wantNew[node.Name] = true
		}
	}
	c.pending = slices.DeleteFunc(c.pending, func(n string) bool { return !wantNew[n] })
	for _, node := range nodes {
		if wantNew[node.Name] && !slices.Contains(c.pending, node.Name) {
			c.pending = append(c.pending, node.Name)
		}
	}
	admitted := map[string]bool{}
	for _, name := range c.pending {
		i := slices.IndexFunc(nodes, func(n *corev1.Node) bool { return n.Name == name })
		if c.buckets[Zone(nodes[i])].Take(now) {
			admitted[name] = true
		}
	}
	c.pending = slices.DeleteFunc(c.pending, func(n string) bool { return admitted[n] })
	for _, node := range nodes {
		ne := NoExecuteTaint(node)
		switch cur := CurrentNoExecute(node); {
		case allDown:
			ne = nil
		case ne != nil && cur == nil && !admitted[node.Name]:
			ne = nil // waits for its turn
		}
		taints, changed := SetTaints(node.Spec.Taints, NoScheduleTaints(node), ne, now)
		if !changed {
			continue
		}
		next := node.DeepCopy()
		next.Spec.Taints = taints
		if _, err := c.client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			c.log.Debug("updating node taints, retrying", "node", node.Name, "err", err)
			if admitted[node.Name] {
				c.pending = append([]string{node.Name}, c.pending...)
			}
			continue
		}
		if ne != nil && admitted[node.Name] {
			c.log.Info("node not ready: tainted NoExecute", "node", node.Name, "taint", ne.Key)
		} else if before := CurrentNoExecute(node); before != nil && ne == nil {
			c.log.Info("node NoExecute taint lifted", "node", node.Name, "taint", before.Key)
		}
	}
}

func (c *controller) enqueuePod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
		c.queue.Add(key)
	}
}

func (c *controller) enqueueNodePods(node string) {
	objs, err := c.pods.ByIndex(byNode, node)
	if err != nil {
		return
	}
	for _, obj := range objs {
		c.enqueuePod(obj)
	}
}

func (c *controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	after, err := c.syncPod(ctx, key)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			c.log.Warn("evicting pod, retrying", "pod", key, "err", err)
		}
		c.queue.AddRateLimited(key)
	case after > 0:
		c.queue.Forget(key)
		c.queue.AddAfter(key, after)
	default:
		c.queue.Forget(key)
	}
	return true
}

// syncPod deletes the pod if its node's NoExecute taints call for it now,
// or force-deletes it if it is terminating on a node that cannot confirm
// it; otherwise it returns when to look again (0: only on a change).
func (c *controller) syncPod(ctx context.Context, key string) (time.Duration, error) {
	obj, exists, err := c.pods.GetByKey(key)
	if err != nil || !exists {
		return 0, err
	}
	pod := obj.(*corev1.Pod)
	node, err := c.nodes.Get(pod.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := time.Now()
	pods := c.client.CoreV1().Pods(pod.Namespace)
	if at, ok := ForceDeleteAt(pod, node); ok {
		if now.Before(at) {
			return at.Sub(now), nil
		}
		zero := int64(0)
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("force-deleting pod on unresponsive node %s: %w", node.Name, err)
		}
		c.log.Info("force-deleted terminating pod of unresponsive node", "pod", key, "node", node.Name)
		return 0, nil
	}
	if pod.DeletionTimestamp != nil {
		return 0, nil
	}
	taints := NoExecuteTaints(node)
	at, ok := EvictAt(pod, taints, c.seen(node.Name, taints, now))
	if !ok {
		return 0, nil
	}
	if now.Before(at) {
		return at.Sub(now), nil
	}
	// Record why, as upstream's taint manager does; the deletion matters more.
	next := pod.DeepCopy()
	setPodCondition(next, corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager",
		Message: "Taint manager: deleting due to NoExecute taint", LastTransitionTime: metav1.NewTime(now),
	})
	if !apiequality.Semantic.DeepEqual(next.Status, pod.Status) {
		if _, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
			return 0, nil
		}
	}
	err = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("deleting pod for NoExecute taint: %w", err)
	}
	c.log.Info("deleted pod for its node's NoExecute taint", "pod", key, "node", node.Name, "taints", taintKeys(taints))
	return 0, nil
}

// seen returns when NoExecute taints without TimeAdded were first seen on
// the node (now, the first time).
func (c *controller) seen(node string, taints []corev1.Taint, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.ContainsFunc(taints, func(t corev1.Taint) bool { return t.TimeAdded == nil }) {
		delete(c.taintSeen, node)
		return now
	}
	t, ok := c.taintSeen[node]
	if !ok {
		t = now
		c.taintSeen[node] = t
	}
	return t
}

func setPodCondition(pod *corev1.Pod, cond corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == cond.Type {
			if pod.Status.Conditions[i].Status != cond.Status || pod.Status.Conditions[i].Reason != cond.Reason {
				pod.Status.Conditions[i] = cond
			}
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, cond)
}

func taintKeys(taints []corev1.Taint) []string {
	out := make([]string, len(taints))
	for i, t := range taints {
		out[i] = t.Key
	}
	return out
}
