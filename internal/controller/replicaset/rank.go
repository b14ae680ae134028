package replicaset

import (
	"math"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodDeletionCostAnnotation lets users say which pods of a ReplicaSet
// should go first on scale-down: lower cost first (upstream's
// controller.kubernetes.io/pod-deletion-cost).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// PodsToDelete returns the n pods of pods to delete on scale-down, the
// cheapest first, ranked as upstream does. related are the active pods of
// the ReplicaSet and of its siblings (the ReplicaSets of the same
// Deployment): a pod sharing its node with more of them goes before one
// that is alone. now anchors the logarithmic age buckets.
func PodsToDelete(pods, related []*corev1.Pod, n int, now metav1.Time) []*corev1.Pod {
	if n <= 0 {
		return nil
	}
	if n >= len(pods) {
		return append([]*corev1.Pod(nil), pods...)
	}
	ranked := RankPods(pods, related, now)
	sort.Sort(ranked)
	return append([]*corev1.Pod(nil), ranked.Pods[:n]...)
}

// RankPods pairs each pod with its co-location rank: how many active
// related pods are on its node.
func RankPods(pods, related []*corev1.Pod, now metav1.Time) ByDeletionCost {
	onNode := map[string]int{}
	for _, p := range related {
		if IsPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	out := ByDeletionCost{Pods: append([]*corev1.Pod(nil), pods...), Rank: make([]int, len(pods)), Now: now}
	for i, p := range out.Pods {
		out.Rank[i] = onNode[p.Spec.NodeName]
	}
	return out
}

// ByDeletionCost sorts pods so that the ones to delete first come first,
// as upstream's ActivePodsWithRanks:
//  1. unassigned before assigned;
//  2. Pending before Unknown before Running;
//  3. not ready before ready;
//  4. lower pod-deletion-cost before higher;
//  5. higher co-location rank before lower;
//  6. among ready pods, ready for less time before more (in logarithmic
//     buckets of time since now; equal buckets by UID);
//  7. more container restarts before fewer;
//  8. newer before older (logarithmic buckets, then UID).
type ByDeletionCost struct {
	Pods []*corev1.Pod
	Rank []int
	Now  metav1.Time
}

func (s ByDeletionCost) Len() int { return len(s.Pods) }

func (s ByDeletionCost) Swap(i, j int) {
	s.Pods[i], s.Pods[j] = s.Pods[j], s.Pods[i]
	s.Rank[i], s.Rank[j] = s.Rank[j], s.Rank[i]
}

var phaseOrdinal = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func (s ByDeletionCost) Less(i, j int) bool {
	a, b := s.Pods[i], s.Pods[j]
	if a.Spec.NodeName != b.Spec.NodeName && (a.Spec.NodeName == "" || b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if pa, pb := phaseOrdinal[a.Status.Phase], phaseOrdinal[b.Status.Phase]; pa != pb {
		return pa < pb
	}
	ra, rb := IsPodReady(a), IsPodReady(b)
	if ra != rb {
		return !ra
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if s.Rank[i] != s.Rank[j] {
		return s.Rank[i] > s.Rank[j]
	}
	if ra && rb {
		ta, tb := readyTime(a), readyTime(b)
		if !ta.Equal(&tb) {
			return s.newerFirst(a, b, ta, tb)
		}
	}
	if xa, xb := maxRestarts(a), maxRestarts(b); xa != xb {
		return xa > xb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return s.newerFirst(a, b, a.CreationTimestamp, b.CreationTimestamp)
	}
	return false
}

// newerFirst orders by time, zero first, then in logarithmic buckets of
// age (pods of about the same age go in UID order, a stable pseudo-random
// choice, so scale-down does not always hit the very newest).
func (s ByDeletionCost) newerFirst(a, b *corev1.Pod, ta, tb metav1.Time) bool {
	if s.Now.IsZero() || ta.IsZero() || tb.IsZero() {
		return afterOrZero(ta, tb)
	}
	d := logBucket(s.Now, ta) - logBucket(s.Now, tb)
	if d == 0 {
		return a.UID < b.UID
	}
	return d < 0
}

func logBucket(now, t metav1.Time) int64 {
	if d := now.Sub(t.Time); d > 0 {
		return int64(math.Log2(float64(d)))
	}
	return -1
}

// afterOrZero: a zero time first, then the later time first.
func afterOrZero(a, b metav1.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero()
	}
	return a.After(b.Time)
}

func deletionCost(p *corev1.Pod) int64 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	c, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0 // the API server validates it; an unparsable one counts as default
	}
	return c
}

// readyTime is when the pod last became ready, zero when it is not.
func readyTime(p *corev1.Pod) metav1.Time {
	if c := readyCondition(p); c != nil && c.Status == corev1.ConditionTrue {
		return c.LastTransitionTime
	}
	return metav1.Time{}
}

// maxRestarts is the highest restart count of the pod's regular
// containers; sidecars (restartable init containers) break ties, as
// upstream.
func maxRestarts(p *corev1.Pod) int64 {
	var regular, sidecar int32
	for _, c := range p.Status.ContainerStatuses {
		regular = max(regular, c.RestartCount)
	}
	always := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			always[c.Name] = true
		}
	}
	for _, c := range p.Status.InitContainerStatuses {
		if always[c.Name] {
			sidecar = max(sidecar, c.RestartCount)
		}
	}
	return int64(regular)<<32 | int64(sidecar)
}
