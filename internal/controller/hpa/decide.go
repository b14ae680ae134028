package hpa

import (
	"errors"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Tuning is the controller-wide behaviour the core needs.
type Tuning struct {
	// Tolerance is the default tolerance of the usage ratio (upstream
	// 0.1); an HPA's behavior may set its own per direction.
	Tolerance float64
	// DownscaleStabilization is the scale-down stabilization window of
	// HPAs without a behavior, or whose scaleDown sets none.
	DownscaleStabilization time.Duration
	Readiness
}

// Scale is what the target's scale subresource says.
type Scale struct {
	SpecReplicas, StatusReplicas int32
	Selector                     string
}

// Input is everything one reconciliation of an HPA looks at.
type Input struct {
	HPA   *autoscalingv2.HorizontalPodAutoscaler
	Scale Scale
	// Pods are the pods the scale's selector selects.
	Pods []*corev1.Pod
	// PodMetrics are the resource metrics of those pods, or MetricsErr
	// why they could not be read.
	PodMetrics []metricsv1beta1.PodMetrics
	MetricsErr error
	// SelectingHPAs are the HPAs (namespace/name, sorted, this one
	// included) whose targets select any of Pods: more than one is an
	// ambiguous selector, and no HPA scales on it.
	SelectingHPAs []string
	Now           time.Time
	Tuning        Tuning
}

// Event is an event to record on the HPA.
type Event struct {
	Type, Reason, Message string
}

// Decision is the outcome of Decide.
type Decision struct {
	// Rescale says to set the target's replicas to Desired, because of
	// Reason.
	Rescale bool
	Desired int32
	Reason  string
	// Status is the HPA's new status (if Rescale, as it is once the
	// rescale succeeds: see Rescaled and RescaleFailed).
	Status autoscalingv2.HorizontalPodAutoscalerStatus
	// Events are warnings met while computing.
	Events []Event
	// Err is why no replica count could be computed; Status still is
	// to be written.
	Err error
}

// Decide is one reconciliation of an HPA, upstream's reconcileAutoscaler
// after the scale was read: bring the target within min/max replicas, or
// compute the replicas its metrics ask for, stabilize and rate-limit them
// by the behavior, and set the conditions. It records the recommendation
// in hist.
func Decide(in Input, hist *History) Decision {
	h := in.HPA
	st := *h.Status.DeepCopy()
	d := Decision{}
	setCondition(&st, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale", in.Now)
	current := in.Scale.SpecReplicas
	hist.recordInitial(current, in.Now)
	minReplicas := int32(1)
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	var statuses []autoscalingv2.MetricStatus
	desired := int32(0)
	switch {
	case in.Scale.SpecReplicas == 0 && minReplicas != 0:
		// Autoscaling is off while the target is scaled to zero.
		setCondition(&st, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero", in.Now)
	case current > h.Spec.MaxReplicas:
		d.Reason, desired = "Current number of replicas above Spec.MaxReplicas", h.Spec.MaxReplicas
	case current < minReplicas:
		d.Reason, desired = "Current number of replicas below Spec.MinReplicas", minReplicas
	default:
		proposal, metric, ss, events, err := replicasForMetrics(in, &st)
		statuses = ss
		d.Events = append(d.Events, events...)
		if err != nil && proposal == -1 {
			d.Events = append(d.Events, Event{corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error()})
			d.Err = err
			st.CurrentReplicas = current
			st.CurrentMetrics = statuses
			st.ObservedGeneration = &h.Generation
			d.Status = st
			return d
		}
		d.Err = err // some metrics failed but others allow scaling up
		desired = proposal
		switch {
		case desired > current:
			d.Reason = metric + " above target"
		case desired < current:
			d.Reason = "All metrics below target"
		}
		desired = normalize(h, hist, &st, current, desired, minReplicas, in.Tuning, in.Now)
	}
	d.Rescale = desired != current && !(in.Scale.SpecReplicas == 0 && minReplicas != 0)
	if !d.Rescale {
		desired, d.Reason = current, ""
	}
	d.Desired = desired
	st.CurrentReplicas = current
	st.DesiredReplicas = desired
	st.CurrentMetrics = statuses
	st.ObservedGeneration = &h.Generation
	if d.Rescale {
		setCondition(&st, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", fmt.Sprintf("the HPA controller was able to update the target scale to %d", desired), in.Now)
		t := metav1.NewTime(in.Now)
		st.LastScaleTime = &t
	}
	d.Status = st
	return d
}

// Rescaled is the event of a successful rescale; it records the change
// in hist for the behavior's rate policies.
func (d Decision) Rescaled(h *autoscalingv2.HorizontalPodAutoscaler, hist *History, current int32, now time.Time) Event {
	hist.RecordScale(h.Spec.Behavior, current, d.Desired, now)
	return Event{corev1.EventTypeNormal, "SuccessfulRescale", fmt.Sprintf("New size: %d; reason: %s", d.Desired, d.Reason)}
}

// RescaleFailed is the status and event of a failed rescale: the size
// stays, AbleToScale turns False.
func (d Decision) RescaleFailed(old autoscalingv2.HorizontalPodAutoscalerStatus, current int32, err error, now time.Time) (autoscalingv2.HorizontalPodAutoscalerStatus, Event) {
	st := d.Status
	st.LastScaleTime = old.LastScaleTime
	st.DesiredReplicas = old.DesiredReplicas
	st.CurrentReplicas = current
	setCondition(&st, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale", fmt.Sprintf("the HPA controller was unable to update the target scale: %v", err), now)
	return st, Event{corev1.EventTypeWarning, "FailedRescale", fmt.Sprintf("New size: %d; reason: %s; error: %v", d.Desired, d.Reason, err)}
}

// ScaleUnavailable is the status and event when the target's scale
// cannot be read.
func ScaleUnavailable(h *autoscalingv2.HorizontalPodAutoscaler, err error, now time.Time) (autoscalingv2.HorizontalPodAutoscalerStatus, Event) {
	st := *h.Status.DeepCopy()
	setCondition(&st, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale", fmt.Sprintf("the HPA controller was unable to get the target's current scale: %v", err), now)
	return st, Event{corev1.EventTypeWarning, "FailedGetScale", err.Error()}
}

// normalize applies stabilization, rate limits and min/max replicas and
// sets AbleToScale and ScalingLimited.
func normalize(h *autoscalingv2.HorizontalPodAutoscaler, hist *History, st *autoscalingv2.HorizontalPodAutoscalerStatus, current, desired, minReplicas int32, t Tuning, now time.Time) int32 {
	var stabilized int32
	var lim limit
	if h.Spec.Behavior == nil {
		stabilized = hist.stabilizeLegacy(desired, t.DownscaleStabilization, now)
		if stabilized != desired {
			setCondition(st, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation", now)
		} else {
			setCondition(st, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size", now)
		}
		lim = legacyRules(current, stabilized, minReplicas, h.Spec.MaxReplicas)
	} else {
		up, down := h.Spec.Behavior.ScaleUp, h.Spec.Behavior.ScaleDown
		if down != nil && down.StabilizationWindowSeconds == nil {
			down = down.DeepCopy()
			w := int32(t.DownscaleStabilization / time.Second)
			down.StabilizationWindowSeconds = &w
		}
		var reason, msg string
		stabilized, reason, msg = hist.stabilizeWithBehavior(current, desired, up, down, now)
		if stabilized != desired {
			setCondition(st, autoscalingv2.AbleToScale, corev1.ConditionTrue, reason, msg, now)
		} else {
			setCondition(st, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size", now)
		}
		lim = hist.behaviorRules(current, stabilized, minReplicas, h.Spec.MaxReplicas, up, down, now)
	}
	status := corev1.ConditionFalse
	if lim.replicas != stabilized {
		status = corev1.ConditionTrue
	}
	setCondition(st, autoscalingv2.ScalingLimited, status, lim.reason, lim.message, now)
	return lim.replicas
}

// replicasForMetrics is the largest replica count any metric asks for,
// the name of that metric, every metric's status and the warnings met.
// It returns -1 and an error when no count can be trusted: every metric
// failed, or some failed and the others would scale down.
func replicasForMetrics(in Input, st *autoscalingv2.HorizontalPodAutoscalerStatus) (int32, string, []autoscalingv2.MetricStatus, []Event, error) {
	h := in.HPA
	var events []Event
	if in.Scale.Selector == "" {
		events = append(events, Event{corev1.EventTypeWarning, "SelectorRequired", "selector is required"})
		setCondition(st, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector", in.Now)
		return -1, "", nil, events, errors.New("selector is required")
	}
	if _, err := labels.Parse(in.Scale.Selector); err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		events = append(events, Event{corev1.EventTypeWarning, "InvalidSelector", msg})
		setCondition(st, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", msg, in.Now)
		return -1, "", nil, events, errors.New(msg)
	}
	if len(in.SelectingHPAs) > 1 {
		msg := fmt.Sprintf("pods by selector %v are controlled by multiple HPAs: %v", in.Scale.Selector, in.SelectingHPAs)
		events = append(events, Event{corev1.EventTypeWarning, "AmbiguousSelector", msg})
		setCondition(st, autoscalingv2.ScalingActive, corev1.ConditionFalse, "AmbiguousSelector", msg, in.Now)
		return -1, "", nil, events, errors.New(msg)
	}
	specs := h.Spec.Metrics
	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	var replicas int32
	var metric string
	invalid := 0
	var firstErr error
	var firstCond autoscalingv2.HorizontalPodAutoscalerCondition
	tol := tolerancesFor(h, in.Tuning.Tolerance)
	for i, spec := range specs {
		n, name, reason, err := replicasForMetric(in, spec, tol, &statuses[i])
		if err != nil {
			events = append(events, Event{corev1.EventTypeWarning, reason, err.Error()})
			if invalid == 0 {
				firstErr = wrapMetricErr(spec, err)
				firstCond = autoscalingv2.HorizontalPodAutoscalerCondition{
					Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse, Reason: reason,
					Message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err),
				}
			}
			invalid++
			continue
		}
		if replicas == 0 || n > replicas {
			replicas, metric = n, name
		}
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("invalid metrics (%d invalid out of %d), first error is: %v", invalid, len(specs), firstErr)
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < in.Scale.SpecReplicas) {
		setCondition(st, firstCond.Type, firstCond.Status, firstCond.Reason, firstCond.Message, in.Now)
		return -1, "", statuses, events, firstErr
	}
	setCondition(st, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", fmt.Sprintf("the HPA was able to successfully calculate a replica count from %s", metric), in.Now)
	return replicas, metric, statuses, events, firstErr
}

// replicasForMetric computes one metric's proposal and status; on error
// it returns the condition reason (also the event reason).
func replicasForMetric(in Input, spec autoscalingv2.MetricSpec, tol Tolerances, status *autoscalingv2.MetricStatus) (int32, string, string, error) {
	var (
		res       corev1.ResourceName
		container string
		target    autoscalingv2.MetricTarget
		reason    string
	)
	switch {
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		res, target, reason = spec.Resource.Name, spec.Resource.Target, "FailedGetResourceMetric"
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		res, container, target, reason = spec.ContainerResource.Name, spec.ContainerResource.Container, spec.ContainerResource.Target, "FailedGetContainerResourceMetric"
	case spec.Type == autoscalingv2.PodsMetricSourceType:
		return 0, "", "FailedGetPodsMetric", errors.New("failed to get pods metric value: custom metrics (custom.metrics.k8s.io) are not served by Drover")
	case spec.Type == autoscalingv2.ObjectMetricSourceType:
		return 0, "", "FailedGetObjectMetric", errors.New("failed to get object metric value: custom metrics (custom.metrics.k8s.io) are not served by Drover")
	case spec.Type == autoscalingv2.ExternalMetricSourceType:
		return 0, "", "FailedGetExternalMetric", errors.New("failed to get external metric value: external metrics (external.metrics.k8s.io) are not served by Drover")
	default:
		return 0, "", "InvalidMetricSourceType", fmt.Errorf("unknown metric source type %q", spec.Type)
	}
	fail := func(err error) (int32, string, string, error) { return 0, "", reason, err }
	metrics, err := in.podMetrics(res, container)
	if err != nil {
		return fail(fmt.Errorf("failed to get %s utilization: unable to get metrics for resource %s: %w", res, res, err))
	}
	var cur autoscalingv2.MetricValueStatus
	var n int32
	var name string
	switch {
	case target.AverageValue != nil:
		var avg int64
		n, avg, err = AverageValueReplicas(in.Scale.SpecReplicas, target.AverageValue.MilliValue(), res, in.Pods, metrics, tol, in.Tuning.Readiness, in.Now)
		if err != nil {
			return fail(fmt.Errorf("failed to get %s usage: %w", res, err))
		}
		cur.AverageValue = resource.NewMilliQuantity(avg, resource.DecimalSI)
		name = fmt.Sprintf("%s resource", res)
	case target.AverageUtilization != nil:
		var util int32
		var raw int64
		n, util, raw, err = UtilizationReplicas(in.Scale.SpecReplicas, *target.AverageUtilization, res, container, in.Pods, metrics, tol, in.Tuning.Readiness, in.Now)
		if err != nil {
			return fail(fmt.Errorf("failed to get %s utilization: %w", res, err))
		}
		cur.AverageUtilization, cur.AverageValue = &util, resource.NewMilliQuantity(raw, resource.DecimalSI)
		name = fmt.Sprintf("%s resource utilization (percentage of request)", res)
		if container != "" {
			name = fmt.Sprintf("%s container resource utilization (percentage of request)", res)
		}
	default:
		return fail(errors.New("invalid resource metric source: neither an average utilization target nor an average value target was set"))
	}
	if container != "" {
		*status = autoscalingv2.MetricStatus{Type: autoscalingv2.ContainerResourceMetricSourceType,
			ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{Name: res, Container: container, Current: cur}}
	} else {
		*status = autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{Name: res, Current: cur}}
	}
	return n, name, "", nil
}

// wrapMetricErr names the metric in err, as upstream's error chain.
func wrapMetricErr(spec autoscalingv2.MetricSpec, err error) error {
	switch {
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		return fmt.Errorf("failed to get %s resource metric value: %w", spec.Resource.Name, err)
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		return fmt.Errorf("failed to get %s container metric value: %w", spec.ContainerResource.Container, err)
	}
	return err
}

func (in Input) podMetrics(res corev1.ResourceName, container string) (map[string]PodMetric, error) {
	if in.MetricsErr != nil {
		return nil, in.MetricsErr
	}
	m, _, err := ResourceMetrics(in.PodMetrics, res, container)
	return m, err
}

// setCondition sets a condition, moving its transition time only when
// its status changes, as upstream.
func setCondition(st *autoscalingv2.HorizontalPodAutoscalerStatus, typ autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = metav1.NewTime(now)
		}
		c.Status, c.Reason, c.Message = status, reason, message
		return
	}
	st.Conditions = append(st.Conditions, autoscalingv2.HorizontalPodAutoscalerCondition{
		Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(now),
	})
}
