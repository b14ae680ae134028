package registry

import (
	"fmt"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// defaultCPUUtilization is the target an HPA without metrics gets.
const defaultCPUUtilization = int32(80)

// Limits upstream puts on HPA behavior.
const (
	maxPeriodSeconds              = int32(1800)
	maxStabilizationWindowSeconds = int32(3600)
)

var (
	supportedMetricSources = []autoscalingv2.MetricSourceType{
		autoscalingv2.ObjectMetricSourceType, autoscalingv2.PodsMetricSourceType, autoscalingv2.ResourceMetricSourceType,
		autoscalingv2.ContainerResourceMetricSourceType, autoscalingv2.ExternalMetricSourceType,
	}
	supportedMetricTargets   = []autoscalingv2.MetricTargetType{autoscalingv2.UtilizationMetricType, autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType}
	supportedSelectPolicies  = []autoscalingv2.ScalingPolicySelect{autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect}
	supportedScalingPolicies = []autoscalingv2.HPAScalingPolicyType{autoscalingv2.PodsScalingPolicy, autoscalingv2.PercentScalingPolicy}
)

// hpaColumns are the columns of both HPA versions' tables.
var hpaColumns = []metav1.TableColumnDefinition{
	col("Reference", "the target reference"),
	col("Targets", "the metrics and their current and target values"),
	col("MinPods", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
	intCol("MaxPods", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
	intCol("Replicas", "current number of replicas of pods managed by this autoscaler"),
	ageColumn,
}

// HorizontalPodAutoscalersV2 is autoscaling/v2 horizontalpodautoscalers,
// the stored form of both HPA versions.
func HorizontalPodAutoscalersV2() *Resource {
	return &Resource{
		GroupVersion:      autoscalingv2.SchemeGroupVersion,
		Kind:              "HorizontalPodAutoscaler",
		Plural:            "horizontalpodautoscalers",
		Singular:          "horizontalpodautoscaler",
		ShortNames:        []string{"hpa"},
		Categories:        []string{"all"},
		Namespaced:        true,
		New:               func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
		NewList:           func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscalerList{} },
		StatusSubresource: true,
		Default:           func(obj runtime.Object) { defaultHPA(obj.(*autoscalingv2.HorizontalPodAutoscaler)) },
		PrepareForCreate: func(obj runtime.Object) {
			obj.(*autoscalingv2.HorizontalPodAutoscaler).Status = autoscalingv2.HorizontalPodAutoscalerStatus{}
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			return validateHPASpec(&obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec, field.NewPath("spec"))
		},
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList {
			return validateHPASpec(&obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec, field.NewPath("spec"))
		},
		ValidateStatus: func(obj, _ runtime.Object) field.ErrorList {
			s := &obj.(*autoscalingv2.HorizontalPodAutoscaler).Status
			p := field.NewPath("status")
			errs := nonNegative(int64(s.CurrentReplicas), p.Child("currentReplicas"))
			return append(errs, nonNegative(int64(s.DesiredReplicas), p.Child("desiredReplicas"))...)
		},
		TableColumns: hpaColumns,
		TableRow:     func(obj runtime.Object) []interface{} { return hpaRow(obj.(*autoscalingv2.HorizontalPodAutoscaler)) },
	}
}

// defaultHPA applies autoscaling/v2 defaults: minReplicas 1, a CPU 80%
// metric when none is given, and the default rules for a partly given
// behavior.
func defaultHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	if h.Spec.MinReplicas == nil {
		h.Spec.MinReplicas = ptrTo(int32(1))
	}
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilizationMetric(defaultCPUUtilization)}
	}
	if b := h.Spec.Behavior; b != nil {
		b.ScaleUp = defaultScalingRules(b.ScaleUp, scaleUpDefaults())
		b.ScaleDown = defaultScalingRules(b.ScaleDown, scaleDownDefaults())
	}
}

// cpuUtilizationMetric is a Resource cpu Utilization metric.
func cpuUtilizationMetric(percent int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name:   corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptrTo(percent)},
		},
	}
}

// scaleUpDefaults: no stabilization, the larger of 4 pods or 100% per 15s.
func scaleUpDefaults() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptrTo(int32(0)),
		SelectPolicy:               ptrTo(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
}

// scaleDownDefaults: 5 minutes of stabilization, up to 100% per 15s.
func scaleDownDefaults() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		SelectPolicy: ptrTo(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
		// StabilizationWindowSeconds stays nil: the controller's
		// --horizontal-pod-autoscaler-downscale-stabilization applies.
	}
}

// defaultScalingRules fills the unset parts of r from def.
func defaultScalingRules(r, def *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if r == nil {
		return def
	}
	if r.StabilizationWindowSeconds == nil {
		r.StabilizationWindowSeconds = def.StabilizationWindowSeconds
	}
	if r.SelectPolicy == nil {
		r.SelectPolicy = def.SelectPolicy
	}
	if r.Policies == nil {
		r.Policies = def.Policies
	}
	return r
}

// validateHPASpec validates an autoscaling/v2 spec.
func validateHPASpec(s *autoscalingv2.HorizontalPodAutoscalerSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.MinReplicas != nil && *s.MinReplicas < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("minReplicas"), *s.MinReplicas, "must be greater than or equal to 1"))
	}
	if s.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("maxReplicas"), s.MaxReplicas, isNotPositiveErrorMsg))
	}
	if s.MinReplicas != nil && s.MaxReplicas < *s.MinReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("maxReplicas"), s.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	errs = append(errs, validateScaleTargetRef(s.ScaleTargetRef.Kind, s.ScaleTargetRef.Name, fldPath.Child("scaleTargetRef"))...)
	for i := range s.Metrics {
		errs = append(errs, validateMetricSpec(&s.Metrics[i], fldPath.Child("metrics").Index(i))...)
	}
	if b := s.Behavior; b != nil {
		errs = append(errs, validateScalingRules(b.ScaleUp, fldPath.Child("behavior", "scaleUp"))...)
		errs = append(errs, validateScalingRules(b.ScaleDown, fldPath.Child("behavior", "scaleDown"))...)
	}
	return errs
}

// validateScaleTargetRef requires a kind and a name usable in a path.
func validateScaleTargetRef(kind, name string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if kind == "" {
		errs = append(errs, field.Required(fldPath.Child("kind"), ""))
	} else {
		errs = append(errs, invalidEach(fldPath.Child("kind"), kind, path.IsValidPathSegmentName(kind))...)
	}
	if name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	} else {
		errs = append(errs, invalidEach(fldPath.Child("name"), name, path.IsValidPathSegmentName(name))...)
	}
	return errs
}

// validateMetricSpec requires the source its type names, and only that one.
func validateMetricSpec(m *autoscalingv2.MetricSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Type == "" {
		return field.ErrorList{field.Required(fldPath.Child("type"), "must specify a metric source type")}
	}
	if !contains(supportedMetricSources, m.Type) {
		return field.ErrorList{field.NotSupported(fldPath.Child("type"), m.Type, supportedMetricSources)}
	}
	set := map[autoscalingv2.MetricSourceType]bool{
		autoscalingv2.ObjectMetricSourceType:            m.Object != nil,
		autoscalingv2.PodsMetricSourceType:              m.Pods != nil,
		autoscalingv2.ResourceMetricSourceType:          m.Resource != nil,
		autoscalingv2.ContainerResourceMetricSourceType: m.ContainerResource != nil,
		autoscalingv2.ExternalMetricSourceType:          m.External != nil,
	}
	for _, t := range supportedMetricSources {
		p := fldPath.Child(sourceField(t))
		switch {
		case t == m.Type && !set[t]:
			errs = append(errs, field.Required(p, "must populate information for the given metric source"))
		case t != m.Type && set[t]:
			errs = append(errs, field.Forbidden(p, "must populate the given metric source only"))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	switch m.Type {
	case autoscalingv2.ResourceMetricSourceType:
		p := fldPath.Child("resource")
		if m.Resource.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "must specify a resource name"))
		}
		errs = append(errs, validateResourceTarget(m.Resource.Target, p.Child("target"))...)
	case autoscalingv2.ContainerResourceMetricSourceType:
		p := fldPath.Child("containerResource")
		if m.ContainerResource.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "must specify a resource name"))
		}
		if m.ContainerResource.Container == "" {
			errs = append(errs, field.Required(p.Child("container"), "must specify a container"))
		} else {
			errs = append(errs, dnsLabel(m.ContainerResource.Container, p.Child("container"))...)
		}
		errs = append(errs, validateResourceTarget(m.ContainerResource.Target, p.Child("target"))...)
	case autoscalingv2.PodsMetricSourceType:
		p := fldPath.Child("pods")
		errs = append(errs, validateMetricIdentifier(m.Pods.Metric, p.Child("metric"))...)
		errs = append(errs, validateMetricTarget(m.Pods.Target, p.Child("target"))...)
		if m.Pods.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("target", "averageValue"), "must specify a positive target averageValue"))
		}
	case autoscalingv2.ObjectMetricSourceType:
		p := fldPath.Child("object")
		errs = append(errs, validateScaleTargetRef(m.Object.DescribedObject.Kind, m.Object.DescribedObject.Name, p.Child("describedObject"))...)
		errs = append(errs, validateMetricIdentifier(m.Object.Metric, p.Child("metric"))...)
		errs = append(errs, validateMetricTarget(m.Object.Target, p.Child("target"))...)
		if m.Object.Target.Value == nil && m.Object.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("target", "averageValue"), "must set either a target value or averageValue"))
		}
	case autoscalingv2.ExternalMetricSourceType:
		p := fldPath.Child("external")
		errs = append(errs, validateMetricIdentifier(m.External.Metric, p.Child("metric"))...)
		errs = append(errs, validateMetricTarget(m.External.Target, p.Child("target"))...)
	}
	return errs
}

// sourceField is the JSON field of a metric source type.
func sourceField(t autoscalingv2.MetricSourceType) string {
	s := string(t)
	return strings.ToLower(s[:1]) + s[1:]
}

func validateMetricIdentifier(id autoscalingv2.MetricIdentifier, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if id.Name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), "must specify a metric name"))
	} else {
		errs = append(errs, invalidEach(fldPath.Child("name"), id.Name, path.IsValidPathSegmentName(id.Name))...)
	}
	return append(errs, labelSelector(id.Selector, fldPath.Child("selector"))...)
}

// validateResourceTarget allows Utilization and AverageValue targets.
func validateResourceTarget(t autoscalingv2.MetricTarget, fldPath *field.Path) field.ErrorList {
	errs := validateMetricTarget(t, fldPath)
	if t.Value != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("value"), "cannot set a resource metric value target"))
	}
	if t.AverageUtilization == nil && t.AverageValue == nil {
		errs = append(errs, field.Required(fldPath.Child("averageUtilization"), "must set either a target raw value or a target utilization"))
	}
	if t.AverageUtilization != nil && t.AverageValue != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return errs
}

// validateMetricTarget checks the type and that the given numbers are positive.
func validateMetricTarget(t autoscalingv2.MetricTarget, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case t.Type == "":
		errs = append(errs, field.Required(fldPath.Child("type"), "must specify a metric target type"))
	case !contains(supportedMetricTargets, t.Type):
		errs = append(errs, field.NotSupported(fldPath.Child("type"), t.Type, supportedMetricTargets))
	}
	if t.Value != nil && t.Value.Sign() != 1 {
		errs = append(errs, field.Invalid(fldPath.Child("value"), t.Value.String(), "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() != 1 {
		errs = append(errs, field.Invalid(fldPath.Child("averageValue"), t.AverageValue.String(), "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("averageUtilization"), *t.AverageUtilization, isNotPositiveErrorMsg))
	}
	return errs
}

// validateScalingRules checks a behavior's scaleUp or scaleDown rules.
func validateScalingRules(r *autoscalingv2.HPAScalingRules, fldPath *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > maxStabilizationWindowSeconds) {
		errs = append(errs, field.Invalid(fldPath.Child("stabilizationWindowSeconds"), *w, fmt.Sprintf("must be less than or equal to %d", maxStabilizationWindowSeconds)))
	}
	if sp := r.SelectPolicy; sp != nil && !contains(supportedSelectPolicies, *sp) {
		errs = append(errs, field.NotSupported(fldPath.Child("selectPolicy"), *sp, supportedSelectPolicies))
	}
	if len(r.Policies) == 0 {
		errs = append(errs, field.Required(fldPath.Child("policies"), "must specify at least one Policy"))
	}
	for i, pol := range r.Policies {
		p := fldPath.Child("policies").Index(i)
		if !contains(supportedScalingPolicies, pol.Type) {
			errs = append(errs, field.NotSupported(p.Child("type"), pol.Type, supportedScalingPolicies))
		}
		if pol.Value <= 0 {
			errs = append(errs, field.Invalid(p.Child("value"), pol.Value, isNotPositiveErrorMsg))
		}
		if pol.PeriodSeconds <= 0 || pol.PeriodSeconds > maxPeriodSeconds {
			errs = append(errs, field.Invalid(p.Child("periodSeconds"), pol.PeriodSeconds, fmt.Sprintf("must be greater than zero and less than or equal to %d", maxPeriodSeconds)))
		}
	}
	return errs
}

// hpaRow renders REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE.
func hpaRow(h *autoscalingv2.HorizontalPodAutoscaler) []interface{} {
	minPods := "<unset>"
	if h.Spec.MinReplicas != nil {
		minPods = fmt.Sprintf("%d", *h.Spec.MinReplicas)
	}
	return []interface{}{
		h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name,
		hpaTargets(h.Spec.Metrics, h.Status.CurrentMetrics),
		minPods, int64(h.Spec.MaxReplicas), int64(h.Status.CurrentReplicas), age(h.CreationTimestamp),
	}
}

// hpaTargets renders TARGETS like kubectl: "cpu: 30%/50%", "<unknown>"
// for a current value not yet observed, at most two metrics shown.
func hpaTargets(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	const unknown = "<unknown>"
	var list []string
	for i, spec := range specs {
		var st *autoscalingv2.MetricStatus
		if i < len(statuses) {
			st = &statuses[i]
		}
		switch spec.Type {
		case autoscalingv2.ExternalMetricSourceType:
			current := unknown
			if spec.External.Target.AverageValue != nil {
				if st != nil && st.External != nil && st.External.Current.AverageValue != nil {
					current = st.External.Current.AverageValue.String()
				}
				list = append(list, fmt.Sprintf("%s/%s (avg)", current, spec.External.Target.AverageValue.String()))
			} else {
				if st != nil && st.External != nil && st.External.Current.Value != nil {
					current = st.External.Current.Value.String()
				}
				list = append(list, fmt.Sprintf("%s/%s", current, quantityString(spec.External.Target.Value)))
			}
		case autoscalingv2.PodsMetricSourceType:
			current := unknown
			if st != nil && st.Pods != nil && st.Pods.Current.AverageValue != nil {
				current = st.Pods.Current.AverageValue.String()
			}
			list = append(list, fmt.Sprintf("%s/%s", current, quantityString(spec.Pods.Target.AverageValue)))
		case autoscalingv2.ObjectMetricSourceType:
			current := unknown
			if spec.Object.Target.AverageValue != nil {
				if st != nil && st.Object != nil && st.Object.Current.AverageValue != nil {
					current = st.Object.Current.AverageValue.String()
				}
				list = append(list, fmt.Sprintf("%s/%s (avg)", current, spec.Object.Target.AverageValue.String()))
			} else {
				if st != nil && st.Object != nil && st.Object.Current.Value != nil {
					current = st.Object.Current.Value.String()
				}
				list = append(list, fmt.Sprintf("%s/%s", current, quantityString(spec.Object.Target.Value)))
			}
		case autoscalingv2.ResourceMetricSourceType:
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.Resource != nil {
				cur = &st.Resource.Current
			}
			list = append(list, string(spec.Resource.Name)+": "+resourceTarget(spec.Resource.Target, cur))
		case autoscalingv2.ContainerResourceMetricSourceType:
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.ContainerResource != nil {
				cur = &st.ContainerResource.Current
			}
			list = append(list, string(spec.ContainerResource.Name)+": "+resourceTarget(spec.ContainerResource.Target, cur))
		default:
			list = append(list, "<unknown type>")
		}
	}
	if len(list) > 2 {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:2], ", "), len(list)-2)
	}
	return strings.Join(list, ", ")
}

// resourceTarget renders "current/target" of a (container) resource metric.
func resourceTarget(t autoscalingv2.MetricTarget, cur *autoscalingv2.MetricValueStatus) string {
	current := "<unknown>"
	if t.AverageValue != nil {
		if cur != nil && cur.AverageValue != nil {
			current = cur.AverageValue.String()
		}
		return current + "/" + t.AverageValue.String()
	}
	if cur != nil && cur.AverageUtilization != nil {
		current = fmt.Sprintf("%d%%", *cur.AverageUtilization)
	}
	target := "<auto>"
	if t.AverageUtilization != nil {
		target = fmt.Sprintf("%d%%", *t.AverageUtilization)
	}
	return current + "/" + target
}
