package registry

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestAddDefaultTolerations(t *testing.T) {
	seconds := func(tol corev1.Toleration) int64 {
		if tol.TolerationSeconds == nil {
			return -1
		}
		return *tol.TolerationSeconds
	}
	for name, tc := range map[string]struct {
		given []corev1.Toleration
		added bool
		want  map[string]int64 // key → seconds (-1: forever) of NoExecute tolerations after
	}{
		"none":              {nil, true, map[string]int64{corev1.TaintNodeNotReady: 5, corev1.TaintNodeUnreachable: 5}},
		"own not-ready":     {[]corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrTo(int64(60))}}, true, map[string]int64{corev1.TaintNodeNotReady: 60, corev1.TaintNodeUnreachable: 5}},
		"tolerates all":     {[]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, false, map[string]int64{"": -1}},
		"NoSchedule only":   {[]corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, true, map[string]int64{corev1.TaintNodeNotReady: 5, corev1.TaintNodeUnreachable: 5}},
		"both own, forever": {[]corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists}, {Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists}}, false, map[string]int64{corev1.TaintNodeNotReady: -1, corev1.TaintNodeUnreachable: -1}},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.given}}
		if got := AddDefaultTolerations(pod, 5); got != tc.added {
			t.Errorf("%s: added %v, want %v", name, got, tc.added)
		}
		got := map[string]int64{}
		for _, tol := range pod.Spec.Tolerations {
			if tol.Effect == corev1.TaintEffectNoExecute || tol.Effect == "" {
				got[tol.Key] = seconds(tol)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: tolerations %v, want %v", name, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %q tolerated for %d, want %d", name, k, got[k], v)
			}
		}
	}
}
