package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Score weights, as upstream's default profile weighs its plugins.
const (
	weightFit                = 1 // NodeResourcesFit, LeastAllocated
	weightBalanced           = 1 // NodeResourcesBalancedAllocation
	weightSpread             = 2 // PodTopologySpread (system default: by hostname)
	weightNodeAffinity       = 2 // NodeAffinity, preferred terms
	weightTaint              = 3 // TaintToleration, PreferNoSchedule
	maxNodeScore       int64 = 100
)

// minFeasibleNodesToFind is upstream's floor for the number of feasible
// nodes a placement looks for before it stops.
const minFeasibleNodesToFind = 100

// ErrNoNodesAvailable is the outcome when the cluster has no nodes at all;
// upstream's wording.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// Schedule chooses a node for pod among the cache's nodes, or returns why
// none fits: ErrNoNodesAvailable, or a *FitError whose message is
// upstream's "0/N nodes are available: ...". It does not place the pod:
// call Assume with the result.
//
// Nodes are filtered as upstream's default profile does (NodeUnschedulable,
// TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, in that
// order, stopping at the first failure per node) and the feasible ones
// scored: least allocated and balanced CPU and memory, spread of the pod's
// controller's replicas across nodes, preferred node affinity, and
// untolerated PreferNoSchedule taints.
func (c *Cache) Schedule(pod *corev1.Pod) (string, error) {
	n := len(c.list)
	if n == 0 {
		return "", ErrNoNodesAvailable
	}
	pi := newPodInfo(pod)
	want := c.numFeasibleNodesToFind(n)
	c.feasible = c.feasible[:0]
	c.diag = c.diag[:0]
	unresolvable, resolvable := 0, 0
	start := c.next % n
	processed := 0
	for i := range n {
		ni := c.list[(start+i)%n]
		processed++
		reasons, canEvict := pi.filter(ni, c.reasons)
		if reasons == nil {
			c.feasible = append(c.feasible, ni)
			if len(c.feasible) >= want {
				break
			}
			continue
		}
		if canEvict {
			resolvable++
		} else {
			unresolvable++
		}
		c.count(reasons)
	}
	c.next = (start + processed) % n
	switch len(c.feasible) {
	case 0:
		fe := &FitError{
			NumAllNodes:     n,
			Reasons:         make(map[string]int, len(c.diag)),
			Unresolvable:    unresolvable,
			NoVictims:       resolvable,
			PreemptionNever: pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever,
		}
		for _, rc := range c.diag {
			fe.Reasons[rc.reason] = rc.count
		}
		return "", fe
	case 1:
		return c.feasible[0].name, nil
	}
	return c.best(pi), nil
}

func (c *Cache) count(reasons []string) {
next:
	for _, r := range reasons {
		for i := range c.diag {
			if c.diag[i].reason == r {
				c.diag[i].count++
				continue next
			}
		}
		c.diag = append(c.diag, reasonCount{reason: r, count: 1})
	}
}

// numFeasibleNodesToFind is upstream's: all nodes up to 100, then a share.
func (c *Cache) numFeasibleNodesToFind(n int) int {
	if n < minFeasibleNodesToFind {
		return n
	}
	pct := c.cfg.PercentageOfNodesToScore
	if pct <= 0 {
		pct = max(50-n/125, 5)
	}
	if pct >= 100 {
		return n
	}
	return max(n*pct/100, minFeasibleNodesToFind)
}

// best scores the feasible nodes and returns the highest; ties go to the
// first found or, with Config.Rand, to one chosen uniformly.
func (c *Cache) best(pi *podInfo) string {
	c.scores = c.scores[:0]
	var maxSib, minSib, maxAff, maxTaint int64
	minSib = -1
	var siblings map[*nodeInfo]int
	if pi.owner != "" {
		siblings = c.owners[pi.owner] // nil (none placed yet) reads as 0
	}
	for _, ni := range c.feasible {
		s := nodeScore{n: ni}
		s.fit, s.balanced = resourceScores(ni, pi)
		if len(siblings) > 0 {
			s.siblings = int64(siblings[ni])
		}
		for i := range pi.preferred {
			if matchTerm(&pi.preferred[i].term, ni.name, ni.labels) {
				s.affinity += pi.preferred[i].weight
			}
		}
		for i := range ni.taints {
			t := &ni.taints[i]
			if t.Effect == corev1.TaintEffectPreferNoSchedule && !toleratedPreferNoSchedule(pi.pod.Spec.Tolerations, t) {
				s.taints++
			}
		}
		maxSib = max(maxSib, s.siblings)
		if minSib < 0 || s.siblings < minSib {
			minSib = s.siblings
		}
		maxAff = max(maxAff, s.affinity)
		maxTaint = max(maxTaint, s.taints)
		c.scores = append(c.scores, s)
	}
	bestIdx, ties := 0, 0
	var bestTotal int64 = -1
	for i := range c.scores {
		s := &c.scores[i]
		spread := maxNodeScore
		if maxSib > 0 {
			spread = maxNodeScore * (maxSib + minSib - s.siblings) / maxSib
		}
		aff := int64(0)
		if maxAff > 0 {
			aff = maxNodeScore * s.affinity / maxAff
		}
		taint := maxNodeScore
		if maxTaint > 0 {
			taint = maxNodeScore - maxNodeScore*s.taints/maxTaint
		}
		s.total = weightFit*s.fit + weightBalanced*s.balanced + weightSpread*spread +
			weightNodeAffinity*aff + weightTaint*taint
		switch {
		case s.total > bestTotal:
			bestTotal, bestIdx, ties = s.total, i, 1
		case s.total == bestTotal:
			ties++
			if c.cfg.Rand != nil && c.cfg.Rand.IntN(ties) == 0 {
				bestIdx = i
			}
		}
	}
	return c.scores[bestIdx].n.name
}

// toleratedPreferNoSchedule: only tolerations for every effect or for
// PreferNoSchedule count, as upstream's TaintToleration score.
func toleratedPreferNoSchedule(tolerations []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tolerations {
		tol := &tolerations[i]
		if (tol.Effect == "" || tol.Effect == corev1.TaintEffectPreferNoSchedule) && tolerates(tol, t) {
			return true
		}
	}
	return false
}

// resourceScores returns upstream's LeastAllocated score (mean over CPU
// and memory of the free share after placing the pod) and
// BalancedAllocation score (how close the CPU and memory shares are),
// both 0-100, on scoring requests.
func resourceScores(ni *nodeInfo, pi *podInfo) (fit, balanced int64) {
	cpuReq := ni.scoreRequested.MilliCPU + pi.score.MilliCPU
	memReq := ni.scoreRequested.Memory + pi.score.Memory
	least := func(req, capacity int64) int64 {
		if capacity == 0 || req > capacity {
			return 0
		}
		return (capacity - req) * maxNodeScore / capacity
	}
	fit = (least(cpuReq, ni.allocatable.MilliCPU) + least(memReq, ni.allocatable.Memory)) / 2
	frac := func(req, capacity int64) float64 {
		if capacity == 0 {
			return 1
		}
		return min(float64(req)/float64(capacity), 1)
	}
	d := frac(cpuReq, ni.allocatable.MilliCPU) - frac(memReq, ni.allocatable.Memory)
	if d < 0 {
		d = -d
	}
	balanced = int64((1 - d/2) * float64(maxNodeScore))
	return fit, balanced
}

// FitError says why no node fits a pod; its Error is upstream's message,
// e.g. "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2
// Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is
// not helpful for scheduling, 2 No preemption victims found for incoming
// pod."
type FitError struct {
	// NumAllNodes is the number of nodes considered.
	NumAllNodes int
	// Reasons counts, per reason, the nodes that failed for it (a node may
	// fail for several resources at once).
	Reasons map[string]int
	// Unresolvable is the number of nodes where evicting pods would not
	// help (taints, affinity, cordoned); NoVictims the others, where Drover,
	// which does not preempt, finds no pod to evict.
	Unresolvable, NoVictims int
	// PreemptionNever: the pod may not preempt (preemptionPolicy Never).
	PreemptionNever bool
}

// Preemption messages, upstream's wording.
const (
	msgPreemptionNotHelpful = "Preemption is not helpful for scheduling"
	msgNoVictims            = "No preemption victims found for incoming pod"
	msgPreemptNever         = "not eligible due to preemptionPolicy=Never."
)

func (e *FitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes are available:", e.NumAllNodes)
	if h := histogram(e.Reasons); h != "" {
		b.WriteString(" " + h + ".")
	}
	b.WriteString(" preemption: ")
	if e.PreemptionNever {
		b.WriteString(msgPreemptNever)
		return b.String()
	}
	fmt.Fprintf(&b, "0/%d nodes are available:", e.NumAllNodes)
	pre := map[string]int{}
	if e.Unresolvable > 0 {
		pre[msgPreemptionNotHelpful] = e.Unresolvable
	}
	if e.NoVictims > 0 {
		pre[msgNoVictims] = e.NoVictims
	}
	if h := histogram(pre); h != "" {
		b.WriteString(" " + h + ".")
	}
	return b.String()
}

// histogram renders counts as upstream: "N reason" items sorted as
// strings, joined by ", ".
func histogram(counts map[string]int) string {
	items := make([]string, 0, len(counts))
	for r, n := range counts {
		items = append(items, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(items)
	return strings.Join(items, ", ")
}
