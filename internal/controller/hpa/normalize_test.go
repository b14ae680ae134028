package hpa

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

func i32(v int32) *int32 { return &v }

func rules(window *int32, sel autoscalingv2.ScalingPolicySelect, ps ...autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	r := &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: window, Policies: ps}
	if sel != "" {
		r.SelectPolicy = &sel
	}
	return r
}

func podsPolicy(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: n, PeriodSeconds: period}
}

func percentPolicy(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: n, PeriodSeconds: period}
}

// upstream's defaults (as the registry fills them in).
func defaultUp() *autoscalingv2.HPAScalingRules {
	return rules(i32(0), autoscalingv2.MaxChangePolicySelect, podsPolicy(4, 15), percentPolicy(100, 15))
}
func defaultDown() *autoscalingv2.HPAScalingRules {
	return rules(nil, autoscalingv2.MaxChangePolicySelect, percentPolicy(100, 15))
}

func recs(kv ...any) []Recommendation {
	var out []Recommendation
	for i := 0; i < len(kv); i += 2 {
		out = append(out, Recommendation{Replicas: int32(kv[i].(int)), At: t0.Add(kv[i+1].(time.Duration))})
	}
	return out
}

func TestNormalize(t *testing.T) {
	tuning := Tuning{Tolerance: 0.1, DownscaleStabilization: time.Minute}
	tests := []struct {
		name             string
		behavior         *autoscalingv2.HorizontalPodAutoscalerBehavior
		min, max         int32
		current, desired int32
		hist             History
		want             int32
		wantAble         string // AbleToScale reason
		wantLimited      string // ScalingLimited reason
		wantLimitedTrue  bool
	}{
		// Without a behavior (kubectl autoscale): upstream's legacy rules.
		{name: "legacy scale up within limits", min: 1, max: 10, current: 2, desired: 4,
			want: 4, wantAble: "ReadyForNewScale", wantLimited: "DesiredWithinRange"},
		{name: "legacy scale up limited to 4 from 1", min: 1, max: 10, current: 1, desired: 9,
			want: 4, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "legacy scale up limited to double", min: 1, max: 20, current: 3, desired: 9,
			want: 6, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "legacy max replicas", min: 1, max: 5, current: 3, desired: 9,
			want: 5, wantAble: "ReadyForNewScale", wantLimited: "TooManyReplicas", wantLimitedTrue: true},
		{name: "legacy min replicas", min: 2, max: 5, current: 3, desired: 1,
			want: 2, wantAble: "ReadyForNewScale", wantLimited: "TooFewReplicas", wantLimitedTrue: true},
		{name: "legacy scale down stabilized by a recent higher recommendation", min: 1, max: 10, current: 5, desired: 2,
			hist: History{Recommendations: recs(5, -30*time.Second, 3, -10*time.Second)},
			want: 5, wantAble: "ScaleDownStabilized", wantLimited: "DesiredWithinRange"},
		{name: "legacy scale down once the window passed", min: 1, max: 10, current: 5, desired: 2,
			hist: History{Recommendations: recs(5, -61*time.Second, 3, -10*time.Second)},
			want: 3, wantAble: "ScaleDownStabilized", wantLimited: "DesiredWithinRange"},

		// With upstream's default behavior.
		{name: "default behavior: 4 pods or 100% per 15s", min: 1, max: 100, current: 2, desired: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()},
			want:     6, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "default behavior: 100% of 10 beats 4 pods", min: 1, max: 100, current: 10, desired: 30,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()},
			want:     20, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "scale-up in the period counts against the policy", min: 1, max: 100, current: 6, desired: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()},
			hist:     History{ScaleUps: []ScaleEvent{{Change: 4, At: t0.Add(-5 * time.Second)}}},
			want:     6, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "scale-up before the period does not count", min: 1, max: 100, current: 6, desired: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()},
			hist:     History{ScaleUps: []ScaleEvent{{Change: 4, At: t0.Add(-16 * time.Second)}}},
			want:     12, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "select Min policy", min: 1, max: 100, current: 2, desired: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(i32(0), autoscalingv2.MinChangePolicySelect, podsPolicy(4, 15), percentPolicy(100, 15)), ScaleDown: defaultDown()},
			want:     4, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "scale up disabled", min: 1, max: 100, current: 2, desired: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(i32(0), autoscalingv2.DisabledPolicySelect, podsPolicy(4, 15)), ScaleDown: defaultDown()},
			want:     2, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "max replicas under the rate limit", min: 1, max: 5, current: 2, desired: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()},
			want:     5, wantAble: "ReadyForNewScale", wantLimited: "TooManyReplicas", wantLimitedTrue: true},
		{name: "scale-up stabilization window keeps the lowest recent", min: 1, max: 100, current: 3, desired: 8,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(i32(60), "", percentPolicy(100, 15)), ScaleDown: defaultDown()},
			hist:     History{Recommendations: recs(3, -30*time.Second, 5, -5*time.Second)},
			want:     3, wantAble: "ScaleUpStabilized", wantLimited: "DesiredWithinRange"},
		{name: "scale-up stabilization takes the lowest recent above current", min: 1, max: 100, current: 3, desired: 8,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(i32(60), "", percentPolicy(100, 15)), ScaleDown: defaultDown()},
			hist:     History{Recommendations: recs(5, -30*time.Second, 6, -5*time.Second)},
			want:     5, wantAble: "ScaleUpStabilized", wantLimited: "DesiredWithinRange"},
		{name: "scale-down window from the controller when unset", min: 1, max: 100, current: 10, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()},
			hist:     History{Recommendations: recs(10, -50*time.Second)},
			want:     10, wantAble: "ScaleDownStabilized", wantLimited: "DesiredWithinRange"},
		{name: "scale-down after the window, 100% per 15s", min: 1, max: 100, current: 10, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()},
			hist:     History{Recommendations: recs(10, -70*time.Second)},
			want:     2, wantAble: "ReadyForNewScale", wantLimited: "DesiredWithinRange"},
		{name: "own zero scale-down window", min: 1, max: 100, current: 10, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: rules(i32(0), "", percentPolicy(100, 15))},
			hist:     History{Recommendations: recs(10, -5*time.Second)},
			want:     2, wantAble: "ReadyForNewScale", wantLimited: "DesiredWithinRange"},
		{name: "scale down 50% per minute", min: 1, max: 100, current: 10, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: rules(i32(0), "", percentPolicy(50, 60))},
			want:     5, wantAble: "ReadyForNewScale", wantLimited: "ScaleDownLimit", wantLimitedTrue: true},
		{name: "scale down 1 pod per minute, one taken already", min: 1, max: 100, current: 9, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: rules(i32(0), "", podsPolicy(1, 60))},
			hist:     History{ScaleDowns: []ScaleEvent{{Change: 1, At: t0.Add(-30 * time.Second)}}},
			want:     9, wantAble: "ReadyForNewScale", wantLimited: "ScaleDownLimit", wantLimitedTrue: true},
		{name: "scale down Min policy picks the smaller change", min: 1, max: 100, current: 10, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: rules(i32(0), autoscalingv2.MinChangePolicySelect, podsPolicy(2, 60), percentPolicy(50, 60))},
			want:     8, wantAble: "ReadyForNewScale", wantLimited: "ScaleDownLimit", wantLimitedTrue: true},
		{name: "scale down disabled", min: 1, max: 100, current: 10, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: rules(i32(0), autoscalingv2.DisabledPolicySelect, percentPolicy(100, 15))},
			want:     10, wantAble: "ReadyForNewScale", wantLimited: "ScaleDownLimit", wantLimitedTrue: true},
		{name: "min replicas under the rate limit", min: 4, max: 100, current: 10, desired: 2,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: rules(i32(0), "", percentPolicy(100, 15))},
			want:     4, wantAble: "ReadyForNewScale", wantLimited: "TooFewReplicas", wantLimitedTrue: true},
		{name: "a recent scale-down lowers the scale-up base", min: 1, max: 100, current: 2, desired: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(i32(0), "", podsPolicy(4, 60)), ScaleDown: defaultDown()},
			hist:     History{ScaleDowns: []ScaleEvent{{Change: 3, At: t0.Add(-10 * time.Second)}}},
			want:     9, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &tt.min, MaxReplicas: tt.max, Behavior: tt.behavior}}
			var st autoscalingv2.HorizontalPodAutoscalerStatus
			hist := tt.hist
			got := normalize(h, &hist, &st, tt.current, tt.desired, tt.min, tuning, t0)
			if got != tt.want {
				t.Errorf("replicas = %d, want %d", got, tt.want)
			}
			able, limited := condition(st, autoscalingv2.AbleToScale), condition(st, autoscalingv2.ScalingLimited)
			if able == nil || able.Reason != tt.wantAble {
				t.Errorf("AbleToScale = %+v, want reason %s", able, tt.wantAble)
			}
			if limited == nil || limited.Reason != tt.wantLimited || (limited.Status == "True") != tt.wantLimitedTrue {
				t.Errorf("ScalingLimited = %+v, want reason %s true=%v", limited, tt.wantLimited, tt.wantLimitedTrue)
			}
			if last := hist.Recommendations[len(hist.Recommendations)-1]; !last.At.Equal(t0) || last.Replicas != tt.desired {
				if !containsRec(hist.Recommendations, Recommendation{tt.desired, t0}) {
					t.Errorf("recommendations %v do not record %d at now", hist.Recommendations, tt.desired)
				}
			}
		})
	}
}

func containsRec(rs []Recommendation, r Recommendation) bool {
	for _, x := range rs {
		if x.Replicas == r.Replicas && x.At.Equal(r.At) {
			return true
		}
	}
	return false
}

func condition(st autoscalingv2.HorizontalPodAutoscalerStatus, typ autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}

func TestHistoryRecordsAndReusesSlots(t *testing.T) {
	b := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: defaultUp(), ScaleDown: defaultDown()}
	var h History
	h.RecordScale(b, 2, 6, t0)
	h.RecordScale(b, 6, 10, t0.Add(5*time.Second))
	if len(h.ScaleUps) != 2 || h.ScaleUps[0].Change != 4 || h.ScaleUps[1].Change != 4 {
		t.Fatalf("scale ups = %+v", h.ScaleUps)
	}
	// 20s later the first is older than the longest period (15s): reused.
	h.RecordScale(b, 10, 12, t0.Add(20*time.Second))
	if len(h.ScaleUps) != 2 || h.ScaleUps[0].Change != 2 {
		t.Errorf("scale ups after reuse = %+v", h.ScaleUps)
	}
	h.RecordScale(b, 12, 3, t0.Add(21*time.Second))
	if len(h.ScaleDowns) != 1 || h.ScaleDowns[0].Change != 9 {
		t.Errorf("scale downs = %+v", h.ScaleDowns)
	}
	var legacy History
	legacy.RecordScale(nil, 1, 5, t0)
	if len(legacy.ScaleUps) != 0 {
		t.Errorf("events kept without a behavior: %+v", legacy.ScaleUps)
	}
}
