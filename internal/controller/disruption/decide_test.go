package disruption

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func pod(name string, ready bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	return p
}

func deleting(p *corev1.Pod) *corev1.Pod {
	ts := metav1.NewTime(t0)
	p.DeletionTimestamp = &ts
	return p
}

func ready(n int) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range n {
		out = append(out, pod(string(rune('a'+i)), true))
	}
	return out
}

func intPtr(v int) *intstr.IntOrString    { x := intstr.FromInt32(int32(v)); return &x }
func pctPtr(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }
func minAvail(v *intstr.IntOrString) policyv1.PodDisruptionBudgetSpec {
	return policyv1.PodDisruptionBudgetSpec{MinAvailable: v, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
}
func maxUnavail(v *intstr.IntOrString) policyv1.PodDisruptionBudgetSpec {
	return policyv1.PodDisruptionBudgetSpec{MaxUnavailable: v, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
}

func TestExpected(t *testing.T) {
	cases := []struct {
		name                string
		spec                policyv1.PodDisruptionBudgetSpec
		pods, scale         int32
		wantExp, wantDesire int32
		needsScale          bool
	}{
		{"minAvailable int counts pods", minAvail(intPtr(5)), 6, 99, 6, 5, false},
		{"minAvailable percent rounds up over scale", minAvail(pctPtr("50%")), 2, 5, 5, 3, true},
		{"minAvailable 100%", minAvail(pctPtr("100%")), 3, 3, 3, 3, true},
		{"maxUnavailable int", maxUnavail(intPtr(1)), 2, 6, 6, 5, true},
		{"maxUnavailable percent rounds up", maxUnavail(pctPtr("10%")), 6, 6, 6, 5, true},
		{"maxUnavailable beyond scale clamps at 0", maxUnavail(intPtr(9)), 3, 3, 3, 0, true},
		{"neither set", policyv1.PodDisruptionBudgetSpec{}, 4, 4, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := NeedsScale(c.spec); got != c.needsScale {
				t.Errorf("NeedsScale = %v, want %v", got, c.needsScale)
			}
			exp, des, err := Expected(c.spec, c.pods, c.scale)
			if err != nil {
				t.Fatal(err)
			}
			if exp != c.wantExp || des != c.wantDesire {
				t.Errorf("Expected = (%d, %d), want (%d, %d)", exp, des, c.wantExp, c.wantDesire)
			}
		})
	}
	if _, _, err := Expected(minAvail(pctPtr("abc")), 1, 1); err == nil {
		t.Error("a malformed percentage is not an error")
	}
}

func TestCompute(t *testing.T) {
	recent := metav1.NewTime(t0.Add(-30 * time.Second))
	old := metav1.NewTime(t0.Add(-DeletionTimeout - time.Second))
	cases := []struct {
		name          string
		spec          policyv1.PodDisruptionBudgetSpec
		recorded      map[string]metav1.Time
		pods          []*corev1.Pod
		scale         int32
		healthy       int32
		allowed       int32
		expected      int32
		keptDisrupted []string
		recheck       time.Time
		condition     metav1.ConditionStatus
	}{
		{name: "6 ready, min 5 allows 1", spec: minAvail(intPtr(5)), pods: ready(6), healthy: 6, allowed: 1, expected: 6, condition: metav1.ConditionTrue},
		{name: "5 ready, min 5 allows 0", spec: minAvail(intPtr(5)), pods: ready(5), healthy: 5, allowed: 0, expected: 5, condition: metav1.ConditionFalse},
		{name: "unready pods are not healthy", spec: minAvail(intPtr(1)), pods: append(ready(1), pod("x", false)), healthy: 1, allowed: 0, expected: 2, condition: metav1.ConditionFalse},
		{name: "deleting pods are not healthy", spec: minAvail(intPtr(1)), pods: append(ready(1), deleting(pod("x", true))), healthy: 1, allowed: 0, expected: 2, condition: metav1.ConditionFalse},
		{name: "no pods allow nothing", spec: maxUnavail(intPtr(1)), pods: nil, scale: 0, healthy: 0, allowed: 0, expected: 0, condition: metav1.ConditionFalse},
		{name: "minAvailable 0 with no pods allows nothing", spec: minAvail(intPtr(0)), pods: nil, allowed: 0, condition: metav1.ConditionFalse},
		{name: "maxUnavailable over scale", spec: maxUnavail(intPtr(2)), pods: ready(4), scale: 4, healthy: 4, allowed: 2, expected: 4, condition: metav1.ConditionTrue},
		{name: "missing replicas count against the budget", spec: maxUnavail(intPtr(1)), pods: ready(3), scale: 4, healthy: 3, allowed: 0, expected: 4, condition: metav1.ConditionFalse},
		{
			name: "a recently evicted pod is not healthy and stays recorded", spec: minAvail(intPtr(4)),
			recorded: map[string]metav1.Time{"a": recent}, pods: ready(6), healthy: 5, allowed: 1, expected: 6,
			keptDisrupted: []string{"a"}, recheck: recent.Add(DeletionTimeout), condition: metav1.ConditionTrue,
		},
		{
			name: "an old record expires and the pod counts again", spec: minAvail(intPtr(5)),
			recorded: map[string]metav1.Time{"a": old}, pods: ready(6), healthy: 6, allowed: 1, expected: 6, condition: metav1.ConditionTrue,
		},
		{
			name: "a record for a pod being deleted or gone is dropped", spec: minAvail(intPtr(1)),
			recorded: map[string]metav1.Time{"a": recent, "gone": recent}, pods: []*corev1.Pod{deleting(pod("a", true)), pod("b", true)},
			healthy: 1, allowed: 0, expected: 2, condition: metav1.ConditionFalse,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "pdb", Namespace: "ns", Generation: 4},
				Spec: c.spec, Status: policyv1.PodDisruptionBudgetStatus{DisruptedPods: c.recorded}}
			st, recheck, err := Compute(pdb, c.pods, c.scale, t0)
			if err != nil {
				t.Fatal(err)
			}
			if st.CurrentHealthy != c.healthy || st.DisruptionsAllowed != c.allowed || st.ExpectedPods != c.expected {
				t.Errorf("healthy/allowed/expected = %d/%d/%d, want %d/%d/%d", st.CurrentHealthy, st.DisruptionsAllowed, st.ExpectedPods, c.healthy, c.allowed, c.expected)
			}
			if st.ObservedGeneration != 4 {
				t.Errorf("observedGeneration = %d, want 4", st.ObservedGeneration)
			}
			if len(st.DisruptedPods) != len(c.keptDisrupted) {
				t.Errorf("disruptedPods = %v, want %v", st.DisruptedPods, c.keptDisrupted)
			}
			for _, name := range c.keptDisrupted {
				if _, ok := st.DisruptedPods[name]; !ok {
					t.Errorf("disruptedPods lost %s", name)
				}
			}
			if !recheck.Equal(c.recheck) {
				t.Errorf("recheck = %v, want %v", recheck, c.recheck)
			}
			cond := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
			if cond == nil || cond.Status != c.condition || cond.ObservedGeneration != 4 {
				t.Fatalf("condition = %+v, want status %s", cond, c.condition)
			}
			wantReason := policyv1.InsufficientPodsReason
			if c.condition == metav1.ConditionTrue {
				wantReason = policyv1.SufficientPodsReason
			}
			if cond.Reason != wantReason {
				t.Errorf("reason = %s, want %s", cond.Reason, wantReason)
			}
		})
	}
}

func TestComputeKeepsTransitionTime(t *testing.T) {
	earlier := metav1.NewTime(t0.Add(-time.Hour))
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Generation: 1}, Spec: minAvail(intPtr(1)),
		Status: policyv1.PodDisruptionBudgetStatus{Conditions: []metav1.Condition{{
			Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue, Reason: policyv1.SufficientPodsReason,
			ObservedGeneration: 1, LastTransitionTime: earlier,
		}}}}
	st, _, _ := Compute(pdb, ready(3), 0, t0)
	if c := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition); !c.LastTransitionTime.Equal(&earlier) {
		t.Errorf("unchanged condition moved its transition time to %v", c.LastTransitionTime)
	}
	if pdb.Status.Conditions[0].LastTransitionTime != earlier {
		t.Error("Compute changed its input")
	}
	st, _, _ = Compute(pdb, ready(1), 0, t0)
	if c := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("changed condition has transition time %v, want %v", c.LastTransitionTime, t0)
	}
}

func TestFailSafe(t *testing.T) {
	pdb := &policyv1.PodDisruptionBudget{Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 3, ObservedGeneration: 2}}
	st := FailSafe(pdb, errors.New("found no controllers for pod \"a\""), t0)
	c := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
	if st.DisruptionsAllowed != 0 || c == nil || c.Status != metav1.ConditionFalse || c.Reason != policyv1.SyncFailedReason || c.Message == "" {
		t.Errorf("fail-safe status = %+v", st)
	}
	if pdb.Status.DisruptionsAllowed != 3 {
		t.Error("FailSafe changed its input")
	}
}
