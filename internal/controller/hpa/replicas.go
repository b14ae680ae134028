package hpa

import (
	"errors"
	"fmt"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// PodMetric is one pod's usage of one resource, in milli-units, and the
// interval [Timestamp-Window, Timestamp] it was measured over.
type PodMetric struct {
	Value     int64
	Timestamp time.Time
	Window    time.Duration
}

// Tolerances are how far below (ScaleDown) and above (ScaleUp) 1.0 the
// usage ratio may be before the replica count changes.
type Tolerances struct{ ScaleDown, ScaleUp float64 }

func (t Tolerances) isWithin(ratio float64) bool {
	return 1.0-t.ScaleDown <= ratio && ratio <= 1.0+t.ScaleUp
}

// Readiness is how pods that just started are judged for CPU, as
// upstream's --horizontal-pod-autoscaler-cpu-initialization-period and
// --horizontal-pod-autoscaler-initial-readiness-delay.
type Readiness struct {
	// CPUInitializationPeriod: within it after a pod starts, its CPU
	// sample counts only if the pod is ready and the sample was taken a
	// full window after it became ready.
	CPUInitializationPeriod time.Duration
	// InitialReadinessDelay: after the initialization period, an unready
	// pod whose readiness last changed within this delay of its start is
	// taken as never ready yet, and ignored.
	InitialReadinessDelay time.Duration
}

// ResourceMetrics sums each pod's usage of resource over its containers
// (or the one named container), as upstream's resource metrics client: a
// pod missing the resource in any counted container has no metric. It
// errors when the API returned no pods at all.
func ResourceMetrics(items []metricsv1beta1.PodMetrics, resource corev1.ResourceName, container string) (map[string]PodMetric, time.Time, error) {
	if len(items) == 0 {
		return nil, time.Time{}, errors.New("no metrics returned from resource metrics API")
	}
	res := make(map[string]PodMetric, len(items))
	for _, m := range items {
		sum, found, missing := int64(0), false, len(m.Containers) == 0
		for _, c := range m.Containers {
			if container != "" && c.Name != container {
				continue
			}
			v, ok := c.Usage[resource]
			if !ok {
				missing = true
				break
			}
			found = true
			sum += v.MilliValue()
		}
		if missing || !found {
			continue
		}
		res[m.Name] = PodMetric{Value: sum, Timestamp: m.Timestamp.Time, Window: m.Window.Duration}
	}
	return res, items[0].Timestamp.Time, nil
}

// groupPods sorts pods as upstream does: ready pods with metrics are
// counted; pending pods and (for CPU) pods not yet ready or still
// initializing are unready; running pods without metrics are missing;
// deleted and failed pods are ignored.
func groupPods(pods []*corev1.Pod, metrics map[string]PodMetric, resource corev1.ResourceName, r Readiness, now time.Time) (ready int, unready, missing, ignored map[string]bool) {
	unready, missing, ignored = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed {
			ignored[p.Name] = true
			continue
		}
		if p.Status.Phase == corev1.PodPending {
			unready[p.Name] = true
			continue
		}
		m, found := metrics[p.Name]
		if !found {
			missing[p.Name] = true
			continue
		}
		if resource == corev1.ResourceCPU {
			cond := podReadyCondition(p)
			var isUnready bool
			switch {
			case cond == nil || p.Status.StartTime == nil:
				isUnready = true
			case p.Status.StartTime.Add(r.CPUInitializationPeriod).After(now):
				// Still initializing: the sample must be a full window
				// younger than the last readiness change.
				isUnready = cond.Status == corev1.ConditionFalse || m.Timestamp.Before(cond.LastTransitionTime.Add(m.Window))
			default:
				// Unready and never ready since its start.
				isUnready = cond.Status == corev1.ConditionFalse && p.Status.StartTime.Add(r.InitialReadinessDelay).After(cond.LastTransitionTime.Time)
			}
			if isUnready {
				unready[p.Name] = true
				continue
			}
		}
		ready++
	}
	return ready, unready, missing, ignored
}

func podReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// podRequests is each pod's request of resource in milli-units: its
// pod-level request if set, else the sum over its containers (or the
// named one) and restartable init containers (sidecars). A counted
// container without a request is an error.
func podRequests(pods []*corev1.Pod, resource corev1.ResourceName, container string) (map[string]int64, error) {
	reqs := make(map[string]int64, len(pods))
	for _, p := range pods {
		if container == "" && p.Spec.Resources != nil {
			if q, ok := p.Spec.Resources.Requests[resource]; ok {
				reqs[p.Name] = q.MilliValue()
				continue
			}
		}
		cs := append([]corev1.Container(nil), p.Spec.Containers...)
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				cs = append(cs, c)
			}
		}
		sum := int64(0)
		for _, c := range cs {
			if container != "" && c.Name != container {
				continue
			}
			q, ok := c.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, c.Name, p.Name)
			}
			sum += q.MilliValue()
		}
		reqs[p.Name] = sum
	}
	return reqs, nil
}

// utilizationRatio is usage over requests as a fraction of the target
// percentage, the utilization percentage and the average raw usage.
func utilizationRatio(metrics map[string]PodMetric, requests map[string]int64, target int32) (ratio float64, utilization int32, raw int64, err error) {
	var used, requested int64
	n := 0
	for name, m := range metrics {
		r, ok := requests[name]
		if !ok {
			continue
		}
		used += m.Value
		requested += r
		n++
	}
	if requested == 0 {
		return 0, 0, 0, errors.New("no metrics returned matched known pods")
	}
	utilization = int32(used * 100 / requested)
	return float64(utilization) / float64(target), utilization, used / int64(n), nil
}

// usageRatio is the average usage as a fraction of the target average.
func usageRatio(metrics map[string]PodMetric, target int64) (ratio float64, average int64) {
	var total int64
	for _, m := range metrics {
		total += m.Value
	}
	average = total / int64(len(metrics))
	return float64(average) / float64(target), average
}

// UtilizationReplicas is upstream's replica count for a resource target
// of targetUtilization percent of requests: ceil(ready pods × usage
// ratio), unchanged within the tolerances; pods missing metrics count as
// using their full request (or the target if above 100%) when scaling
// down and nothing when scaling up; unready pods count as using nothing
// when scaling up and are left out otherwise; no change if these
// assumptions would reverse the direction. It returns the utilization
// percentage and the average usage in milli-units.
func UtilizationReplicas(current int32, targetUtilization int32, resource corev1.ResourceName, container string, pods []*corev1.Pod, metrics map[string]PodMetric, tol Tolerances, r Readiness, now time.Time) (replicas, utilization int32, raw int64, err error) {
	if len(pods) == 0 {
		return 0, 0, 0, errors.New("no pods returned by selector while calculating replica count")
	}
	metrics = cloneMetrics(metrics)
	ready, unready, missing, ignored := groupPods(pods, metrics, resource, r, now)
	for name := range ignored {
		delete(metrics, name)
	}
	for name := range unready {
		delete(metrics, name)
	}
	requests, err := podRequests(pods, resource, container)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(metrics) == 0 {
		return 0, 0, 0, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, utilization, raw, err := utilizationRatio(metrics, requests, targetUtilization)
	if err != nil {
		return 0, 0, 0, err
	}
	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if tol.isWithin(ratio) {
			return current, utilization, raw, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), utilization, raw, nil
	}
	if len(missing) > 0 {
		if ratio < 1.0 {
			fallback := int64(max(100, targetUtilization))
			for name := range missing {
				metrics[name] = PodMetric{Value: requests[name] * fallback / 100}
			}
		} else if ratio > 1.0 {
			for name := range missing {
				metrics[name] = PodMetric{}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = PodMetric{}
		}
	}
	newRatio, _, _, err := utilizationRatio(metrics, requests, targetUtilization)
	if err != nil {
		return 0, utilization, raw, err
	}
	if tol.isWithin(newRatio) || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		return current, utilization, raw, nil
	}
	n := int32(math.Ceil(newRatio * float64(len(metrics))))
	if (newRatio < 1.0 && n > current) || (newRatio > 1.0 && n < current) {
		return current, utilization, raw, nil
	}
	return n, utilization, raw, nil
}

// AverageValueReplicas is upstream's replica count for a target average
// usage per pod (milli-units), with the same treatment of missing and
// unready pods as UtilizationReplicas. It returns the average usage.
func AverageValueReplicas(current int32, targetAverage int64, resource corev1.ResourceName, pods []*corev1.Pod, metrics map[string]PodMetric, tol Tolerances, r Readiness, now time.Time) (replicas int32, average int64, err error) {
	if len(pods) == 0 {
		return 0, 0, errors.New("no pods returned by selector while calculating replica count")
	}
	metrics = cloneMetrics(metrics)
	ready, unready, missing, ignored := groupPods(pods, metrics, resource, r, now)
	for name := range ignored {
		delete(metrics, name)
	}
	for name := range unready {
		delete(metrics, name)
	}
	if len(metrics) == 0 {
		return 0, 0, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, average := usageRatio(metrics, targetAverage)
	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if tol.isWithin(ratio) {
			return current, average, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), average, nil
	}
	if len(missing) > 0 {
		for name := range missing {
			if ratio < 1.0 {
				metrics[name] = PodMetric{Value: targetAverage}
			} else {
				metrics[name] = PodMetric{}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = PodMetric{}
		}
	}
	newRatio, _ := usageRatio(metrics, targetAverage)
	if tol.isWithin(newRatio) || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		return current, average, nil
	}
	return int32(math.Ceil(newRatio * float64(len(metrics)))), average, nil
}

func cloneMetrics(m map[string]PodMetric) map[string]PodMetric {
	c := make(map[string]PodMetric, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// tolerancesFor are the HPA's own tolerances (behavior.scaleUp/scaleDown
// .tolerance) where set, else def for both directions.
func tolerancesFor(h *autoscalingv2.HorizontalPodAutoscaler, def float64) Tolerances {
	t := Tolerances{ScaleDown: def, ScaleUp: def}
	if b := h.Spec.Behavior; b != nil {
		if b.ScaleDown != nil && b.ScaleDown.Tolerance != nil {
			t.ScaleDown = b.ScaleDown.Tolerance.AsApproximateFloat64()
		}
		if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
			t.ScaleUp = b.ScaleUp.Tolerance.AsApproximateFloat64()
		}
	}
	return t
}
