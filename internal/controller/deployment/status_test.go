package deployment

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCalculateStatus(t *testing.T) {
	now := metav1.NewTime(epoch)
	d := dep(10, "1", "1").obj()
	d.Generation = 4
	d.Status.CollisionCount = ptr(int32(2))
	newRS := rs("new", 2, 3, 2).obj()
	newRS.Status.ReadyReplicas = 3
	old := rs("old", 1, 8, 8).obj()
	st := CalculateStatus(d, []*appsv1.ReplicaSet{old, newRS}, newRS, now)
	want := appsv1.DeploymentStatus{Replicas: 11, UpdatedReplicas: 3, ReadyReplicas: 11, AvailableReplicas: 10,
		UnavailableReplicas: 1, ObservedGeneration: 4, CollisionCount: ptr(int32(2))}
	if st.Replicas != want.Replicas || st.UpdatedReplicas != want.UpdatedReplicas || st.ReadyReplicas != want.ReadyReplicas ||
		st.AvailableReplicas != want.AvailableReplicas || st.UnavailableReplicas != want.UnavailableReplicas ||
		st.ObservedGeneration != want.ObservedGeneration || *st.CollisionCount != 2 {
		t.Fatalf("got %+v", st)
	}
	if c := Condition(st, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue || c.Reason != ReasonMinimumAvailable || c.Message != "Deployment has minimum availability." {
		t.Fatalf("available: %+v", c)
	}
	old.Status.AvailableReplicas = 6
	st = CalculateStatus(d, []*appsv1.ReplicaSet{old, newRS}, newRS, now)
	if c := Condition(st, appsv1.DeploymentAvailable); c.Status != corev1.ConditionFalse || c.Reason != ReasonMinimumUnavailble || c.Message != "Deployment does not have minimum availability." {
		t.Fatalf("unavailable: %+v", c)
	}
	if len(d.Status.Conditions) != 0 {
		t.Fatal("input mutated")
	}
}

func TestSetConditionKeepsTransitionTime(t *testing.T) {
	t0, t1 := metav1.NewTime(epoch), metav1.NewTime(epoch.Add(time.Minute))
	var st appsv1.DeploymentStatus
	SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "A", "a", t0))
	SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "A", "changed", t1))
	if c := Condition(st, appsv1.DeploymentProgressing); c.Message != "a" {
		t.Fatal("same status and reason must not change the condition")
	}
	SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "B", "b", t1))
	if c := Condition(st, appsv1.DeploymentProgressing); c.Reason != "B" || !c.LastTransitionTime.Equal(&t0) || !c.LastUpdateTime.Equal(&t1) {
		t.Fatalf("got %+v", c)
	}
	SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, "C", "c", t1))
	if c := Condition(st, appsv1.DeploymentProgressing); !c.LastTransitionTime.Equal(&t1) || len(st.Conditions) != 1 {
		t.Fatalf("got %+v", st.Conditions)
	}
}

func progressing(reason string, status corev1.ConditionStatus, updated time.Time) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: status, Reason: reason,
		LastUpdateTime: metav1.NewTime(updated), LastTransitionTime: metav1.NewTime(updated)}
}

func TestRolloutStatusProgressing(t *testing.T) {
	deadline := 60 * time.Second
	for _, tc := range []struct {
		name       string
		prior      appsv1.DeploymentStatus // recorded status
		cond       *appsv1.DeploymentCondition
		new, old   rsB
		now        time.Time
		wantReason string
		wantStatus corev1.ConditionStatus
		wantMsg    string
		recheck    time.Duration // -2: don't check
	}{
		{
			name:  "complete",
			prior: appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2},
			cond:  ptr(progressing(ReasonRSUpdated, corev1.ConditionTrue, epoch)),
			new:   rs("web-new", 2, 3, 3), old: rs("web-old", 1, 0, 0), now: epoch.Add(time.Second),
			wantReason: ReasonNewRSAvailable, wantStatus: corev1.ConditionTrue, wantMsg: `ReplicaSet "web-new" has successfully progressed.`,
			recheck: -1,
		},
		{
			name:  "progress refreshes the condition",
			prior: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 2, ReadyReplicas: 2},
			cond:  ptr(progressing(ReasonNewRSCreated, corev1.ConditionTrue, epoch)),
			new:   rs("web-new", 2, 2, 1), old: rs("web-old", 1, 2, 2), now: epoch.Add(30 * time.Second),
			wantReason: ReasonRSUpdated, wantStatus: corev1.ConditionTrue, wantMsg: `ReplicaSet "web-new" is progressing.`,
			recheck: -2,
		},
		{
			name:  "no progress, within the deadline",
			prior: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2},
			cond:  ptr(progressing(ReasonRSUpdated, corev1.ConditionTrue, epoch)),
			new:   rs("web-new", 2, 2, 0), old: rs("web-old", 1, 2, 2), now: epoch.Add(30 * time.Second),
			wantReason: ReasonRSUpdated, wantStatus: corev1.ConditionTrue,
			recheck: 31 * time.Second,
		},
		{
			name:  "no progress past the deadline",
			prior: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2},
			cond:  ptr(progressing(ReasonRSUpdated, corev1.ConditionTrue, epoch)),
			new:   rs("web-new", 2, 2, 0), old: rs("web-old", 1, 2, 2), now: epoch.Add(61 * time.Second),
			wantReason: TimedOutReason, wantStatus: corev1.ConditionFalse, wantMsg: `ReplicaSet "web-new" has timed out progressing.`,
			recheck: 0,
		},
		{
			name:  "timed out stays timed out without progress",
			prior: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2},
			cond:  ptr(progressing(TimedOutReason, corev1.ConditionFalse, epoch)),
			new:   rs("web-new", 2, 2, 0), old: rs("web-old", 1, 2, 2), now: epoch.Add(time.Second),
			wantReason: TimedOutReason, wantStatus: corev1.ConditionFalse,
			recheck: -1,
		},
		{
			name:  "timed out recovers on progress",
			prior: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2},
			cond:  ptr(progressing(TimedOutReason, corev1.ConditionFalse, epoch)),
			new:   rs("web-new", 2, 2, 1), old: rs("web-old", 1, 2, 2), now: epoch.Add(time.Hour),
			wantReason: ReasonRSUpdated, wantStatus: corev1.ConditionTrue,
			recheck: -2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dep(3, "1", "1").obj()
			if tc.name != "complete" {
				d.Spec.Replicas = ptr(int32(3))
			}
			d.Spec.ProgressDeadlineSeconds = ptr(int32(deadline / time.Second))
			d.Status = tc.prior
			d.Status.ObservedGeneration = 1
			if tc.cond != nil {
				d.Status.Conditions = []appsv1.DeploymentCondition{*tc.cond}
			}
			n, o := tc.new.obj(), tc.old.obj()
			st := RolloutStatus(d, []*appsv1.ReplicaSet{o, n}, n, metav1.NewTime(tc.now))
			c := Condition(st, appsv1.DeploymentProgressing)
			if c == nil || c.Reason != tc.wantReason || c.Status != tc.wantStatus || (tc.wantMsg != "" && c.Message != tc.wantMsg) {
				t.Fatalf("got %+v", c)
			}
			if tc.recheck != -2 {
				if got := RecheckAfter(d, &st, tc.now); got != tc.recheck {
					t.Fatalf("recheck after %v, want %v", got, tc.recheck)
				}
			}
		})
	}
}

func TestRolloutStatusWithoutDeadlineHasNoProgressing(t *testing.T) {
	d := dep(1, "1", "1").obj()
	d.Spec.ProgressDeadlineSeconds = nil
	d.Status.Conditions = []appsv1.DeploymentCondition{progressing(ReasonRSUpdated, corev1.ConditionTrue, epoch)}
	n := rs("n", 1, 1, 1).obj()
	if st := RolloutStatus(d, []*appsv1.ReplicaSet{n}, n, metav1.NewTime(epoch)); Condition(st, appsv1.DeploymentProgressing) != nil {
		t.Fatal("Progressing kept")
	}
}

func TestPausedCondition(t *testing.T) {
	now := metav1.NewTime(epoch)
	d := dep(1, "1", "1").obj()
	d.Spec.Paused = true
	st, changed := PausedCondition(d, now)
	if c := Condition(st, appsv1.DeploymentProgressing); !changed || c.Reason != ReasonPaused || c.Status != corev1.ConditionUnknown || c.Message != "Deployment is paused" {
		t.Fatalf("pause: %+v %v", c, changed)
	}
	d.Status = st
	if _, changed := PausedCondition(d, now); changed {
		t.Fatal("pause twice")
	}
	d.Spec.Paused = false
	st, changed = PausedCondition(d, now)
	if c := Condition(st, appsv1.DeploymentProgressing); !changed || c.Reason != ReasonResumed || c.Message != "Deployment is resumed" {
		t.Fatalf("resume: %+v", c)
	}
	d.Spec.Paused = true
	d.Status.Conditions = []appsv1.DeploymentCondition{progressing(TimedOutReason, corev1.ConditionFalse, epoch)}
	if _, changed := PausedCondition(d, now); changed {
		t.Fatal("a timeout must not be overwritten by a pause")
	}
}

func TestRolloutStatusReplicaFailure(t *testing.T) {
	d := dep(2, "1", "1").obj()
	n, o := rs("n", 2, 2, 0).obj(), rs("o", 1, 1, 1).obj()
	o.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "old"}}
	st := RolloutStatus(d, []*appsv1.ReplicaSet{o, n}, n, metav1.NewTime(epoch))
	if c := Condition(st, appsv1.DeploymentReplicaFailure); c == nil || c.Message != "old" || c.Reason != "FailedCreate" {
		t.Fatalf("from the old RS: %+v", c)
	}
	n.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "new"}}
	if c := Condition(RolloutStatus(d, []*appsv1.ReplicaSet{o, n}, n, metav1.NewTime(epoch)), appsv1.DeploymentReplicaFailure); c.Message != "new" {
		t.Fatalf("the new RS's failure comes first: %+v", c)
	}
	d.Status = st
	o.Status.Conditions, n.Status.Conditions = nil, nil
	if c := Condition(RolloutStatus(d, []*appsv1.ReplicaSet{o, n}, n, metav1.NewTime(epoch)), appsv1.DeploymentReplicaFailure); c != nil {
		t.Fatalf("failure gone: %+v", c)
	}
}
