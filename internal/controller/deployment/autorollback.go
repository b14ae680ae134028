package deployment

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Automatic rollback, Drover's addition to the Deployment API.
//
// A Deployment annotated AutoRollbackAnnotation: "true" whose rollout
// exceeds its progress deadline (Progressing=False,
// ProgressDeadlineExceeded) gets its pod template set back to that of the
// last revision that was fully rolled out (LastGoodRevisionAnnotation,
// which the controller keeps up to date on every Deployment). The
// controller records a Warning event AutoRollback and a condition of type
// ConditionAutoRollback saying which revision failed and why, and marks
// the failed template's pod-template-hash in FailedRevisionHashAnnotation:
// while the template hashes to it (someone applies the failed template
// again), the Deployment is held as if paused instead of retrying it. Any
// other template change clears the mark.
const (
	// AutoRollbackAnnotation opts a Deployment in ("true").
	AutoRollbackAnnotation = "drover.io/auto-rollback"
	// LastGoodRevisionAnnotation is the last revision of the Deployment
	// that was fully rolled out (every replica updated and available).
	LastGoodRevisionAnnotation = "drover.io/last-good-revision"
	// FailedRevisionHashAnnotation is the pod-template-hash of the template
	// that was rolled back automatically.
	FailedRevisionHashAnnotation = "drover.io/failed-revision-hash"
	// ConditionAutoRollback is the Deployment condition type recording the
	// last automatic rollback (or a hold of the failed template).
	ConditionAutoRollback appsv1.DeploymentConditionType = "AutoRollback"
	// ReasonAutoRollback is the event reason of an automatic rollback.
	ReasonAutoRollback = "AutoRollback"
	// ReasonFailedTemplateHeld is the AutoRollback condition's reason while
	// the template is the failed one.
	ReasonFailedTemplateHeld = "FailedTemplateHeld"
)

// AutoRollbackEnabled reports whether d opted in to automatic rollback.
func AutoRollbackEnabled(d *appsv1.Deployment) bool {
	return d.Annotations[AutoRollbackAnnotation] == "true"
}

// RollbackAction is what DecideAutoRollback asks for.
type RollbackAction int

const (
	// RollbackNone: carry on as usual.
	RollbackNone RollbackAction = iota
	// RollbackToTarget: set the template back to Target's.
	RollbackToTarget
	// RollbackHold: the template is the one rolled back before; do not roll
	// it out (scale only, as if paused).
	RollbackHold
	// RollbackClearMark: the template changed; drop the failed mark.
	RollbackClearMark
)

// RollbackDecision is DecideAutoRollback's answer.
type RollbackDecision struct {
	Action RollbackAction
	// Target is the ReplicaSet of the last good revision (RollbackToTarget).
	Target *appsv1.ReplicaSet
	// FailedHash and FailedRevision identify the template that failed.
	FailedHash     string
	FailedRevision int64
	// Message explains the decision (for the condition and event).
	Message string
}

// LastGood returns the ReplicaSet that served d's last good revision (its
// revision or revision history holds it), or nil.
func LastGood(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	rev, err := strconv.ParseInt(d.Annotations[LastGoodRevisionAnnotation], 10, 64)
	if err != nil || rev <= 0 {
		return nil
	}
	for _, rs := range rss {
		if rs != nil && HasRevision(rs, rev) {
			return rs
		}
	}
	return nil
}

// DecideAutoRollback decides, at the start of a sync, what automatic
// rollback asks of d, given its new ReplicaSet (nil if not created yet)
// and the others. Only opted-in Deployments are affected. A rollback needs
// the recorded status to be for the current spec and to say
// ProgressDeadlineExceeded, the Deployment not to be paused, and a last
// good revision other than the current template.
func DecideAutoRollback(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) RollbackDecision {
	if !AutoRollbackEnabled(d) {
		return RollbackDecision{}
	}
	hash := TemplateHash(d, newRS)
	all := append([]*appsv1.ReplicaSet{newRS}, oldRSs...)
	good := LastGood(d, all)
	if failed := d.Annotations[FailedRevisionHashAnnotation]; failed != "" {
		if hash == failed {
			return RollbackDecision{Action: RollbackHold, FailedHash: failed, Message: fmt.Sprintf(
				"the pod template (pod-template-hash %s) is the one rolled back automatically; it is not rolled out again until the template changes (or %s is removed)",
				failed, FailedRevisionHashAnnotation)}
		}
		if good == nil || good.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash {
			return RollbackDecision{Action: RollbackClearMark, FailedHash: failed}
		}
	}
	c := Condition(d.Status, appsv1.DeploymentProgressing)
	if c == nil || c.Reason != TimedOutReason || d.Spec.Paused || d.Status.ObservedGeneration < d.Generation {
		return RollbackDecision{}
	}
	failedRev := Revision(d)
	if newRS != nil {
		failedRev = Revision(newRS)
	}
	if good == nil {
		return RollbackDecision{FailedHash: hash, FailedRevision: failedRev,
			Message: fmt.Sprintf("revision %d exceeded its progress deadline but there is no fully rolled out revision to go back to", failedRev)}
	}
	if newRS != nil && good.UID == newRS.UID || good.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
		return RollbackDecision{FailedHash: hash, FailedRevision: failedRev,
			Message: fmt.Sprintf("revision %d exceeded its progress deadline and is itself the last good revision", failedRev)}
	}
	return RollbackDecision{
		Action: RollbackToTarget, Target: good, FailedHash: hash, FailedRevision: failedRev,
		Message: fmt.Sprintf("Rolled back from revision %d (pod-template-hash %s) to revision %d (ReplicaSet %q): %s",
			failedRev, hash, Revision(good), good.Name, c.Message),
	}
}

// RolledBack returns a copy of d carrying out a RollbackToTarget decision:
// the target's template (without its pod-template-hash label), the failed
// hash marked, the AutoRollback condition set, and the Progressing
// condition restarted for the rollback's own rollout (so its deadline
// counts from now).
func RolledBack(d *appsv1.Deployment, dec RollbackDecision, now metav1.Time) *appsv1.Deployment {
	out := d.DeepCopy()
	tmpl := dec.Target.Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	out.Spec.Template = *tmpl
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[FailedRevisionHashAnnotation] = dec.FailedHash
	RemoveCondition(&out.Status, ConditionAutoRollback)
	SetCondition(&out.Status, NewCondition(ConditionAutoRollback, corev1.ConditionTrue, TimedOutReason, dec.Message, now))
	RemoveCondition(&out.Status, appsv1.DeploymentProgressing)
	SetCondition(&out.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated,
		fmt.Sprintf("ReplicaSet %q is progressing.", dec.Target.Name), now))
	return out
}

// LastGoodUpdate returns the revision to record as d's last good one when
// st shows the new ReplicaSet fully rolled out and the record differs.
func LastGoodUpdate(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, st *appsv1.DeploymentStatus) (string, bool) {
	if newRS == nil || !Complete(d, st) || Revision(newRS) == 0 {
		return "", false
	}
	rev := strconv.FormatInt(Revision(newRS), 10)
	return rev, d.Annotations[LastGoodRevisionAnnotation] != rev
}
