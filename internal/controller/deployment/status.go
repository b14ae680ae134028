package deployment

import (
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons and messages, as upstream (kubectl rollout status
// looks for TimedOutReason).
const (
	ReasonNewRSCreated      = "NewReplicaSetCreated"
	ReasonFoundNewRS        = "FoundNewReplicaSet"
	ReasonRSUpdated         = "ReplicaSetUpdated"
	ReasonNewRSAvailable    = "NewReplicaSetAvailable"
	ReasonRSCreateError     = "ReplicaSetCreateError"
	TimedOutReason          = "ProgressDeadlineExceeded"
	ReasonPaused            = "DeploymentPaused"
	ReasonResumed           = "DeploymentResumed"
	ReasonMinimumAvailable  = "MinimumReplicasAvailable"
	ReasonMinimumUnavailble = "MinimumReplicasUnavailable"

	MessageMinimumAvailable   = "Deployment has minimum availability."
	MessageMinimumUnavailable = "Deployment does not have minimum availability."
	MessagePaused             = "Deployment is paused"
	MessageResumed            = "Deployment is resumed"
)

// Condition returns the condition of type t in status, or nil.
func Condition(status appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			return &status.Conditions[i]
		}
	}
	return nil
}

// NewCondition returns a condition whose times are now.
func NewCondition(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, message string, now metav1.Time) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: message, LastUpdateTime: now, LastTransitionTime: now}
}

// SetCondition puts c into status as upstream's SetDeploymentCondition:
// nothing changes if a condition of that type has the same status and
// reason; a status that does not change keeps its transition time.
func SetCondition(status *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := Condition(*status, c.Type)
	if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		return
	}
	if cur != nil && cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	RemoveCondition(status, c.Type)
	status.Conditions = append(status.Conditions, c)
}

// RemoveCondition drops conditions of type t.
func RemoveCondition(status *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	var out []appsv1.DeploymentCondition
	for _, c := range status.Conditions {
		if c.Type != t {
			out = append(out, c)
		}
	}
	status.Conditions = out
}

// HasProgressDeadline reports whether d's progress is to be watched.
func HasProgressDeadline(d *appsv1.Deployment) bool {
	return d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds != math.MaxInt32
}

// CalculateStatus computes d's status from its ReplicaSets (newRS may be
// nil), keeping the existing conditions and setting Available: true when
// at least replicas-maxUnavailable pods are available.
func CalculateStatus(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now metav1.Time) appsv1.DeploymentStatus {
	var st appsv1.DeploymentStatus
	var specTotal int32
	for _, rs := range allRSs {
		if rs == nil {
			continue
		}
		specTotal += size(rs)
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	st.UnavailableReplicas = max(specTotal-st.AvailableReplicas, 0)
	st.ObservedGeneration = d.Generation
	if d.Status.CollisionCount != nil {
		c := *d.Status.CollisionCount
		st.CollisionCount = &c
	}
	st.Conditions = append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...)
	if st.AvailableReplicas >= replicas(d)-MaxUnavailable(d) {
		SetCondition(&st, NewCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumAvailable, MessageMinimumAvailable, now))
	} else {
		SetCondition(&st, NewCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumUnavailble, MessageMinimumUnavailable, now))
	}
	return st
}

// Complete reports whether st shows d fully rolled out: every desired
// replica updated and available, no others, the spec observed.
func Complete(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	n := replicas(d)
	return st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n && st.ObservedGeneration >= d.Generation
}

// progressed reports whether st shows progress over d's recorded status:
// more updated, ready or available pods, or fewer old ones.
func progressed(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	old := d.Status
	return st.UpdatedReplicas > old.UpdatedReplicas ||
		st.Replicas-st.UpdatedReplicas < old.Replicas-old.UpdatedReplicas ||
		st.ReadyReplicas > old.ReadyReplicas ||
		st.AvailableReplicas > old.AvailableReplicas
}

// timedOut reports whether the Progressing condition in st has gone
// without an update for longer than d's deadline.
func timedOut(d *appsv1.Deployment, st *appsv1.DeploymentStatus, now time.Time) bool {
	if !HasProgressDeadline(d) {
		return false
	}
	c := Condition(*st, appsv1.DeploymentProgressing)
	if c == nil || c.Reason == ReasonNewRSAvailable {
		return false
	}
	if c.Reason == TimedOutReason {
		return true
	}
	deadline := c.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second)
	return deadline.Before(now)
}

// RolloutStatus is upstream's syncRolloutStatus without the write: the
// status from CalculateStatus with the Progressing condition brought up
// to date. Complete → NewReplicaSetAvailable; progress since the recorded
// status → ReplicaSetUpdated (refreshing lastUpdateTime, the deadline's
// base); no progress for progressDeadlineSeconds → False,
// ProgressDeadlineExceeded. Without a deadline there is no Progressing
// condition. A rollout already complete is not re-examined. A
// ReplicaFailure condition of the new ReplicaSet (else of an old one) is
// copied as the Deployment's ReplicaFailure.
func RolloutStatus(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now metav1.Time) appsv1.DeploymentStatus {
	st := progressStatus(d, allRSs, newRS, now)
	if f := replicaFailure(allRSs, newRS); f != nil {
		SetCondition(&st, *f)
	} else {
		RemoveCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	return st
}

// replicaFailure is the ReplicaFailure condition to report, or nil.
func replicaFailure(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, allRSs...) {
		if rs == nil {
			continue
		}
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return &appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: c.Status, Reason: c.Reason,
					Message: c.Message, LastUpdateTime: c.LastTransitionTime, LastTransitionTime: c.LastTransitionTime}
			}
		}
	}
	return nil
}

func progressStatus(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now metav1.Time) appsv1.DeploymentStatus {
	st := CalculateStatus(d, allRSs, newRS, now)
	if !HasProgressDeadline(d) {
		RemoveCondition(&st, appsv1.DeploymentProgressing)
		return st
	}
	cur := Condition(d.Status, appsv1.DeploymentProgressing)
	if st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewRSAvailable {
		return st
	}
	subject := func(what string) string {
		if newRS != nil {
			return fmt.Sprintf("ReplicaSet %q %s", newRS.Name, what)
		}
		return fmt.Sprintf("Deployment %q %s", d.Name, what)
	}
	switch {
	case Complete(d, &st):
		SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable, subject("has successfully progressed."), now))
	case progressed(d, &st):
		c := NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, subject("is progressing."), now)
		if cur != nil {
			if cur.Status == corev1.ConditionTrue {
				c.LastTransitionTime = cur.LastTransitionTime
			}
			RemoveCondition(&st, appsv1.DeploymentProgressing)
		}
		SetCondition(&st, c)
	case timedOut(d, &st, now.Time):
		SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, TimedOutReason, subject("has timed out progressing."), now))
	}
	return st
}

// RecheckAfter is when d, with the newly computed status st, must be looked
// at again to notice a missed progress deadline (upstream's
// requeueStuckDeployment): a negative value means no need; otherwise the
// time until the deadline passes, plus a second.
func RecheckAfter(d *appsv1.Deployment, st *appsv1.DeploymentStatus, now time.Time) time.Duration {
	c := Condition(d.Status, appsv1.DeploymentProgressing)
	if !HasProgressDeadline(d) || c == nil || Complete(d, st) || c.Reason == TimedOutReason {
		return -1
	}
	after := c.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(now)
	if after < time.Second {
		return 0
	}
	return after + time.Second
}

// PausedCondition returns d's status with the Progressing condition
// recording a pause (Unknown, DeploymentPaused) or a resume (Unknown,
// DeploymentResumed), and whether it changed. A timed-out rollout keeps
// its timeout; without a deadline nothing is recorded.
func PausedCondition(d *appsv1.Deployment, now metav1.Time) (appsv1.DeploymentStatus, bool) {
	st := *d.Status.DeepCopy()
	if !HasProgressDeadline(d) {
		return st, false
	}
	c := Condition(st, appsv1.DeploymentProgressing)
	if c != nil && c.Reason == TimedOutReason {
		return st, false
	}
	paused := c != nil && c.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !paused:
		SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, MessagePaused, now))
	case !d.Spec.Paused && paused:
		SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, MessageResumed, now))
	default:
		return st, false
	}
	return st, true
}
