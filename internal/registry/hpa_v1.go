package registry

import (
	"encoding/json"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Annotations in which autoscaling/v1 HPAs carry what v1 cannot express,
// exactly as upstream names and fills them (the values are JSON of the
// autoscaling/v1 MetricSpec, MetricStatus and condition types, and of the
// v2 behavior).
const (
	metricSpecsAnnotation    = "autoscaling.alpha.kubernetes.io/metrics"
	metricStatusesAnnotation = "autoscaling.alpha.kubernetes.io/current-metrics"
	conditionsAnnotation     = "autoscaling.alpha.kubernetes.io/conditions"
	behaviorSpecsAnnotation  = "autoscaling.alpha.kubernetes.io/behavior"
)

// HorizontalPodAutoscalersV1 is autoscaling/v1 horizontalpodautoscalers,
// stored as v2 (the resource passed in). Its strategy converts to v2 and
// applies v2's, so both versions validate alike.
func HorizontalPodAutoscalersV1(v2 *Resource) *Resource {
	toV2 := func(obj runtime.Object) *autoscalingv2.HorizontalPodAutoscaler {
		h, err := hpaV1ToV2(obj.(*autoscalingv1.HorizontalPodAutoscaler))
		if err != nil {
			// Only a corrupt conversion annotation gets here; judge the
			// object by what v1 itself says.
			h2, _ := hpaV1ToV2(withoutConversionAnnotations(obj.(*autoscalingv1.HorizontalPodAutoscaler)))
			return h2
		}
		return h
	}
	return &Resource{
		GroupVersion:      autoscalingv1.SchemeGroupVersion,
		Kind:              "HorizontalPodAutoscaler",
		Plural:            "horizontalpodautoscalers",
		Singular:          "horizontalpodautoscaler",
		ShortNames:        []string{"hpa"},
		Categories:        []string{"all"},
		Namespaced:        true,
		New:               func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscaler{} },
		NewList:           func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscalerList{} },
		StatusSubresource: true,
		StorageOf:         v2,
		ToStorage: func(obj runtime.Object) (runtime.Object, error) {
			h, ok := obj.(*autoscalingv1.HorizontalPodAutoscaler)
			if !ok {
				return nil, fmt.Errorf("registry: autoscaling/v1 HPA conversion: unexpected %T", obj)
			}
			return hpaV1ToV2(h)
		},
		FromStorage: func(stored runtime.Object) (runtime.Object, error) {
			h, ok := stored.(*autoscalingv2.HorizontalPodAutoscaler)
			if !ok {
				return nil, fmt.Errorf("registry: autoscaling/v1 HPA conversion: unexpected %T", stored)
			}
			return hpaV2ToV1(h)
		},
		Default: func(obj runtime.Object) {
			h := obj.(*autoscalingv1.HorizontalPodAutoscaler)
			if h.Spec.MinReplicas == nil {
				h.Spec.MinReplicas = ptrTo(int32(1))
			}
		},
		PrepareForCreate: func(obj runtime.Object) {
			obj.(*autoscalingv1.HorizontalPodAutoscaler).Status = autoscalingv1.HorizontalPodAutoscalerStatus{}
		},
		Validate: func(obj runtime.Object) field.ErrorList { return v2.Validate(toV2(obj)) },
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			return v2.ValidateUpdate(toV2(obj), toV2(old))
		},
		ValidateStatus: func(obj, old runtime.Object) field.ErrorList {
			return v2.ValidateStatus(toV2(obj), toV2(old))
		},
		TableColumns: hpaColumns,
		TableRow:     func(obj runtime.Object) []interface{} { return hpaRow(toV2(obj)) },
	}
}

// withoutConversionAnnotations returns a copy without the v1 conversion annotations.
func withoutConversionAnnotations(h *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv1.HorizontalPodAutoscaler {
	h = h.DeepCopy()
	for _, a := range []string{metricSpecsAnnotation, metricStatusesAnnotation, conditionsAnnotation, behaviorSpecsAnnotation} {
		delete(h.Annotations, a)
	}
	return h
}

// hpaV1ToV2 converts an autoscaling/v1 HPA to v2: targetCPUUtilizationPercentage
// becomes a Resource cpu Utilization metric, currentCPUUtilizationPercentage
// its current value, and the conversion annotations restore the rest.
func hpaV1ToV2(in *autoscalingv1.HorizontalPodAutoscaler) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: autoscalingv2.SchemeGroupVersion.String(), Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
			MinReplicas:    copyPtr(in.Spec.MinReplicas),
			MaxReplicas:    in.Spec.MaxReplicas,
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			ObservedGeneration: copyPtr(in.Status.ObservedGeneration),
			LastScaleTime:      in.Status.LastScaleTime.DeepCopy(),
			CurrentReplicas:    in.Status.CurrentReplicas,
			DesiredReplicas:    in.Status.DesiredReplicas,
		},
	}
	if t := in.Spec.TargetCPUUtilizationPercentage; t != nil {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilizationMetric(*t)}
	}
	if c := in.Status.CurrentCPUUtilizationPercentage; c != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{
				Name:    corev1.ResourceCPU,
				Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptrTo(*c)},
			},
		}}
	}

	ann := out.Annotations
	if enc, ok := ann[metricSpecsAnnotation]; ok {
		var other []autoscalingv1.MetricSpec
		if err := json.Unmarshal([]byte(enc), &other); err != nil {
			return nil, fmt.Errorf("registry: annotation %s: %w", metricSpecsAnnotation, err)
		}
		metrics := make([]autoscalingv2.MetricSpec, 0, len(other)+len(out.Spec.Metrics))
		for i := range other {
			metrics = append(metrics, metricSpecV1ToV2(&other[i]))
		}
		out.Spec.Metrics = append(metrics, out.Spec.Metrics...)
	}
	if enc, ok := ann[behaviorSpecsAnnotation]; ok {
		var b autoscalingv2.HorizontalPodAutoscalerBehavior
		if err := json.Unmarshal([]byte(enc), &b); err != nil {
			return nil, fmt.Errorf("registry: annotation %s: %w", behaviorSpecsAnnotation, err)
		}
		out.Spec.Behavior = &b
	}
	if enc, ok := ann[metricStatusesAnnotation]; ok {
		// These carry more than currentCPUUtilizationPercentage: they win.
		var current []autoscalingv1.MetricStatus
		if err := json.Unmarshal([]byte(enc), &current); err != nil {
			return nil, fmt.Errorf("registry: annotation %s: %w", metricStatusesAnnotation, err)
		}
		out.Status.CurrentMetrics = make([]autoscalingv2.MetricStatus, len(current))
		for i := range current {
			out.Status.CurrentMetrics[i] = metricStatusV1ToV2(&current[i])
		}
	}
	if len(out.Spec.Metrics) == 0 {
		// v1's implicit default, made explicit once all metrics are known.
		out.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilizationMetric(defaultCPUUtilization)}
	}
	if enc, ok := ann[conditionsAnnotation]; ok {
		var conds []autoscalingv1.HorizontalPodAutoscalerCondition
		if err := json.Unmarshal([]byte(enc), &conds); err != nil {
			return nil, fmt.Errorf("registry: annotation %s: %w", conditionsAnnotation, err)
		}
		out.Status.Conditions = make([]autoscalingv2.HorizontalPodAutoscalerCondition, len(conds))
		for i, c := range conds {
			out.Status.Conditions[i] = autoscalingv2.HorizontalPodAutoscalerCondition{
				Type:               autoscalingv2.HorizontalPodAutoscalerConditionType(c.Type),
				Status:             c.Status,
				LastTransitionTime: c.LastTransitionTime,
				Reason:             c.Reason,
				Message:            c.Message,
			}
		}
	}
	for _, a := range []string{metricSpecsAnnotation, metricStatusesAnnotation, conditionsAnnotation, behaviorSpecsAnnotation} {
		delete(ann, a)
	}
	if len(ann) == 0 {
		out.Annotations = nil
	}
	return out, nil
}

// hpaV2ToV1 converts a v2 HPA to autoscaling/v1: the first cpu Utilization
// metric becomes targetCPUUtilizationPercentage, and everything else is
// kept in the conversion annotations.
func hpaV2ToV1(in *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.HorizontalPodAutoscaler, error) {
	out := &autoscalingv1.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: autoscalingv1.SchemeGroupVersion.String(), Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
			MinReplicas:    copyPtr(in.Spec.MinReplicas),
			MaxReplicas:    in.Spec.MaxReplicas,
		},
		Status: autoscalingv1.HorizontalPodAutoscalerStatus{
			ObservedGeneration: copyPtr(in.Status.ObservedGeneration),
			LastScaleTime:      in.Status.LastScaleTime.DeepCopy(),
			CurrentReplicas:    in.Status.CurrentReplicas,
			DesiredReplicas:    in.Status.DesiredReplicas,
		},
	}
	var other []autoscalingv1.MetricSpec
	for i := range in.Spec.Metrics {
		m := &in.Spec.Metrics[i]
		if isCPUUtilization(m) {
			if out.Spec.TargetCPUUtilizationPercentage == nil {
				out.Spec.TargetCPUUtilizationPercentage = ptrTo(*m.Resource.Target.AverageUtilization)
				continue
			}
		}
		other = append(other, metricSpecV2ToV1(m))
	}
	for _, m := range in.Status.CurrentMetrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Current.AverageUtilization != nil {
			out.Status.CurrentCPUUtilizationPercentage = ptrTo(*m.Resource.Current.AverageUtilization)
		}
	}

	set := func(key string, v interface{}) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("registry: annotation %s: %w", key, err)
		}
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[key] = string(b)
		return nil
	}
	if len(other) > 0 {
		if err := set(metricSpecsAnnotation, other); err != nil {
			return nil, err
		}
	}
	if n := len(in.Status.CurrentMetrics); n > 0 {
		// Kept even when it is only the CPU, so a round trip restores it exactly.
		current := make([]autoscalingv1.MetricStatus, n)
		for i := range in.Status.CurrentMetrics {
			current[i] = metricStatusV2ToV1(&in.Status.CurrentMetrics[i])
		}
		if err := set(metricStatusesAnnotation, current); err != nil {
			return nil, err
		}
	}
	if n := len(in.Status.Conditions); n > 0 {
		conds := make([]autoscalingv1.HorizontalPodAutoscalerCondition, n)
		for i, c := range in.Status.Conditions {
			conds[i] = autoscalingv1.HorizontalPodAutoscalerCondition{
				Type:               autoscalingv1.HorizontalPodAutoscalerConditionType(c.Type),
				Status:             c.Status,
				LastTransitionTime: c.LastTransitionTime,
				Reason:             c.Reason,
				Message:            c.Message,
			}
		}
		if err := set(conditionsAnnotation, conds); err != nil {
			return nil, err
		}
	}
	if in.Spec.Behavior != nil {
		if err := set(behaviorSpecsAnnotation, in.Spec.Behavior); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// isCPUUtilization reports a Resource cpu metric with a utilization target.
func isCPUUtilization(m *autoscalingv2.MetricSpec) bool {
	return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil &&
		m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil
}

// copyPtr returns a copy of *p, or nil.
func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// copyQuantity returns a deep copy of *q, or nil.
func copyQuantity(q *resource.Quantity) *resource.Quantity {
	if q == nil {
		return nil
	}
	c := q.DeepCopy()
	return &c
}

// orZero returns *q or a zero quantity.
func orZero(q *resource.Quantity) resource.Quantity {
	if q == nil {
		return resource.Quantity{}
	}
	return q.DeepCopy()
}

// metricSpecV2ToV1 converts a metric to the v1 (v2beta1-shaped) form.
func metricSpecV2ToV1(in *autoscalingv2.MetricSpec) autoscalingv1.MetricSpec {
	out := autoscalingv1.MetricSpec{Type: autoscalingv1.MetricSourceType(in.Type)}
	switch {
	case in.Object != nil:
		out.Object = &autoscalingv1.ObjectMetricSource{
			Target:       autoscalingv1.CrossVersionObjectReference(in.Object.DescribedObject),
			MetricName:   in.Object.Metric.Name,
			Selector:     in.Object.Metric.Selector.DeepCopy(),
			TargetValue:  orZero(in.Object.Target.Value),
			AverageValue: copyQuantity(in.Object.Target.AverageValue),
		}
	case in.Pods != nil:
		out.Pods = &autoscalingv1.PodsMetricSource{
			MetricName:         in.Pods.Metric.Name,
			Selector:           in.Pods.Metric.Selector.DeepCopy(),
			TargetAverageValue: orZero(in.Pods.Target.AverageValue),
		}
	case in.Resource != nil:
		out.Resource = &autoscalingv1.ResourceMetricSource{
			Name:                     in.Resource.Name,
			TargetAverageUtilization: copyPtr(in.Resource.Target.AverageUtilization),
			TargetAverageValue:       copyQuantity(in.Resource.Target.AverageValue),
		}
	case in.ContainerResource != nil:
		out.ContainerResource = &autoscalingv1.ContainerResourceMetricSource{
			Name:                     in.ContainerResource.Name,
			Container:                in.ContainerResource.Container,
			TargetAverageUtilization: copyPtr(in.ContainerResource.Target.AverageUtilization),
			TargetAverageValue:       copyQuantity(in.ContainerResource.Target.AverageValue),
		}
	case in.External != nil:
		out.External = &autoscalingv1.ExternalMetricSource{
			MetricName:         in.External.Metric.Name,
			MetricSelector:     in.External.Metric.Selector.DeepCopy(),
			TargetValue:        copyQuantity(in.External.Target.Value),
			TargetAverageValue: copyQuantity(in.External.Target.AverageValue),
		}
	}
	return out
}

// metricSpecV1ToV2 is the inverse of metricSpecV2ToV1.
func metricSpecV1ToV2(in *autoscalingv1.MetricSpec) autoscalingv2.MetricSpec {
	out := autoscalingv2.MetricSpec{Type: autoscalingv2.MetricSourceType(in.Type)}
	switch {
	case in.Object != nil:
		t := autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: ptrTo(in.Object.TargetValue.DeepCopy())}
		if in.Object.AverageValue != nil {
			t = autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: copyQuantity(in.Object.AverageValue)}
		}
		out.Object = &autoscalingv2.ObjectMetricSource{
			DescribedObject: autoscalingv2.CrossVersionObjectReference(in.Object.Target),
			Metric:          autoscalingv2.MetricIdentifier{Name: in.Object.MetricName, Selector: in.Object.Selector.DeepCopy()},
			Target:          t,
		}
	case in.Pods != nil:
		out.Pods = &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: in.Pods.MetricName, Selector: in.Pods.Selector.DeepCopy()},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptrTo(in.Pods.TargetAverageValue.DeepCopy())},
		}
	case in.Resource != nil:
		out.Resource = &autoscalingv2.ResourceMetricSource{
			Name:   in.Resource.Name,
			Target: resourceTargetV1ToV2(in.Resource.TargetAverageUtilization, in.Resource.TargetAverageValue),
		}
	case in.ContainerResource != nil:
		out.ContainerResource = &autoscalingv2.ContainerResourceMetricSource{
			Name:      in.ContainerResource.Name,
			Container: in.ContainerResource.Container,
			Target:    resourceTargetV1ToV2(in.ContainerResource.TargetAverageUtilization, in.ContainerResource.TargetAverageValue),
		}
	case in.External != nil:
		t := autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: copyQuantity(in.External.TargetAverageValue)}
		if in.External.TargetValue != nil {
			t = autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: copyQuantity(in.External.TargetValue)}
		}
		out.External = &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: in.External.MetricName, Selector: in.External.MetricSelector.DeepCopy()},
			Target: t,
		}
	}
	return out
}

// resourceTargetV1ToV2 picks Utilization when a utilization is given.
func resourceTargetV1ToV2(util *int32, avg *resource.Quantity) autoscalingv2.MetricTarget {
	if util != nil {
		return autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: copyPtr(util)}
	}
	return autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: copyQuantity(avg)}
}

// metricStatusV2ToV1 converts a current metric to the v1 form.
func metricStatusV2ToV1(in *autoscalingv2.MetricStatus) autoscalingv1.MetricStatus {
	out := autoscalingv1.MetricStatus{Type: autoscalingv1.MetricSourceType(in.Type)}
	switch {
	case in.Object != nil:
		out.Object = &autoscalingv1.ObjectMetricStatus{
			Target:       autoscalingv1.CrossVersionObjectReference(in.Object.DescribedObject),
			MetricName:   in.Object.Metric.Name,
			Selector:     in.Object.Metric.Selector.DeepCopy(),
			CurrentValue: orZero(in.Object.Current.Value),
			AverageValue: copyQuantity(in.Object.Current.AverageValue),
		}
	case in.Pods != nil:
		out.Pods = &autoscalingv1.PodsMetricStatus{
			MetricName:          in.Pods.Metric.Name,
			Selector:            in.Pods.Metric.Selector.DeepCopy(),
			CurrentAverageValue: orZero(in.Pods.Current.AverageValue),
		}
	case in.Resource != nil:
		out.Resource = &autoscalingv1.ResourceMetricStatus{
			Name:                      in.Resource.Name,
			CurrentAverageUtilization: copyPtr(in.Resource.Current.AverageUtilization),
			CurrentAverageValue:       orZero(in.Resource.Current.AverageValue),
		}
	case in.ContainerResource != nil:
		out.ContainerResource = &autoscalingv1.ContainerResourceMetricStatus{
			Name:                      in.ContainerResource.Name,
			Container:                 in.ContainerResource.Container,
			CurrentAverageUtilization: copyPtr(in.ContainerResource.Current.AverageUtilization),
			CurrentAverageValue:       orZero(in.ContainerResource.Current.AverageValue),
		}
	case in.External != nil:
		out.External = &autoscalingv1.ExternalMetricStatus{
			MetricName:          in.External.Metric.Name,
			MetricSelector:      in.External.Metric.Selector.DeepCopy(),
			CurrentValue:        orZero(in.External.Current.Value),
			CurrentAverageValue: copyQuantity(in.External.Current.AverageValue),
		}
	}
	return out
}

// metricStatusV1ToV2 is the inverse of metricStatusV2ToV1.
func metricStatusV1ToV2(in *autoscalingv1.MetricStatus) autoscalingv2.MetricStatus {
	out := autoscalingv2.MetricStatus{Type: autoscalingv2.MetricSourceType(in.Type)}
	switch {
	case in.Object != nil:
		out.Object = &autoscalingv2.ObjectMetricStatus{
			DescribedObject: autoscalingv2.CrossVersionObjectReference(in.Object.Target),
			Metric:          autoscalingv2.MetricIdentifier{Name: in.Object.MetricName, Selector: in.Object.Selector.DeepCopy()},
			Current:         autoscalingv2.MetricValueStatus{Value: valueUnlessZero(in.Object.CurrentValue, in.Object.AverageValue != nil), AverageValue: copyQuantity(in.Object.AverageValue)},
		}
	case in.Pods != nil:
		out.Pods = &autoscalingv2.PodsMetricStatus{
			Metric:  autoscalingv2.MetricIdentifier{Name: in.Pods.MetricName, Selector: in.Pods.Selector.DeepCopy()},
			Current: autoscalingv2.MetricValueStatus{AverageValue: ptrTo(in.Pods.CurrentAverageValue.DeepCopy())},
		}
	case in.Resource != nil:
		out.Resource = &autoscalingv2.ResourceMetricStatus{
			Name:    in.Resource.Name,
			Current: autoscalingv2.MetricValueStatus{AverageUtilization: copyPtr(in.Resource.CurrentAverageUtilization), AverageValue: valueUnlessZero(in.Resource.CurrentAverageValue, in.Resource.CurrentAverageUtilization != nil)},
		}
	case in.ContainerResource != nil:
		out.ContainerResource = &autoscalingv2.ContainerResourceMetricStatus{
			Name:      in.ContainerResource.Name,
			Container: in.ContainerResource.Container,
			Current:   autoscalingv2.MetricValueStatus{AverageUtilization: copyPtr(in.ContainerResource.CurrentAverageUtilization), AverageValue: valueUnlessZero(in.ContainerResource.CurrentAverageValue, in.ContainerResource.CurrentAverageUtilization != nil)},
		}
	case in.External != nil:
		out.External = &autoscalingv2.ExternalMetricStatus{
			Metric:  autoscalingv2.MetricIdentifier{Name: in.External.MetricName, Selector: in.External.MetricSelector.DeepCopy()},
			Current: autoscalingv2.MetricValueStatus{Value: valueUnlessZero(in.External.CurrentValue, in.External.CurrentAverageValue != nil), AverageValue: copyQuantity(in.External.CurrentAverageValue)},
		}
	}
	return out
}

// valueUnlessZero returns a copy of q, or nil when q is zero and another
// field carries the value (v1 has no way to say "unset" for q).
func valueUnlessZero(q resource.Quantity, other bool) *resource.Quantity {
	if q.IsZero() && other {
		return nil
	}
	c := q.DeepCopy()
	return &c
}
