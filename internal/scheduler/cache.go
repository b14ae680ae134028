package scheduler

import (
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Cache is the scheduler's view of the cluster: the nodes and the pods
// placed on them, including pods the scheduler has decided to bind but
// has not yet seen bound ("assumed"), with each node's requested
// resources, host ports and replica counts kept up to date as pods come
// and go, so placing a pod costs a pass over the nodes and nothing more.
//
// Cache does no I/O and is not safe for concurrent use: the caller
// serializes (the scheduler holds one lock around it).
type Cache struct {
	cfg   Config
	nodes map[string]*nodeInfo    // by name, including nodes only known from their pods
	list  []*nodeInfo             // nodes with a Node object, in scan order
	pods  map[types.UID]*podState // placed pods (bound or assumed)
	next  int                     // where the next scan starts

	// owners counts placed pods per controller UID and node. Keyed by
	// owner first, a placement looks its pod's owner up once and then
	// each candidate node by pointer in one small map, not the owner's
	// UID (a string) in each node's map.
	owners map[types.UID]map[*nodeInfo]int

	feasible []*nodeInfo
	scores   []nodeScore
	reasons  []string
	diag     []reasonCount
}

// Config tunes a Cache's placement.
type Config struct {
	// PercentageOfNodesToScore is upstream's knob of the same name: in a
	// cluster of more than 100 nodes a placement stops looking once it has
	// found this share of the nodes feasible (at least 100). 0 means
	// upstream's adaptive default (50% minus 1% per 125 nodes, at least 5%);
	// 100 scans every node.
	PercentageOfNodesToScore int
	// Rand breaks ties among the best-scoring nodes; nil takes the first
	// found, which makes placement deterministic.
	Rand *rand.Rand
}

type nodeInfo struct {
	node          *corev1.Node // nil: known only from pods placed on it
	name          string
	labels        map[string]string
	unschedulable bool
	taints        []corev1.Taint
	allocatable   Resources
	allowedPods   int
	allocScalar   map[corev1.ResourceName]int64

	requested      Resources
	scoreRequested Resources
	reqScalar      map[corev1.ResourceName]int64
	podCount       int
	ports          map[portKey]map[string]int // protocol+port -> host IP -> pods
	listed         int                        // index in Cache.list, -1 if not listed
}

type portKey struct {
	proto corev1.Protocol
	port  int32
}

type podState struct {
	pod     *corev1.Pod
	node    string
	req     Resources
	scalar  []ScalarRequest
	score   Resources
	ports   []hostPort
	owner   types.UID
	assumed bool
}

type nodeScore struct {
	n                          *nodeInfo
	fit, balanced              int64
	siblings, affinity, taints int64
	total                      int64
}

type reasonCount struct {
	reason string
	count  int
}

// NewCache returns an empty cache.
func NewCache(cfg Config) *Cache {
	return &Cache{
		cfg:    cfg,
		nodes:  map[string]*nodeInfo{},
		pods:   map[types.UID]*podState{},
		owners: map[types.UID]map[*nodeInfo]int{},
	}
}

// SetNode adds or updates a node.
func (c *Cache) SetNode(n *corev1.Node) {
	ni := c.nodes[n.Name]
	if ni == nil {
		ni = &nodeInfo{name: n.Name, listed: -1}
		c.nodes[n.Name] = ni
	}
	ni.node = n
	ni.labels = n.Labels
	ni.unschedulable = n.Spec.Unschedulable
	ni.taints = EffectiveTaints(n)
	ni.allocatable, ni.allowedPods = nodeAllocatable(n)
	ni.allocScalar = nodeScalars(n)
	if ni.listed < 0 {
		ni.listed = len(c.list)
		c.list = append(c.list, ni)
	}
}

// RemoveNode removes a node. Pods still placed on it stay accounted to
// its name until they go, in case it comes back.
func (c *Cache) RemoveNode(name string) {
	ni := c.nodes[name]
	if ni == nil {
		return
	}
	if i := ni.listed; i >= 0 {
		last := len(c.list) - 1
		c.list[i] = c.list[last]
		c.list[i].listed = i
		c.list[last] = nil
		c.list = c.list[:last]
		ni.listed = -1
	}
	ni.node = nil
	if ni.podCount == 0 {
		delete(c.nodes, name)
	}
}

// NumNodes is the number of nodes placement considers.
func (c *Cache) NumNodes() int { return len(c.list) }

// NodeUsage reports what the pods placed on a node request and how many
// there are.
func (c *Cache) NodeUsage(name string) (Resources, int) {
	ni := c.nodes[name]
	if ni == nil {
		return Resources{}, 0
	}
	return ni.requested, ni.podCount
}

// AddPod records a pod the API server shows bound to a node
// (spec.nodeName set). A pod the cache assumed is confirmed; a pod that
// has finished (Succeeded or Failed) holds nothing and is removed.
func (c *Cache) AddPod(pod *corev1.Pod) {
	if pod.Spec.NodeName == "" {
		return
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		c.RemovePod(pod)
		return
	}
	if ps := c.pods[pod.UID]; ps != nil {
		if ps.node == pod.Spec.NodeName {
			// The usual case: a confirmation or a status change. Requests,
			// ports and owner of a bound pod do not change.
			ps.pod = pod
			ps.assumed = false
			return
		}
		c.remove(ps, pod.UID)
	}
	c.add(pod, pod.Spec.NodeName, false)
}

// Assume records that the scheduler is binding pod to node, before the
// API server confirms it. It fails if the pod is already placed.
func (c *Cache) Assume(pod *corev1.Pod, node string) error {
	if ps := c.pods[pod.UID]; ps != nil {
		return fmt.Errorf("scheduler cache: pod %s/%s is already placed on %s", pod.Namespace, pod.Name, ps.node)
	}
	c.add(pod, node, true)
	return nil
}

// Forget drops an assumed pod whose binding failed. A pod the API server
// has meanwhile shown bound stays.
func (c *Cache) Forget(pod *corev1.Pod) {
	if ps := c.pods[pod.UID]; ps != nil && ps.assumed {
		c.remove(ps, pod.UID)
	}
}

// IsAssumed reports whether a pod is assumed and not yet confirmed.
func (c *Cache) IsAssumed(uid types.UID) bool {
	ps := c.pods[uid]
	return ps != nil && ps.assumed
}

// RemovePod drops a placed pod (deleted, or finished).
func (c *Cache) RemovePod(pod *corev1.Pod) {
	if ps := c.pods[pod.UID]; ps != nil {
		c.remove(ps, pod.UID)
	}
}

func (c *Cache) add(pod *corev1.Pod, node string, assumed bool) {
	ps := &podState{
		pod:     pod,
		node:    node,
		req:     PodRequests(pod),
		scalar:  PodScalarRequests(pod),
		score:   PodScoringRequests(pod),
		ports:   podHostPorts(pod),
		assumed: assumed,
	}
	ps.owner = controllerUID(pod)
	c.pods[pod.UID] = ps
	ni := c.nodes[node]
	if ni == nil {
		ni = &nodeInfo{name: node, listed: -1}
		c.nodes[node] = ni
	}
	ni.requested.add(ps.req)
	ni.scoreRequested.add(ps.score)
	ni.podCount++
	for _, sr := range ps.scalar {
		if ni.reqScalar == nil {
			ni.reqScalar = map[corev1.ResourceName]int64{}
		}
		ni.reqScalar[sr.Name] += sr.Quantity
	}
	for _, p := range ps.ports {
		if ni.ports == nil {
			ni.ports = map[portKey]map[string]int{}
		}
		k := portKey{p.proto, p.port}
		if ni.ports[k] == nil {
			ni.ports[k] = map[string]int{}
		}
		ni.ports[k][p.ip]++
	}
	if ps.owner != "" {
		onNode := c.owners[ps.owner]
		if onNode == nil {
			onNode = map[*nodeInfo]int{}
			c.owners[ps.owner] = onNode
		}
		onNode[ni]++
	}
}

func (c *Cache) remove(ps *podState, uid types.UID) {
	delete(c.pods, uid)
	ni := c.nodes[ps.node]
	if ni == nil {
		return
	}
	ni.requested.sub(ps.req)
	ni.scoreRequested.sub(ps.score)
	ni.podCount--
	for _, sr := range ps.scalar {
		if ni.reqScalar[sr.Name] -= sr.Quantity; ni.reqScalar[sr.Name] <= 0 {
			delete(ni.reqScalar, sr.Name)
		}
	}
	for _, p := range ps.ports {
		k := portKey{p.proto, p.port}
		if ips := ni.ports[k]; ips != nil {
			if ips[p.ip]--; ips[p.ip] <= 0 {
				delete(ips, p.ip)
			}
			if len(ips) == 0 {
				delete(ni.ports, k)
			}
		}
	}
	if onNode := c.owners[ps.owner]; ps.owner != "" && onNode != nil {
		if onNode[ni]--; onNode[ni] <= 0 {
			delete(onNode, ni)
			if len(onNode) == 0 {
				delete(c.owners, ps.owner)
			}
		}
	}
	if ni.podCount == 0 && ni.node == nil {
		delete(c.nodes, ps.node)
	}
}

// portsConflict reports whether any of ports is taken on the node: the
// same protocol and port on the same address, or on every address
// (0.0.0.0) on either side.
func (ni *nodeInfo) portsConflict(ports []hostPort) bool {
	if len(ni.ports) == 0 {
		return false
	}
	for _, p := range ports {
		ips := ni.ports[portKey{p.proto, p.port}]
		if len(ips) == 0 {
			continue
		}
		if p.ip == "0.0.0.0" || ips["0.0.0.0"] > 0 || ips[p.ip] > 0 {
			return true
		}
	}
	return false
}
