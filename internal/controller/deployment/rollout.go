package deployment

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Scaling is one change of a ReplicaSet's size decided by a rollout step.
type Scaling struct {
	// Name is the ReplicaSet's name.
	Name string
	// From and To are its spec.replicas before and after.
	From, To int32
}

// String renders the scaling as upstream's ScalingReplicaSet event message.
func (s Scaling) String() string {
	dir := "up"
	if s.To < s.From {
		dir = "down"
	}
	return fmt.Sprintf("Scaled %s replica set %s from %d to %d", dir, s.Name, s.From, s.To)
}

// ResolveFenceposts turns maxSurge and maxUnavailable (numbers or
// percentages of desired) into counts as upstream does: surge rounds up,
// unavailable rounds down, and if both come to zero unavailable is 1 (a
// rollout must be able to move). A nil value counts as zero.
func ResolveFenceposts(maxSurge, maxUnavailable *intstr.IntOrString, desired int32) (surge, unavailable int32, err error) {
	s, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(maxSurge, intstr.FromInt32(0)), int(desired), true)
	if err != nil {
		return 0, 0, fmt.Errorf("maxSurge: %w", err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(maxUnavailable, intstr.FromInt32(0)), int(desired), false)
	if err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable: %w", err)
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u), nil
}

// IsRollingUpdate reports whether d uses the RollingUpdate strategy.
func IsRollingUpdate(d *appsv1.Deployment) bool {
	return d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType
}

// replicas is d's desired replica count (1 if unset, as defaulting makes it).
func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func size(rs *appsv1.ReplicaSet) int32 {
	if rs == nil || rs.Spec.Replicas == nil {
		return 0
	}
	return *rs.Spec.Replicas
}

// MaxSurge is how many pods above the desired count a rolling update may
// run (0 for Recreate). Invalid values (rejected by validation) count as 0.
func MaxSurge(d *appsv1.Deployment) int32 {
	if !IsRollingUpdate(d) || d.Spec.Strategy.RollingUpdate == nil {
		return 0
	}
	s, _, _ := ResolveFenceposts(d.Spec.Strategy.RollingUpdate.MaxSurge, d.Spec.Strategy.RollingUpdate.MaxUnavailable, replicas(d))
	return s
}

// MaxUnavailable is how many pods below the desired count a rolling update
// may have unavailable (0 for Recreate), never more than the desired count.
func MaxUnavailable(d *appsv1.Deployment) int32 {
	if !IsRollingUpdate(d) || d.Spec.Strategy.RollingUpdate == nil || replicas(d) == 0 {
		return 0
	}
	_, u, _ := ResolveFenceposts(d.Spec.Strategy.RollingUpdate.MaxSurge, d.Spec.Strategy.RollingUpdate.MaxUnavailable, replicas(d))
	return min(u, replicas(d))
}

// available is the number of rs's available pods the arithmetic may count
// on. Upstream uses status.availableReplicas as is; Drover caps it at
// spec.replicas, because right after a scale-down the ReplicaSet's status
// may still count pods that are being deleted, and counting them would
// let the next step scale down below the availability floor.
func available(rs *appsv1.ReplicaSet) int32 {
	if rs == nil {
		return 0
	}
	return max(0, min(rs.Status.AvailableReplicas, size(rs)))
}

func totalSize(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		n += size(rs)
	}
	return n
}

func totalAvailable(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		n += available(rs)
	}
	return n
}

// Active returns the ReplicaSets with a non-zero size, dropping nils.
func Active(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if size(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

// NewRSReplicas is the size the new ReplicaSet may grow to now: for a
// rolling update as far as the surge allows (at most replicas+maxSurge
// pods in all) without passing the desired count; for Recreate the
// desired count. Upstream counts sizes (spec.replicas) only; Drover counts
// for each ReplicaSet the larger of its size and the pods its status still
// reports, so a new pod is not started before the ReplicaSet controller
// has actually begun removing the old one it replaces.
func NewRSReplicas(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := replicas(d)
	if !IsRollingUpdate(d) {
		return want
	}
	maxTotal := want + MaxSurge(d)
	var current int32
	for _, rs := range allRSs {
		if rs != nil {
			current += max(size(rs), rs.Status.Replicas)
		}
	}
	if current >= maxTotal {
		return size(newRS)
	}
	up := min(maxTotal-current, want-size(newRS))
	return size(newRS) + max(up, 0)
}

// RollingStep decides one step of a rolling update, as upstream's
// rolloutRolling: if the new ReplicaSet can grow (or must shrink to the
// desired count) that is the step; otherwise old ReplicaSets shrink, first
// by their unavailable pods (oldest ReplicaSet first), then by available
// ones as far as replicas-maxUnavailable available pods allow. An empty
// result means the rollout cannot move now. newRS must not be nil.
func RollingStep(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) []Scaling {
	all := append(slices.Clip(oldRSs), newRS)
	want := replicas(d)
	switch cur := size(newRS); {
	case cur > want:
		return []Scaling{{Name: newRS.Name, From: cur, To: want}}
	case cur < want:
		if n := NewRSReplicas(d, all, newRS); n != cur {
			return []Scaling{{Name: newRS.Name, From: cur, To: n}}
		}
	}
	return scaleDownOld(d, newRS, oldRSs)
}

// scaleDownOld is upstream's reconcileOldReplicaSets.
func scaleDownOld(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) []Scaling {
	old := sortedByAge(Active(oldRSs))
	if totalSize(old) == 0 {
		return nil
	}
	minAvailable := replicas(d) - MaxUnavailable(d)
	allPods := totalSize(old) + size(newRS)
	newUnavailable := size(newRS) - available(newRS)
	maxScaledDown := allPods - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return nil
	}

	// Unhealthy replicas first: removing them costs no availability, and
	// left alone they would block the rollout.
	var out []Scaling
	sizes := make([]int32, len(old))
	var cleaned int32
	for i, rs := range old {
		sizes[i] = size(rs)
		if cleaned >= maxScaledDown {
			continue
		}
		unhealthy := size(rs) - available(rs)
		if unhealthy <= 0 {
			continue
		}
		n := min(maxScaledDown-cleaned, unhealthy)
		sizes[i] -= n
		cleaned += n
	}

	// Then available ones, keeping minAvailable available.
	availableNow := totalAvailable(old) + available(newRS)
	if budget := availableNow - minAvailable; budget > 0 {
		var down int32
		for i := range old {
			if down >= budget {
				break
			}
			if sizes[i] == 0 {
				continue
			}
			n := min(sizes[i], budget-down)
			sizes[i] -= n
			down += n
		}
	}
	for i, rs := range old {
		if sizes[i] != size(rs) {
			out = append(out, Scaling{Name: rs.Name, From: size(rs), To: sizes[i]})
		}
	}
	return out
}

// RecreateStep decides one step of a Recreate rollout: scale every old
// ReplicaSet to zero; once none has pods left (oldPodsRunning false), scale
// the new one to the desired count. createNew reports that the new
// ReplicaSet must be created first (newRS is nil and old pods are gone).
func RecreateStep(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, oldPodsRunning bool) (steps []Scaling, createNew bool) {
	for _, rs := range sortedByAge(Active(oldRSs)) {
		steps = append(steps, Scaling{Name: rs.Name, From: size(rs), To: 0})
	}
	if len(steps) > 0 || oldPodsRunning {
		return steps, false
	}
	if newRS == nil {
		return nil, true
	}
	if size(newRS) != replicas(d) {
		return []Scaling{{Name: newRS.Name, From: size(newRS), To: replicas(d)}}, false
	}
	return nil, false
}

// OldPodsRunning reports whether any pod not owned by the new ReplicaSet
// (newUID) may still run: old ReplicaSets report replicas, or a listed
// pod of theirs is not Succeeded or Failed. Recreate waits for this.
func OldPodsRunning(newUID string, oldRSs []*appsv1.ReplicaSet, podsByOwner map[string][]*corev1.Pod) bool {
	for _, rs := range oldRSs {
		if rs.Status.Replicas > 0 {
			return true
		}
	}
	for uid, pods := range podsByOwner {
		if uid == newUID {
			continue
		}
		for _, p := range pods {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				return true
			}
		}
	}
	return false
}

// IsScalingEvent reports whether d's size changed since its active
// ReplicaSets were last sized (their desired-replicas annotation differs).
// A scaling event is handled by ScaleStep, not by the rollout.
func IsScalingEvent(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet) bool {
	for _, rs := range Active(allRSs) {
		if v, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && v != replicas(d) {
			return true
		}
	}
	return false
}

// IsSaturated reports whether rs alone serves d: sized to the desired count
// for that count, and all of it available.
func IsSaturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	return ok && size(rs) == replicas(d) && desired == replicas(d) && rs.Status.AvailableReplicas == replicas(d)
}

// ActiveOrLatest returns the only ReplicaSet with pods, or the newest one
// if none has pods; nil when several have pods (those scale
// proportionally).
func ActiveOrLatest(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(oldRSs) == 0 {
		return nil
	}
	all := append(slices.Clip(oldRSs), newRS)
	switch active := Active(all); len(active) {
	case 0:
		if newRS != nil {
			return newRS
		}
		old := sortedByAge(oldRSs)
		return old[len(old)-1]
	case 1:
		return active[0]
	default:
		return nil
	}
}

// ScaleStep sizes the ReplicaSets when d is resized or paused (upstream's
// scale): a lone active (or the newest) ReplicaSet takes the whole count;
// a saturated new ReplicaSet makes the old ones drop to zero; otherwise,
// for a rolling update, the difference between replicas+maxSurge and the
// current total is spread over the active ReplicaSets in proportion to
// their share of the size they were made for (the max-replicas
// annotation), largest first, leftovers to the largest. A ReplicaSet it
// sizes is listed even when its size stays, if its desired- and
// max-replicas annotations are out of date (so the scaling event ends).
func ScaleStep(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) []Scaling {
	want := replicas(d)
	var rss []*appsv1.ReplicaSet
	var sizes []int32
	switch lone := ActiveOrLatest(newRS, oldRSs); {
	case lone != nil:
		rss, sizes = []*appsv1.ReplicaSet{lone}, []int32{want}
	case IsSaturated(d, newRS):
		rss = sortedByAge(Active(oldRSs))
		sizes = make([]int32, len(rss))
	case IsRollingUpdate(d):
		rss = Active(append(slices.Clip(oldRSs), newRS))
		var allowed int32
		if want > 0 {
			allowed = want + MaxSurge(d)
		}
		toAdd := allowed - totalSize(rss)
		rss = sortedBySize(rss, toAdd > 0)
		sizes = make([]int32, len(rss))
		var added int32
		for i, rs := range rss {
			p := proportion(rs, d, toAdd, added)
			sizes[i] = size(rs) + p
			added += p
		}
		if toAdd != 0 {
			sizes[0] = max(sizes[0]+toAdd-added, 0)
		}
	}
	var out []Scaling
	for i, rs := range rss {
		if sizes[i] != size(rs) || ReplicasAnnotationsNeedUpdate(d, rs) {
			out = append(out, Scaling{Name: rs.Name, From: size(rs), To: sizes[i]})
		}
	}
	return out
}

// proportion is how many replicas rs gains (or loses, negative) of the
// toAdd that d's ReplicaSets must gain, added of which are already given.
func proportion(rs *appsv1.ReplicaSet, d *appsv1.Deployment, toAdd, added int32) int32 {
	if size(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	fraction := fractionOf(rs, d)
	allowed := toAdd - added
	if toAdd > 0 {
		return min(fraction, allowed)
	}
	return max(fraction, allowed)
}

func fractionOf(rs *appsv1.ReplicaSet, d *appsv1.Deployment) int32 {
	if replicas(d) == 0 {
		return -size(rs)
	}
	target := replicas(d) + MaxSurge(d)
	annotated, ok := intAnnotation(rs, MaxReplicasAnnotation)
	if !ok || annotated == 0 {
		annotated = d.Status.Replicas
	}
	if annotated == 0 {
		return 0
	}
	newSize := float64(size(rs)) * float64(target) / float64(annotated)
	return int32(math.Round(newSize)) - size(rs)
}

// sortedByAge returns rss oldest first (name breaks ties).
func sortedByAge(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	out := slices.Clone(rss)
	slices.SortStableFunc(out, olderFirst)
	return out
}

func olderFirst(a, b *appsv1.ReplicaSet) int {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		if a.CreationTimestamp.Before(&b.CreationTimestamp) {
			return -1
		}
		return 1
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

// sortedBySize returns rss largest first; among equal sizes the newer
// first when scaling up, the older first when scaling down.
func sortedBySize(rss []*appsv1.ReplicaSet, newerFirst bool) []*appsv1.ReplicaSet {
	out := slices.Clone(rss)
	slices.SortStableFunc(out, func(a, b *appsv1.ReplicaSet) int {
		if size(a) != size(b) {
			return int(size(b)) - int(size(a))
		}
		if newerFirst {
			return olderFirst(b, a)
		}
		return olderFirst(a, b)
	})
	return out
}

func intAnnotation(rs *appsv1.ReplicaSet, key string) (int32, bool) {
	v, ok := rs.Annotations[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}
