package registry

import (
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func newHPA() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    10,
		},
	}
}

func TestHPADefaults(t *testing.T) {
	h := newHPA()
	requireNoErrors(t, create(HorizontalPodAutoscalersV2(), h))
	if *h.Spec.MinReplicas != 1 {
		t.Errorf("minReplicas = %d", *h.Spec.MinReplicas)
	}
	if len(h.Spec.Metrics) != 1 || !isCPUUtilization(&h.Spec.Metrics[0]) || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("metrics = %+v, want cpu 80%%", h.Spec.Metrics)
	}
	if h.Spec.Behavior != nil {
		t.Error("behavior must stay nil when not given")
	}

	withBehavior := newHPA()
	withBehavior.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo(int32(60))},
	}
	requireNoErrors(t, create(HorizontalPodAutoscalersV2(), withBehavior))
	b := withBehavior.Spec.Behavior
	if b.ScaleUp == nil || len(b.ScaleUp.Policies) != 2 || *b.ScaleUp.StabilizationWindowSeconds != 0 {
		t.Errorf("scaleUp = %+v", b.ScaleUp)
	}
	if *b.ScaleDown.StabilizationWindowSeconds != 60 || len(b.ScaleDown.Policies) != 1 || *b.ScaleDown.SelectPolicy != autoscalingv2.MaxChangePolicySelect {
		t.Errorf("scaleDown = %+v", b.ScaleDown)
	}
}

func TestHPAValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*autoscalingv2.HorizontalPodAutoscaler)
		path   string
		typ    field.ErrorType
	}{
		{"min over max", func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptrTo(int32(11)) }, "spec.maxReplicas", field.ErrorTypeInvalid},
		{"min zero", func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptrTo(int32(0)) }, "spec.minReplicas", field.ErrorTypeInvalid},
		{"max zero", func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MaxReplicas = 0 }, "spec.maxReplicas", field.ErrorTypeInvalid},
		{"no kind", func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.Kind = "" }, "spec.scaleTargetRef.kind", field.ErrorTypeRequired},
		{"no name", func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.Name = "" }, "spec.scaleTargetRef.name", field.ErrorTypeRequired},
		{"name with slash", func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.Name = "a/b" }, "spec.scaleTargetRef.name", field.ErrorTypeInvalid},
		{"metric type", func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: "Magic"}}
		}, "spec.metrics[0].type", field.ErrorTypeNotSupported},
		{"metric without source", func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType}}
		}, "spec.metrics[0].pods", field.ErrorTypeRequired},
		{"zero utilization", func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilizationMetric(0)}
		}, "spec.metrics[0].resource.target.averageUtilization", field.ErrorTypeInvalid},
		{"scaling policy period", func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{
				Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 4000}},
			}}
		}, "spec.behavior.scaleUp.policies[0].periodSeconds", field.ErrorTypeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHPA()
			tt.mutate(h)
			requireError(t, create(HorizontalPodAutoscalersV2(), h), tt.path, tt.typ)
		})
	}
}

func TestHPATargets(t *testing.T) {
	h := newHPA()
	HorizontalPodAutoscalersV2().Default(h)
	h.Spec.Metrics[0] = cpuUtilizationMetric(50)
	h.Status.CurrentReplicas = 2
	row := cells(t, HorizontalPodAutoscalersV2(), h)
	want := []interface{}{"Deployment/web", "cpu: <unknown>/50%", "1", int64(10), int64(2), "<unknown>"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("%s = %#v, want %#v", hpaColumns[i].Name, row[i], want[i])
		}
	}
	h.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{
		Type:     autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptrTo(int32(30))}},
	}}
	if got := cell(t, HorizontalPodAutoscalersV2(), h, "Targets"); got != "cpu: 30%/50%" {
		t.Errorf("TARGETS = %q", got)
	}
	mem := resource.MustParse("100Mi")
	h.Spec.Metrics = append(h.Spec.Metrics,
		autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &mem}}},
		autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "qps"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptrTo(resource.MustParse("10"))}}},
	)
	if got := cell(t, HorizontalPodAutoscalersV2(), h, "Targets"); got != "cpu: 30%/50%, memory: <unknown>/100Mi + 1 more..." {
		t.Errorf("TARGETS = %q", got)
	}
}

func TestHPAV1ToV2(t *testing.T) {
	v1 := &autoscalingv1.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: map[string]string{"team": "a"}},
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef:                 autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
			MinReplicas:                    ptrTo(int32(2)),
			MaxReplicas:                    5,
			TargetCPUUtilizationPercentage: ptrTo(int32(50)),
		},
		Status: autoscalingv1.HorizontalPodAutoscalerStatus{CurrentReplicas: 3, DesiredReplicas: 4, CurrentCPUUtilizationPercentage: ptrTo(int32(70))},
	}
	r := HorizontalPodAutoscalersV1(HorizontalPodAutoscalersV2())
	obj, err := r.ToStorage(v1)
	if err != nil {
		t.Fatal(err)
	}
	v2 := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	if len(v2.Spec.Metrics) != 1 || *v2.Spec.Metrics[0].Resource.Target.AverageUtilization != 50 {
		t.Errorf("metrics = %+v", v2.Spec.Metrics)
	}
	if len(v2.Status.CurrentMetrics) != 1 || *v2.Status.CurrentMetrics[0].Resource.Current.AverageUtilization != 70 {
		t.Errorf("current metrics = %+v", v2.Status.CurrentMetrics)
	}
	if v2.Status.DesiredReplicas != 4 || *v2.Spec.MinReplicas != 2 || v2.Annotations["team"] != "a" {
		t.Errorf("fields lost: %+v", v2)
	}
	if got := cell(t, r, v1, "Targets"); got != "cpu: 70%/50%" {
		t.Errorf("v1 TARGETS = %q", got)
	}

	noTarget := v1.DeepCopy()
	noTarget.Spec.TargetCPUUtilizationPercentage = nil
	obj, err = r.ToStorage(noTarget)
	if err != nil {
		t.Fatal(err)
	}
	if m := obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec.Metrics; len(m) != 1 || *m[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("v1 without target: metrics %+v, want the 80%% default", m)
	}

	back, err := r.FromStorage(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(back.(*autoscalingv1.HorizontalPodAutoscaler).Spec, v1.Spec) {
		t.Errorf("v1 spec round trip:\n got %+v\nwant %+v", back.(*autoscalingv1.HorizontalPodAutoscaler).Spec, v1.Spec)
	}
	if got := back.(*autoscalingv1.HorizontalPodAutoscaler).Status.CurrentCPUUtilizationPercentage; got == nil || *got != 70 {
		t.Errorf("currentCPUUtilizationPercentage = %v", got)
	}

	bad := v1.DeepCopy()
	bad.Spec.MaxReplicas = 0
	requireError(t, r.Validate(bad), "spec.maxReplicas", field.ErrorTypeInvalid)
	corrupt := v1.DeepCopy()
	corrupt.Annotations[metricSpecsAnnotation] = "{not json"
	if _, err := r.ToStorage(corrupt); err == nil {
		t.Error("a corrupt metrics annotation converted without error")
	}
}

// TestHPAV2RoundTrip stores a v2 HPA with everything v1 cannot express,
// reads it as v1 and writes it back: nothing may be lost.
func TestHPAV2RoundTrip(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"queue": "jobs"}}
	h := newHPA()
	h.Spec.MinReplicas = ptrTo(int32(2))
	h.Spec.Metrics = []autoscalingv2.MetricSpec{
		{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "qps", Selector: sel}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("10")}}},
		{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
			DescribedObject: autoscalingv2.CrossVersionObjectReference{Kind: "Service", Name: "web", APIVersion: "v1"},
			Metric:          autoscalingv2.MetricIdentifier{Name: "latency"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: q("200m")}}},
		{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "queue_depth", Selector: sel}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("30")}}},
		{Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricSource{
			Name: corev1.ResourceMemory, Container: "web", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("200Mi")}}},
		cpuUtilizationMetric(60),
	}
	h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: scaleDownDefaults()}
	h.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		CurrentReplicas: 3, DesiredReplicas: 3, ObservedGeneration: ptrTo(int64(4)),
		CurrentMetrics: []autoscalingv2.MetricStatus{
			{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricStatus{Metric: autoscalingv2.MetricIdentifier{Name: "qps", Selector: sel}, Current: autoscalingv2.MetricValueStatus{AverageValue: q("12")}}},
			{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricStatus{
				DescribedObject: autoscalingv2.CrossVersionObjectReference{Kind: "Service", Name: "web", APIVersion: "v1"},
				Metric:          autoscalingv2.MetricIdentifier{Name: "latency"}, Current: autoscalingv2.MetricValueStatus{Value: q("150m")}}},
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{Metric: autoscalingv2.MetricIdentifier{Name: "queue_depth", Selector: sel}, Current: autoscalingv2.MetricValueStatus{AverageValue: q("25")}}},
			{Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{Name: corev1.ResourceMemory, Container: "web", Current: autoscalingv2.MetricValueStatus{AverageValue: q("180Mi")}}},
			{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptrTo(int32(45)), AverageValue: q("90m")}}},
		},
		Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "ReadyForNewScale", LastTransitionTime: ago(0)}},
	}
	requireNoErrors(t, HorizontalPodAutoscalersV2().Validate(h))

	r := HorizontalPodAutoscalersV1(HorizontalPodAutoscalersV2())
	v1obj, err := r.FromStorage(h)
	if err != nil {
		t.Fatal(err)
	}
	v1 := v1obj.(*autoscalingv1.HorizontalPodAutoscaler)
	if v1.Spec.TargetCPUUtilizationPercentage == nil || *v1.Spec.TargetCPUUtilizationPercentage != 60 {
		t.Errorf("targetCPUUtilizationPercentage = %v", v1.Spec.TargetCPUUtilizationPercentage)
	}
	if v1.Status.CurrentCPUUtilizationPercentage == nil || *v1.Status.CurrentCPUUtilizationPercentage != 45 {
		t.Errorf("currentCPUUtilizationPercentage = %v", v1.Status.CurrentCPUUtilizationPercentage)
	}
	for _, a := range []string{metricSpecsAnnotation, metricStatusesAnnotation, conditionsAnnotation, behaviorSpecsAnnotation} {
		if v1.Annotations[a] == "" {
			t.Errorf("annotation %s missing", a)
		}
	}

	storedObj, err := r.ToStorage(v1)
	if err != nil {
		t.Fatal(err)
	}
	stored := storedObj.(*autoscalingv2.HorizontalPodAutoscaler)
	stored.TypeMeta = h.TypeMeta
	if !equality.Semantic.DeepEqual(stored, h) {
		t.Errorf("v2 -> v1 -> v2 lost data:\n got %+v\nwant %+v", stored, h)
	}
	if stored.Annotations != nil {
		t.Errorf("conversion annotations leaked into storage: %v", stored.Annotations)
	}
}
