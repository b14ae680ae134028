package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drover/drover/internal/controlplane"
)

// Timings of the bench's own control plane.
const (
	// MinNodeMonitorGracePeriod is the control plane's default grace
	// period; the bench never sets a shorter one.
	MinNodeMonitorGracePeriod = controlplane.DefaultNodeMonitorGracePeriod
	// GraceHeartbeats is how many heartbeat intervals a node may miss
	// before it is marked NotReady: enough for a renewal or two refused
	// (429) or slow (seconds at the 99th percentile) under load.
	GraceHeartbeats = 5
)

// UpstreamLeaderElection is upstream's leader election timing
// (kube-controller-manager's defaults), which the bench's control plane
// runs with: a saturated API server answers in seconds, and Drover's
// shorter defaults then cost the controllers their lease.
var UpstreamLeaderElection = controlplane.LeaderElection{
	LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
}

// GracePeriodFor is the node monitor grace period for simulated nodes
// that renew their Lease every heartbeat: GraceHeartbeats intervals, and
// at least MinNodeMonitorGracePeriod.
func GracePeriodFor(heartbeat time.Duration) time.Duration {
	return max(MinNodeMonitorGracePeriod, GraceHeartbeats*heartbeat)
}

// leaderCounter counts changes of the controllers' leader from the lease
// it sees: each new term (client-go bumps leaseTransitions when a server,
// the same one again included, takes a lease it did not hold) and any
// change of holder it missed the count of.
type leaderCounter struct {
	seen        bool
	holder      string
	transitions int32
	changes     int
}

// observe takes one state of the lease; the first is the baseline.
func (c *leaderCounter) observe(holder string, transitions int32) {
	if !c.seen {
		c.seen, c.holder, c.transitions = true, holder, transitions
		return
	}
	switch {
	case transitions > c.transitions:
		c.changes += int(transitions - c.transitions)
	case holder != "" && c.holder != "" && holder != c.holder:
		c.changes++
	}
	if holder != "" {
		c.holder = holder
	}
	c.transitions = max(c.transitions, transitions)
}

// readyCounter counts how often a node's Ready condition left True.
type readyCounter struct {
	ready map[string]bool
	lost  int
}

// observe takes one state of a node; the first of each is its baseline.
func (c *readyCounter) observe(name string, ready bool) {
	if c.ready == nil {
		c.ready = map[string]bool{}
	}
	if was, ok := c.ready[name]; ok && was && !ready {
		c.lost++
	}
	c.ready[name] = ready
}

func (c *readyCounter) forget(name string) { delete(c.ready, name) }

// health watches the controllers' leader lease and every node's Ready
// condition while the workload runs.
type health struct {
	mu     sync.Mutex
	leader leaderCounter
	nodes  readyCounter
}

// startHealth starts the watches and returns once both have listed.
func startHealth(ctx context.Context, client kubernetes.Interface) (*health, error) {
	h := &health{}
	leases := cache.NewListWatchFromClient(client.CoordinationV1().RESTClient(), "leases", metav1.NamespaceSystem, fields.Everything())
	_, leaseInf := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: leases, ObjectType: &coordinationv1.Lease{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    h.lease,
			UpdateFunc: func(_, obj any) { h.lease(obj) },
		},
	})
	nodes := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "nodes", metav1.NamespaceAll, fields.Everything())
	_, nodeInf := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: nodes, ObjectType: &corev1.Node{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    h.node,
			UpdateFunc: func(_, obj any) { h.node(obj) },
			DeleteFunc: func(obj any) {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				if n, ok := obj.(*corev1.Node); ok {
					h.mu.Lock()
					h.nodes.forget(n.Name)
					h.mu.Unlock()
				}
			},
		},
	})
	go leaseInf.RunWithContext(ctx)
	go nodeInf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), leaseInf.HasSynced, nodeInf.HasSynced) {
		return nil, fmt.Errorf("bench: watching the leader lease and nodes: %w", ctx.Err())
	}
	return h, nil
}

func (h *health) lease(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok || l.Name != controlplane.LeaderLeaseName {
		return
	}
	var holder string
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	var transitions int32
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	h.mu.Lock()
	h.leader.observe(holder, transitions)
	h.mu.Unlock()
}

func (h *health) node(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	h.mu.Lock()
	h.nodes.observe(n.Name, nodeReady(n))
	h.mu.Unlock()
}

// counts returns the leader changes and Ready losses seen so far.
func (h *health) counts() (leaderChanges, readyLost int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.leader.changes, h.nodes.lost
}
