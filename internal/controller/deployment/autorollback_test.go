package deployment

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// rollbackCase builds a Deployment at image v2 whose rollout from v1
// (revision 1, last good) timed out, with ReplicaSets good (v1) and bad (v2).
func rollbackCase() (*appsv1.Deployment, *appsv1.ReplicaSet, *appsv1.ReplicaSet) {
	d := dep(10, "1", "1").image("v2").ann(AutoRollbackAnnotation, "true").ann(LastGoodRevisionAnnotation, "1").obj()
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: TimedOutReason, Message: `ReplicaSet "web-bad" has timed out progressing.`}}
	good := rs("web-good", 1, 9, 9).rev(1).obj()
	good.Spec.Template = *dep(10, "1", "1").image("v1").obj().Spec.Template.DeepCopy()
	good.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "good"
	good.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "good"
	bad := rs("web-bad", 2, 2, 0).rev(2).obj()
	bad.Spec.Template = *d.Spec.Template.DeepCopy()
	bad.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "bad"
	bad.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "bad"
	return d, good, bad
}

func TestDecideAutoRollback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(d *appsv1.Deployment, good, bad *appsv1.ReplicaSet)
		action RollbackAction
		msg    string
	}{
		{name: "timed out: roll back to the last good revision", action: RollbackToTarget,
			msg: `Rolled back from revision 2 (pod-template-hash bad) to revision 1 (ReplicaSet "web-good"): ReplicaSet "web-bad" has timed out progressing.`},
		{name: "not opted in", action: RollbackNone, change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) {
			delete(d.Annotations, AutoRollbackAnnotation)
		}},
		{name: "opted out explicitly", action: RollbackNone, change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) {
			d.Annotations[AutoRollbackAnnotation] = "false"
		}},
		{name: "still progressing", action: RollbackNone, change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) {
			d.Status.Conditions[0].Reason = ReasonRSUpdated
			d.Status.Conditions[0].Status = corev1.ConditionTrue
		}},
		{name: "paused", action: RollbackNone, change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) { d.Spec.Paused = true }},
		{name: "timeout is for an older spec", action: RollbackNone, change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) {
			d.Generation = 2
		}},
		{name: "no last good revision", action: RollbackNone, msg: "no fully rolled out revision",
			change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) { delete(d.Annotations, LastGoodRevisionAnnotation) }},
		{name: "last good revision's RS is gone", action: RollbackNone, msg: "no fully rolled out revision",
			change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) { d.Annotations[LastGoodRevisionAnnotation] = "9" }},
		{name: "last good found through revision history", action: RollbackToTarget,
			change: func(d *appsv1.Deployment, good, _ *appsv1.ReplicaSet) {
				good.Annotations[RevisionAnnotation] = "3"
				good.Annotations[RevisionHistoryAnnotation] = "1"
			}},
		{name: "the failing revision is the last good one", action: RollbackNone, msg: "is itself the last good revision",
			change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) { d.Annotations[LastGoodRevisionAnnotation] = "2" }},
		{name: "failed template applied again: held", action: RollbackHold, msg: "not rolled out again",
			change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) {
				d.Annotations[FailedRevisionHashAnnotation] = "bad"
			}},
		{name: "after the rollback the mark stays", action: RollbackNone,
			change: func(d *appsv1.Deployment, good, bad *appsv1.ReplicaSet) {
				d.Annotations[FailedRevisionHashAnnotation] = "bad"
				d.Spec.Template = *good.Spec.Template.DeepCopy()
				delete(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
				d.Status.Conditions[0].Reason = ReasonRSUpdated
			}},
		{name: "a new template clears the mark", action: RollbackClearMark,
			change: func(d *appsv1.Deployment, _, _ *appsv1.ReplicaSet) {
				d.Annotations[FailedRevisionHashAnnotation] = "bad"
				d.Spec.Template.Spec.Containers[0].Image = "v3"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, good, bad := rollbackCase()
			if tc.change != nil {
				tc.change(d, good, bad)
			}
			newRS, old := Split(d, []*appsv1.ReplicaSet{good, bad})
			dec := DecideAutoRollback(d, newRS, old)
			if dec.Action != tc.action || !strings.Contains(dec.Message, tc.msg) {
				t.Fatalf("got %v %q, want %v %q", dec.Action, dec.Message, tc.action, tc.msg)
			}
			if dec.Action == RollbackToTarget && (dec.Target != good || dec.FailedHash != "bad") {
				t.Fatalf("target %v failed hash %q", dec.Target.Name, dec.FailedHash)
			}
		})
	}
}

func TestRolledBack(t *testing.T) {
	d, good, bad := rollbackCase()
	newRS, old := Split(d, []*appsv1.ReplicaSet{good, bad})
	dec := DecideAutoRollback(d, newRS, old)
	now := metav1.NewTime(epoch)
	out := RolledBack(d, dec, now)
	if !EqualIgnoreHash(&out.Spec.Template, &good.Spec.Template) {
		t.Fatal("template not the good one")
	}
	if _, ok := out.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		t.Fatal("hash label copied into the deployment template")
	}
	if out.Annotations[FailedRevisionHashAnnotation] != "bad" {
		t.Fatal("failed hash not marked")
	}
	c := Condition(out.Status, ConditionAutoRollback)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != TimedOutReason || !strings.Contains(c.Message, "revision 2") {
		t.Fatalf("AutoRollback condition %+v", c)
	}
	if p := Condition(out.Status, appsv1.DeploymentProgressing); p.Reason != ReasonRSUpdated || !p.LastUpdateTime.Equal(&now) {
		t.Fatalf("Progressing not restarted: %+v", p)
	}
	if d.Spec.Template.Spec.Containers[0].Image != "v2" {
		t.Fatal("input mutated")
	}
	// After the rollback the good RS is new again and nothing more happens.
	out.Status.Conditions = out.Status.Conditions[:0]
	newRS, old = Split(out, []*appsv1.ReplicaSet{good, bad})
	if newRS != good {
		t.Fatal("good RS is not the new one after rollback")
	}
	if dec := DecideAutoRollback(out, newRS, old); dec.Action != RollbackNone {
		t.Fatalf("after rollback: %v", dec.Action)
	}
}

func TestLastGoodUpdate(t *testing.T) {
	d := dep(3, "1", "1").obj()
	n := rs("n", 1, 3, 3).rev(4).obj()
	st := appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3, ObservedGeneration: 1}
	if rev, ok := LastGoodUpdate(d, n, &st); !ok || rev != "4" {
		t.Fatalf("got %q %v", rev, ok)
	}
	d.Annotations = map[string]string{LastGoodRevisionAnnotation: "4"}
	if _, ok := LastGoodUpdate(d, n, &st); ok {
		t.Fatal("already recorded")
	}
	d.Annotations = nil
	st.AvailableReplicas = 2
	if _, ok := LastGoodUpdate(d, n, &st); ok {
		t.Fatal("not complete")
	}
}
