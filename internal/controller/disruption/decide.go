package disruption

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DeletionTimeout is how long a pod recorded in status.disruptedPods (by
// the eviction subresource) is assumed to be on its way out. Past it the
// controller drops the entry and counts the pod again, as upstream does.
const DeletionTimeout = 2 * time.Minute

// Selector returns the PDB's pod selector. In policy/v1 a nil selector
// selects nothing and an empty one every pod of the namespace.
func Selector(pdb *policyv1.PodDisruptionBudget) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
}

// NeedsScale reports whether the budget is relative to the pods' controllers'
// scale (maxUnavailable, or a percentage minAvailable), so the caller must
// find that scale before calling Compute.
func NeedsScale(spec policyv1.PodDisruptionBudgetSpec) bool {
	if spec.MaxUnavailable != nil {
		return true
	}
	return spec.MinAvailable != nil && spec.MinAvailable.Type == intstr.String
}

// Expected returns the expected pod count and the desired healthy count of a
// budget over pods. scale is the summed replicas of the pods' controllers,
// used only when NeedsScale(spec).
func Expected(spec policyv1.PodDisruptionBudgetSpec, pods int32, scale int32) (expected, desired int32, err error) {
	switch {
	case spec.MaxUnavailable != nil:
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(spec.MaxUnavailable, int(scale), true)
		if err != nil {
			return 0, 0, fmt.Errorf("maxUnavailable: %w", err)
		}
		return scale, max(scale-int32(maxUnavailable), 0), nil
	case spec.MinAvailable != nil && spec.MinAvailable.Type == intstr.Int:
		return pods, spec.MinAvailable.IntVal, nil
	case spec.MinAvailable != nil:
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(spec.MinAvailable, int(scale), true)
		if err != nil {
			return 0, 0, fmt.Errorf("minAvailable: %w", err)
		}
		return scale, int32(minAvailable), nil
	}
	return 0, 0, nil
}

// PodReady reports the pod's Ready condition is True.
func PodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// DisruptedPods keeps the entries of the budget's disruptedPods map that
// still stand at now: the pod exists, is not yet being deleted, and was
// evicted less than DeletionTimeout ago. recheck is when the earliest kept
// entry expires (zero if none), at which point the budget must be computed
// again.
func DisruptedPods(recorded map[string]metav1.Time, pods []*corev1.Pod, now time.Time) (kept map[string]metav1.Time, recheck time.Time) {
	kept = map[string]metav1.Time{}
	for _, pod := range pods {
		t, ok := recorded[pod.Name]
		if !ok || pod.DeletionTimestamp != nil {
			continue
		}
		expiry := t.Add(DeletionTimeout)
		if expiry.Before(now) {
			continue
		}
		kept[pod.Name] = t
		if recheck.IsZero() || expiry.Before(recheck) {
			recheck = expiry
		}
	}
	return kept, recheck
}

// Healthy counts the pods that are ready, not being deleted and not about to
// be (not in disrupted).
func Healthy(pods []*corev1.Pod, disrupted map[string]metav1.Time) int32 {
	var n int32
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		if _, ok := disrupted[pod.Name]; ok {
			continue
		}
		if PodReady(pod) {
			n++
		}
	}
	return n
}

// Compute returns the status the budget should have given the pods its
// selector matches, the summed scale of their controllers (see NeedsScale)
// and the time; recheck is when to compute again even if nothing changes
// (zero: no need). The conditions keep their transition times when their
// status does not change.
func Compute(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, scale int32, now time.Time) (status policyv1.PodDisruptionBudgetStatus, recheck time.Time, err error) {
	expected, desired, err := Expected(pdb.Spec, int32(len(pods)), scale)
	if err != nil {
		return policyv1.PodDisruptionBudgetStatus{}, time.Time{}, err
	}
	disrupted, recheck := DisruptedPods(pdb.Status.DisruptedPods, pods, now)
	healthy := Healthy(pods, disrupted)
	allowed := healthy - desired
	// A budget matching no expected pods allows nothing, so that its first
	// pods are safe before the controller has seen them.
	if expected <= 0 || allowed <= 0 {
		allowed = 0
	}
	status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptedPods:      disrupted,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     healthy,
		DesiredHealthy:     desired,
		ExpectedPods:       expected,
		Conditions:         copyConditions(pdb.Status.Conditions),
	}
	SetDisruptionAllowed(&status, now)
	return status, recheck, nil
}

// FailSafe is the status of a budget whose status could not be computed: no
// disruption allowed, with condition DisruptionAllowed=False reason SyncFailed.
func FailSafe(pdb *policyv1.PodDisruptionBudget, cause error, now time.Time) policyv1.PodDisruptionBudgetStatus {
	status := *pdb.Status.DeepCopy()
	status.DisruptionsAllowed = 0
	apimeta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type:               policyv1.DisruptionAllowedCondition,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1.SyncFailedReason,
		Message:            cause.Error(),
		ObservedGeneration: status.ObservedGeneration,
		LastTransitionTime: metav1.NewTime(now),
	})
	return status
}

// SetDisruptionAllowed sets the DisruptionAllowed condition from
// status.disruptionsAllowed, as upstream's helper does (the eviction
// subresource calls it too when it takes the last allowed disruption).
func SetDisruptionAllowed(status *policyv1.PodDisruptionBudgetStatus, now time.Time) {
	c := metav1.Condition{
		Type:               policyv1.DisruptionAllowedCondition,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1.InsufficientPodsReason,
		ObservedGeneration: status.ObservedGeneration,
		LastTransitionTime: metav1.NewTime(now),
	}
	if status.DisruptionsAllowed > 0 {
		c.Status, c.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	if status.Conditions == nil {
		status.Conditions = []metav1.Condition{}
	}
	apimeta.SetStatusCondition(&status.Conditions, c)
}

func copyConditions(in []metav1.Condition) []metav1.Condition {
	if in == nil {
		return nil
	}
	out := make([]metav1.Condition, len(in))
	copy(out, in)
	return out
}
