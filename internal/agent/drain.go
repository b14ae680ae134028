package agent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultEndpointDrainDelay is how long a terminating pod that served a
// Service keeps running after it left the Service's ready endpoints, so
// every node's proxy stops sending it new connections before it is told
// to stop.
const DefaultEndpointDrainDelay = time.Second

// endpointState says where a pod stands in its namespace's
// EndpointSlices: listed at all, and listed as ready for new traffic.
func endpointState(slices []discoveryv1.EndpointSlice, pod *corev1.Pod) (listed, ready bool) {
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.UID != pod.UID {
				continue
			}
			listed = true
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready = true
			}
		}
	}
	return listed, ready
}

// drainEndpoints holds a terminating pod back from preStop and SIGTERM
// until the Services it backs no longer route new connections to it:
// it waits for its EndpointSlices to mark it not ready (or drop it), then
// EndpointDrainDelay for proxies to apply that, all within a third of the
// grace period so the pod keeps time to stop. Kubernetes stops the pod
// while it is still in the load balancers (kubernetes/kubernetes#106476);
// Drover does not. A pod that backs no Service is not held.
func (m *podManager) drainEndpoints(ctx context.Context, pod *corev1.Pod, deadline time.Time) {
	if pod.Status.PodIP == "" || pod.Spec.HostNetwork || m.a.cfg.EndpointDrainDelay < 0 {
		return
	}
	budget := time.Until(deadline) / 3
	if budget <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	slices := m.a.cfg.Client.DiscoveryV1().EndpointSlices(pod.Namespace)
	waited := false
	for {
		list, err := slices.List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		listed, ready := endpointState(list.Items, pod)
		if !listed && !waited {
			return // not a Service backend
		}
		if !ready {
			break
		}
		waited = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(m.a.cfg.EndpointDrainDelay):
	}
}
