package hpa

import (
	"errors"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

func cpuHPA(target int32, minR, maxR int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: 3},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "ReplicaSet", Name: "web", APIVersion: "apps/v1"},
			MinReplicas:    &minR, MaxReplicas: maxR,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target},
			}}},
		},
	}
}

// podMetrics are metrics.k8s.io items with one container using milliCPU
// and 100Mi each.
func podMetrics(kv ...any) []metricsv1beta1.PodMetrics {
	var out []metricsv1beta1.PodMetrics
	for i := 0; i < len(kv); i += 2 {
		out = append(out, metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: kv[i].(string), Namespace: "default"},
			Timestamp:  metav1.NewTime(t0), Window: metav1.Duration{Duration: 5 * time.Second},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "app", Usage: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(kv[i+1].(int)), resource.DecimalSI),
				corev1.ResourceMemory: resource.MustParse("100Mi"),
			}}},
		})
	}
	return out
}

var tuning = Tuning{Tolerance: 0.1, DownscaleStabilization: time.Minute, Readiness: defRead}

func TestDecide(t *testing.T) {
	three := pods(mkPod("a"), mkPod("b"), mkPod("c"))
	tests := []struct {
		name        string
		hpa         *autoscalingv2.HorizontalPodAutoscaler
		scale       Scale
		pods        []*corev1.Pod
		metrics     []metricsv1beta1.PodMetrics
		metricsErr  error
		selecting   []string
		hist        History
		wantRescale bool
		wantDesired int32
		wantReason  string
		wantErr     string
		wantConds   map[autoscalingv2.HorizontalPodAutoscalerConditionType]string // type → "Status/Reason"
		wantEvents  []string                                                      // reasons
	}{
		{name: "scale up on CPU", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "app=web"}, pods: three,
			metrics:     podMetrics("a", 900, "b", 900, "c", 900),
			wantRescale: true, wantDesired: 6, wantReason: "cpu resource utilization (percentage of request) above target",
			wantConds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
				autoscalingv2.AbleToScale: "True/SucceededRescale", autoscalingv2.ScalingActive: "True/ValidMetricFound", autoscalingv2.ScalingLimited: "False/DesiredWithinRange"}},
		{name: "at target: nothing to do", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "app=web"}, pods: three,
			metrics: podMetrics("a", 500, "b", 500, "c", 500), wantDesired: 3,
			wantConds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
				autoscalingv2.AbleToScale: "True/ReadyForNewScale", autoscalingv2.ScalingActive: "True/ValidMetricFound", autoscalingv2.ScalingLimited: "False/DesiredWithinRange"}},
		{name: "scale down held by the stabilization window", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "app=web"}, pods: three,
			metrics: podMetrics("a", 100, "b", 100, "c", 100), hist: History{Recommendations: recs(3, -10*time.Second)},
			wantDesired: 3,
			wantConds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
				autoscalingv2.AbleToScale: "True/ScaleDownStabilized"}},
		{name: "scale down after the window", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "app=web"}, pods: three,
			metrics: podMetrics("a", 100, "b", 100, "c", 100), hist: History{Recommendations: recs(3, -2*time.Minute)},
			wantRescale: true, wantDesired: 1, wantReason: "All metrics below target"},
		{name: "target scaled to zero: autoscaling off", hpa: cpuHPA(50, 1, 10), scale: Scale{0, 0, "app=web"},
			wantDesired: 0,
			wantConds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
				autoscalingv2.AbleToScale: "True/SucceededGetScale", autoscalingv2.ScalingActive: "False/ScalingDisabled"}},
		{name: "above max replicas", hpa: cpuHPA(50, 1, 4), scale: Scale{6, 6, "app=web"},
			wantRescale: true, wantDesired: 4, wantReason: "Current number of replicas above Spec.MaxReplicas"},
		{name: "below min replicas", hpa: cpuHPA(50, 3, 6), scale: Scale{1, 1, "app=web"},
			wantRescale: true, wantDesired: 3, wantReason: "Current number of replicas below Spec.MinReplicas"},
		{name: "metrics unavailable", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "app=web"}, pods: three,
			metricsErr:  errors.New("the server could not find the requested resource"),
			wantDesired: 0, wantErr: "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: unable to get metrics for resource cpu: the server could not find the requested resource",
			wantConds:  map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "False/FailedGetResourceMetric"},
			wantEvents: []string{"FailedGetResourceMetric", "FailedComputeMetricsReplicas"}},
		{name: "no metrics returned", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "app=web"}, pods: three,
			wantErr:    "no metrics returned from resource metrics API",
			wantConds:  map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "False/FailedGetResourceMetric"},
			wantEvents: []string{"FailedGetResourceMetric", "FailedComputeMetricsReplicas"}},
		{name: "scale without selector", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, ""},
			wantErr:    "selector is required",
			wantConds:  map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "False/InvalidSelector"},
			wantEvents: []string{"SelectorRequired", "FailedComputeMetricsReplicas"}},
		{name: "bad selector", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "a in (b"},
			wantErr:    "couldn't convert selector",
			wantConds:  map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "False/InvalidSelector"},
			wantEvents: []string{"InvalidSelector", "FailedComputeMetricsReplicas"}},
		{name: "pods under two HPAs", hpa: cpuHPA(50, 1, 10), scale: Scale{3, 3, "app=web"}, pods: three,
			metrics: podMetrics("a", 900, "b", 900, "c", 900), selecting: []string{"default/other", "default/web"},
			wantErr:    "pods by selector app=web are controlled by multiple HPAs: [default/other default/web]",
			wantConds:  map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "False/AmbiguousSelector"},
			wantEvents: []string{"AmbiguousSelector", "FailedComputeMetricsReplicas"}},
		{name: "custom metric not served, CPU scales up anyway", hpa: withMetric(cpuHPA(50, 1, 10), autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType}),
			scale: Scale{3, 3, "app=web"}, pods: three, metrics: podMetrics("a", 900, "b", 900, "c", 900),
			wantRescale: true, wantDesired: 6, wantReason: "cpu resource utilization (percentage of request) above target",
			wantErr:    "invalid metrics (1 invalid out of 2)",
			wantConds:  map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "True/ValidMetricFound"},
			wantEvents: []string{"FailedGetPodsMetric"}},
		{name: "custom metric not served, no scale down on CPU alone", hpa: withMetric(cpuHPA(50, 1, 10), autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType}),
			scale: Scale{3, 3, "app=web"}, pods: three, metrics: podMetrics("a", 100, "b", 100, "c", 100),
			wantErr:    "invalid metrics (1 invalid out of 2)",
			wantConds:  map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "False/FailedGetPodsMetric"},
			wantEvents: []string{"FailedGetPodsMetric", "FailedComputeMetricsReplicas"}},
		{name: "the larger of two metrics wins", hpa: withMetric(cpuHPA(50, 1, 10), memoryValue("50Mi")),
			scale: Scale{3, 3, "app=web"}, pods: three, metrics: podMetrics("a", 600, "b", 600, "c", 600),
			wantRescale: true, wantDesired: 6, wantReason: "memory resource above target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist := tt.hist
			d := Decide(Input{HPA: tt.hpa, Scale: tt.scale, Pods: tt.pods, PodMetrics: tt.metrics, MetricsErr: tt.metricsErr, SelectingHPAs: tt.selecting, Now: t0, Tuning: tuning}, &hist)
			if d.Rescale != tt.wantRescale || d.Desired != tt.wantDesired || d.Reason != tt.wantReason {
				t.Errorf("rescale %v to %d (%q), want %v to %d (%q)", d.Rescale, d.Desired, d.Reason, tt.wantRescale, tt.wantDesired, tt.wantReason)
			}
			if (tt.wantErr == "") != (d.Err == nil) || (d.Err != nil && !strings.Contains(d.Err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", d.Err, tt.wantErr)
			}
			for typ, want := range tt.wantConds {
				c := condition(d.Status, typ)
				if c == nil || string(c.Status)+"/"+c.Reason != want {
					t.Errorf("%s = %+v, want %s", typ, c, want)
				}
			}
			var reasons []string
			for _, e := range d.Events {
				reasons = append(reasons, e.Reason)
			}
			if strings.Join(reasons, ",") != strings.Join(tt.wantEvents, ",") {
				t.Errorf("events %v, want %v", reasons, tt.wantEvents)
			}
			if d.Status.CurrentReplicas != tt.scale.SpecReplicas {
				t.Errorf("status currentReplicas = %d, want %d", d.Status.CurrentReplicas, tt.scale.SpecReplicas)
			}
			if d.Status.ObservedGeneration == nil || *d.Status.ObservedGeneration != 3 {
				t.Errorf("observedGeneration = %v", d.Status.ObservedGeneration)
			}
			if d.Rescale != (d.Status.LastScaleTime != nil) {
				t.Errorf("lastScaleTime = %v with rescale %v", d.Status.LastScaleTime, d.Rescale)
			}
		})
	}
}

func withMetric(h *autoscalingv2.HorizontalPodAutoscaler, m autoscalingv2.MetricSpec) *autoscalingv2.HorizontalPodAutoscaler {
	h.Spec.Metrics = append(h.Spec.Metrics, m)
	return h
}

func memoryValue(q string) autoscalingv2.MetricSpec {
	v := resource.MustParse(q)
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &v},
	}}
}

func TestDecideStatusAndEvents(t *testing.T) {
	h := cpuHPA(50, 1, 10)
	var hist History
	in := Input{HPA: h, Scale: Scale{3, 3, "app=web"}, Pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
		PodMetrics: podMetrics("a", 900, "b", 900, "c", 900), Now: t0, Tuning: tuning}
	d := Decide(in, &hist)
	if len(d.Status.CurrentMetrics) != 1 {
		t.Fatalf("currentMetrics = %+v", d.Status.CurrentMetrics)
	}
	cur := d.Status.CurrentMetrics[0].Resource.Current
	if *cur.AverageUtilization != 90 || cur.AverageValue.MilliValue() != 900 {
		t.Errorf("current = %d%% %s, want 90%% 900m", *cur.AverageUtilization, cur.AverageValue)
	}
	if d.Status.DesiredReplicas != 6 || !d.Status.LastScaleTime.Time.Equal(t0) {
		t.Errorf("desired %d lastScaleTime %v", d.Status.DesiredReplicas, d.Status.LastScaleTime)
	}
	ev := d.Rescaled(h, &hist, 3, t0)
	if ev.Type != corev1.EventTypeNormal || ev.Reason != "SuccessfulRescale" ||
		ev.Message != "New size: 6; reason: cpu resource utilization (percentage of request) above target" {
		t.Errorf("event = %+v", ev)
	}

	// A failed rescale keeps the old desired count and says why.
	st, fail := d.RescaleFailed(h.Status, 3, errors.New("conflict"), t0)
	if c := condition(st, autoscalingv2.AbleToScale); c.Status != corev1.ConditionFalse || c.Reason != "FailedUpdateScale" ||
		c.Message != "the HPA controller was unable to update the target scale: conflict" {
		t.Errorf("AbleToScale = %+v", c)
	}
	if st.LastScaleTime != nil || fail.Reason != "FailedRescale" || fail.Message != "New size: 6; reason: cpu resource utilization (percentage of request) above target; error: conflict" {
		t.Errorf("failed rescale: lastScaleTime %v event %+v", st.LastScaleTime, fail)
	}

	// Conditions keep their transition time while their status holds.
	h.Status = d.Status
	later := t0.Add(time.Minute)
	in.Now, in.PodMetrics = later, podMetrics("a", 500, "b", 500, "c", 500)
	in.Scale = Scale{6, 6, "app=web"}
	d2 := Decide(in, &hist)
	if c := condition(d2.Status, autoscalingv2.ScalingActive); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("ScalingActive moved to %v without a change of status", c.LastTransitionTime)
	}

	st, ev = ScaleUnavailable(h, errors.New("replicasets.apps \"web\" not found"), t0)
	if c := condition(st, autoscalingv2.AbleToScale); c.Status != corev1.ConditionFalse || c.Reason != "FailedGetScale" || ev.Reason != "FailedGetScale" {
		t.Errorf("scale unavailable: %+v %+v", c, ev)
	}
}

func TestSelectingHPAs(t *testing.T) {
	web := mkPod("a").obj()
	web.Labels = map[string]string{"app": "web", "tier": "front"}
	sel := func(s string) labels.Selector {
		l, err := labels.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	got := SelectingHPAs("default", []*corev1.Pod{web}, map[string]labels.Selector{
		"default/web":   sel("app=web"),
		"default/front": sel("tier=front"),
		"default/db":    sel("app=db"),
		"other/web":     sel("app=web"),
	})
	if strings.Join(got, ",") != "default/front,default/web" {
		t.Errorf("selecting = %v", got)
	}
}
