package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWithCondition(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	unsched := func(msg string, at metav1.Time) corev1.PodCondition {
		return corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: msg, LastTransitionTime: at}
	}
	tests := []struct {
		name        string
		have        []corev1.PodCondition
		set         corev1.PodCondition
		wantChanged bool
		wantTime    metav1.Time
	}{
		{"added", nil, unsched("m", metav1.Time{}), true, t1},
		{"same: no write", []corev1.PodCondition{unsched("m", t0)}, unsched("m", metav1.Time{}), false, t0},
		{"new message keeps the transition time", []corev1.PodCondition{unsched("m", t0)}, unsched("n", metav1.Time{}), true, t0},
		{"new status moves it", []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0}}, unsched("m", metav1.Time{}), true, t1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Status: corev1.PodStatus{Conditions: tt.have}}
			out, changed := WithCondition(pod, tt.set, t1)
			if changed != tt.wantChanged {
				t.Fatalf("changed = %v", changed)
			}
			if len(out.Status.Conditions) != 1 {
				t.Fatalf("conditions %+v", out.Status.Conditions)
			}
			c := out.Status.Conditions[0]
			if c.Message != tt.set.Message || !c.LastTransitionTime.Equal(&tt.wantTime) {
				t.Fatalf("condition %+v, want message %q at %v", c, tt.set.Message, tt.wantTime)
			}
			if changed && len(pod.Status.Conditions) == 1 && pod.Status.Conditions[0].Message != tt.have[0].Message {
				t.Fatal("input pod modified")
			}
		})
	}
}

func TestNodeChangeMayHelp(t *testing.T) {
	base := mkNode("a", "4", "4Gi").obj()
	tests := []struct {
		name   string
		change func(*corev1.Node)
		want   bool
	}{
		{"heartbeat only", func(n *corev1.Node) { n.Status.Conditions[0].LastHeartbeatTime = metav1.Now() }, false},
		{"annotation only", func(n *corev1.Node) { n.Annotations = map[string]string{"x": "y"} }, false},
		{"allocatable", func(n *corev1.Node) { n.Status.Allocatable[corev1.ResourceCPU] = resource.MustParse("8") }, true},
		{"label", func(n *corev1.Node) { n.Labels["disk"] = "ssd" }, true},
		{"taint removed", func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}} }, true},
		{"uncordoned", func(n *corev1.Node) { n.Spec.Unschedulable = true }, true},
		{"readiness", func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }, true},
	}
	for _, tt := range tests {
		n := base.DeepCopy()
		tt.change(n)
		if got := NodeChangeMayHelp(base, n); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
