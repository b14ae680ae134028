package nodelifecycle

import (
	"math"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reason and message of conditions the controller sets to Unknown, as upstream.
const (
	ReasonStatusUnknown  = "NodeStatusUnknown"
	MessageStatusUnknown = "Kubelet stopped posting node status."
	ReasonNeverUpdated   = "NodeStatusNeverUpdated"
	MessageNeverUpdated  = "Kubelet never posted node status."
)

// Probe is what the controller last saw of a node's signs of life. Times
// are the controller's own clock: when a heartbeat or lease renewal was
// observed to change, not the (possibly skewed) times the agent wrote.
type Probe struct {
	// Heartbeat is the Ready condition's lastHeartbeatTime last seen.
	Heartbeat time.Time
	// Renew is the Lease's renewTime last seen.
	Renew time.Time
	// Seen is when the controller last saw either change (or first saw
	// the node).
	Seen time.Time
}

// Observe updates p with the node's Ready heartbeat and its Lease (nil if
// none) as seen at now. A zero p is a node seen for the first time: it gets
// a full grace period from now, so a restarted controller raises no alarm.
func Observe(p Probe, node *corev1.Node, lease *coordinationv1.Lease, now time.Time) Probe {
	first := p.Seen.IsZero()
	if c := condition(node, corev1.NodeReady); c != nil && !c.LastHeartbeatTime.Time.Equal(p.Heartbeat) {
		p.Heartbeat = c.LastHeartbeatTime.Time
		p.Seen = now
	}
	if lease != nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.Time.After(p.Renew) {
		p.Renew = lease.Spec.RenewTime.Time
		p.Seen = now
	}
	if first {
		p.Seen = now
	}
	return p
}

// Silent reports whether the node has shown no sign of life for longer than
// grace (startupGrace for a node that never posted a Ready condition).
func Silent(node *corev1.Node, p Probe, now time.Time, grace, startupGrace time.Duration) bool {
	if condition(node, corev1.NodeReady) == nil {
		grace = startupGrace
	}
	return now.After(p.Seen.Add(grace))
}

// watchedConditions are set to Unknown with Ready when a node goes silent.
var watchedConditions = []corev1.NodeConditionType{
	corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure,
}

// MarkUnknown returns the status of a silent node: Ready Unknown (added if
// missing) and MemoryPressure, DiskPressure, PIDPressure Unknown where
// present, with reason NodeStatusUnknown, as upstream. changed is false
// when the status already says so; the input is not modified.
func MarkUnknown(node *corev1.Node, now time.Time) (status *corev1.NodeStatus, changed bool) {
	status = node.Status.DeepCopy()
	t := metav1.NewTime(now)
	if condition(node, corev1.NodeReady) == nil {
		status.Conditions = append(status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: ReasonNeverUpdated,
			Message: MessageNeverUpdated, LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: t,
		})
		changed = true
	}
	for i := range status.Conditions {
		c := &status.Conditions[i]
		if !slices.Contains(watchedConditions, c.Type) || c.Status == corev1.ConditionUnknown {
			continue
		}
		c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionUnknown, ReasonStatusUnknown, MessageStatusUnknown, t
		changed = true
	}
	return status, changed
}

// Ready is the node's Ready condition status (Unknown when missing).
func Ready(node *corev1.Node) corev1.ConditionStatus {
	if c := condition(node, corev1.NodeReady); c != nil {
		return c.Status
	}
	return corev1.ConditionUnknown
}

func condition(node *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// Taints the controller owns.
var (
	UnreachableNoExecute = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	NotReadyNoExecute    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}

	// noScheduleByCondition maps a condition and status to the NoSchedule
	// taint it calls for, as upstream's TaintNodesByCondition.
	noScheduleByCondition = []struct {
		cond   corev1.NodeConditionType
		status corev1.ConditionStatus
		key    string
	}{
		{corev1.NodeReady, corev1.ConditionFalse, corev1.TaintNodeNotReady},
		{corev1.NodeReady, corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
		{corev1.NodeMemoryPressure, corev1.ConditionTrue, corev1.TaintNodeMemoryPressure},
		{corev1.NodeDiskPressure, corev1.ConditionTrue, corev1.TaintNodeDiskPressure},
		{corev1.NodePIDPressure, corev1.ConditionTrue, corev1.TaintNodePIDPressure},
		{corev1.NodeNetworkUnavailable, corev1.ConditionTrue, corev1.TaintNodeNetworkUnavailable},
	}
	noScheduleKeys = []string{
		corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeMemoryPressure, corev1.TaintNodeDiskPressure,
		corev1.TaintNodePIDPressure, corev1.TaintNodeNetworkUnavailable, corev1.TaintNodeUnschedulable,
	}
)

// NoScheduleTaints returns the NoSchedule taints the node's conditions and
// spec.unschedulable call for. A missing condition calls for none (a node
// that never posts Ready gets Ready Unknown after NodeStartupGracePeriod).
func NoScheduleTaints(node *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, m := range noScheduleByCondition {
		if c := condition(node, m.cond); c != nil && c.Status == m.status {
			out = append(out, corev1.Taint{Key: m.key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if node.Spec.Unschedulable {
		out = append(out, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}

// NoExecuteTaint returns the NoExecute taint the node's readiness calls
// for: unreachable when Unknown, not-ready when False, none when Ready or
// not reported yet.
func NoExecuteTaint(node *corev1.Node) *corev1.Taint {
	c := condition(node, corev1.NodeReady)
	switch {
	case c == nil || c.Status == corev1.ConditionTrue:
		return nil
	case c.Status == corev1.ConditionFalse:
		t := NotReadyNoExecute
		return &t
	}
	t := UnreachableNoExecute
	return &t
}

// CurrentNoExecute returns the controller's NoExecute taint the node
// carries, if any.
func CurrentNoExecute(node *corev1.Node) *corev1.Taint {
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectNoExecute && (t.Key == corev1.TaintNodeUnreachable || t.Key == corev1.TaintNodeNotReady) {
			return t
		}
	}
	return nil
}

// SetTaints returns taints with the controller's NoSchedule taints replaced
// by noSchedule and its NoExecute taint by noExecute (nil: none). Taints it
// does not own are kept; kept taints keep their TimeAdded, a new NoExecute
// taint gets now rounded up to the second. changed reports any difference.
func SetTaints(taints []corev1.Taint, noSchedule []corev1.Taint, noExecute *corev1.Taint, now time.Time) (out []corev1.Taint, changed bool) {
	owned := func(t corev1.Taint) bool {
		switch t.Effect {
		case corev1.TaintEffectNoSchedule:
			return slices.Contains(noScheduleKeys, t.Key)
		case corev1.TaintEffectNoExecute:
			return t.Key == corev1.TaintNodeUnreachable || t.Key == corev1.TaintNodeNotReady
		}
		return false
	}
	want := slices.Clone(noSchedule)
	if noExecute != nil {
		want = append(want, *noExecute)
	}
	for _, t := range taints {
		if !owned(t) {
			out = append(out, t)
			continue
		}
		if i := slices.IndexFunc(want, func(w corev1.Taint) bool { return w.Key == t.Key && w.Effect == t.Effect }); i >= 0 {
			out = append(out, t)
			want = slices.Delete(want, i, i+1)
			continue
		}
		changed = true // an owned taint no longer called for
	}
	for _, w := range want {
		if w.Effect == corev1.TaintEffectNoExecute && w.TimeAdded == nil {
			// Rounded up to the second the API keeps, so that no
			// toleration is cut short.
			ts := metav1.NewTime(ceilSecond(now))
			w.TimeAdded = &ts
		}
		out = append(out, w)
		changed = true
	}
	return out, changed
}

func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// ZoneState is upstream's classification of a zone's health.
type ZoneState string

// Zone states.
const (
	ZoneNormal            ZoneState = "Normal"
	ZonePartialDisruption ZoneState = "PartialDisruption"
	ZoneFullDisruption    ZoneState = "FullDisruption"
)

// ComputeZoneState classifies a zone from its ready and unhealthy node
// counts: no ready node is FullDisruption; more than two unhealthy making
// at least threshold of the zone is PartialDisruption; otherwise Normal.
func ComputeZoneState(ready, unhealthy int, threshold float64) ZoneState {
	switch {
	case ready == 0 && unhealthy > 0:
		return ZoneFullDisruption
	case unhealthy > 2 && float64(unhealthy)/float64(unhealthy+ready) >= threshold:
		return ZonePartialDisruption
	}
	return ZoneNormal
}

// Zone returns the node's zone key (region and zone labels), "" if none.
func Zone(node *corev1.Node) string {
	region, zone := node.Labels[corev1.LabelTopologyRegion], node.Labels[corev1.LabelTopologyZone]
	if region == "" && zone == "" {
		return ""
	}
	return region + ":\x00:" + zone
}

// RateOptions are the eviction rates by zone state.
type RateOptions struct {
	EvictionRate, SecondaryEvictionRate float64
	LargeClusterSizeThreshold           int
}

// ZoneRates returns each zone's NoExecute tainting rate (nodes per second;
// 0 stops) as upstream's handleDisruption: when every zone is in full
// disruption the control plane is more likely cut off than every node dead,
// so nothing is evicted (allDown true: lift the NoExecute taints too);
// otherwise a Normal or fully disrupted zone gets EvictionRate and a
// partially disrupted one SecondaryEvictionRate if it is larger than
// LargeClusterSizeThreshold nodes, else 0.
func ZoneRates(states map[string]ZoneState, sizes map[string]int, o RateOptions) (rates map[string]float64, allDown bool) {
	rates = map[string]float64{}
	allDown = len(states) > 0
	for _, s := range states {
		if s != ZoneFullDisruption {
			allDown = false
		}
	}
	for z, s := range states {
		switch {
		case allDown:
			rates[z] = 0
		case s == ZonePartialDisruption && sizes[z] > o.LargeClusterSizeThreshold:
			rates[z] = o.SecondaryEvictionRate
		case s == ZonePartialDisruption:
			rates[z] = 0
		default:
			rates[z] = o.EvictionRate
		}
	}
	return rates, allDown
}

// Bucket is a token bucket of burst 1 driven by the caller's clock: at most
// one node is tainted at once, then one per 1/Rate seconds.
type Bucket struct {
	Rate   float64 // tokens per second; 0 admits nothing
	tokens float64
	last   time.Time
}

// NewBucket returns a full bucket.
func NewBucket(rate float64, now time.Time) *Bucket {
	return &Bucket{Rate: rate, tokens: 1, last: now}
}

// SetRate changes the rate, keeping the tokens earned so far.
func (b *Bucket) SetRate(rate float64, now time.Time) {
	b.refill(now)
	b.Rate = rate
}

// Take takes a token if one is there at now.
func (b *Bucket) Take(now time.Time) bool {
	b.refill(now)
	if b.Rate <= 0 || b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *Bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = math.Min(1, b.tokens+now.Sub(b.last).Seconds()*b.Rate)
		b.last = now
	}
}

// NoExecuteTaints returns a node's NoExecute taints.
func NoExecuteTaints(node *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

// EvictAt returns when a pod on a node with the given NoExecute taints must
// be deleted, as upstream's taint manager: at once (the zero time) if a
// taint is not tolerated or tolerated for 0 seconds or less; else when the shortest tolerationSeconds of the
// tolerations used runs out, counted from each taint's TimeAdded (observed,
// when unset: observed is when the controller first saw the taint); never
// (ok false) without taints or when every toleration used is unbounded.
func EvictAt(pod *corev1.Pod, taints []corev1.Taint, observed time.Time) (at time.Time, ok bool) {
	for _, taint := range taints {
		added := observed
		if taint.TimeAdded != nil {
			added = taint.TimeAdded.Time
		}
		i := slices.IndexFunc(pod.Spec.Tolerations, func(tol corev1.Toleration) bool { return tolerates(&tol, &taint) })
		var deadline time.Time // zero: at once
		switch {
		case i < 0:
		case pod.Spec.Tolerations[i].TolerationSeconds == nil:
			continue
		case *pod.Spec.Tolerations[i].TolerationSeconds > 0:
			deadline = added.Add(time.Duration(*pod.Spec.Tolerations[i].TolerationSeconds) * time.Second)
		}
		if !ok || deadline.Before(at) {
			at, ok = deadline, true
		}
	}
	return at, ok
}

// tolerates reports whether t tolerates taint, as upstream's
// Toleration.ToleratesTaint without the alpha numeric operators.
func tolerates(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}

// ForceDeleteAt returns when a terminating pod on a node that cannot
// confirm its deletion (Ready not True) is to be removed with grace period
// 0: once its deletion grace has elapsed, at its deletionTimestamp. ok is
// false when the pod is not terminating or its node is Ready.
func ForceDeleteAt(pod *corev1.Pod, node *corev1.Node) (at time.Time, ok bool) {
	if pod.DeletionTimestamp == nil || node == nil || Ready(node) == corev1.ConditionTrue {
		return time.Time{}, false
	}
	return pod.DeletionTimestamp.Time, true
}
