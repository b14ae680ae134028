package scheduler

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Requests a container without a request counts with when nodes are
// scored (never when they are filtered), as upstream's non-zero requests:
// otherwise pods without requests would all pile onto one node.
const (
	DefaultMilliCPURequest int64 = 100               // 0.1 core
	DefaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// Resources is an amount of the resources the scheduler accounts for.
type Resources struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
}

func (r *Resources) add(o Resources) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
}

func (r *Resources) sub(o Resources) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
}

func (r *Resources) max(o Resources) {
	r.MilliCPU = max(r.MilliCPU, o.MilliCPU)
	r.Memory = max(r.Memory, o.Memory)
	r.EphemeralStorage = max(r.EphemeralStorage, o.EphemeralStorage)
}

func (r Resources) isZero() bool {
	return r.MilliCPU == 0 && r.Memory == 0 && r.EphemeralStorage == 0
}

func fromList(l corev1.ResourceList) Resources {
	var r Resources
	if q, ok := l[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	}
	if q, ok := l[corev1.ResourceEphemeralStorage]; ok {
		r.EphemeralStorage = q.Value()
	}
	return r
}

// nonZero is a container's requests with the scoring defaults for unset
// CPU and memory.
func nonZero(l corev1.ResourceList) Resources {
	r := fromList(l)
	if _, ok := l[corev1.ResourceCPU]; !ok {
		r.MilliCPU = DefaultMilliCPURequest
	}
	if _, ok := l[corev1.ResourceMemory]; !ok {
		r.Memory = DefaultMemoryRequest
	}
	return r
}

// PodRequests returns what pod asks a node for, as upstream computes it:
// the sum over its containers and sidecars (init containers with
// restartPolicy Always), or, if larger, what any ordinary init container
// needs next to the sidecars started before it (init containers run one
// at a time), per resource; pod-level requests (spec.resources) replace
// the aggregate for the resources they name; spec.overhead is added.
func PodRequests(pod *corev1.Pod) Resources {
	return podRequests(pod, func(c *corev1.Container) Resources { return fromList(c.Resources.Requests) })
}

// PodScoringRequests is PodRequests with the non-zero defaults
// (DefaultMilliCPURequest, DefaultMemoryRequest) for containers that
// request no CPU or memory: what scoring counts.
func PodScoringRequests(pod *corev1.Pod) Resources {
	return podRequests(pod, func(c *corev1.Container) Resources { return nonZero(c.Resources.Requests) })
}

func podRequests(pod *corev1.Pod, of func(*corev1.Container) Resources) Resources {
	reqs := aggregate(pod, of)
	if pr := pod.Spec.Resources; pr != nil {
		if q, ok := pr.Requests[corev1.ResourceCPU]; ok {
			reqs.MilliCPU = q.MilliValue()
		}
		if q, ok := pr.Requests[corev1.ResourceMemory]; ok {
			reqs.Memory = q.Value()
		}
	}
	reqs.add(fromList(pod.Spec.Overhead))
	return reqs
}

// aggregate combines per-container amounts as upstream: containers and
// sidecars add up; an ordinary init container runs beside the sidecars
// started before it; the pod needs the larger of the two.
func aggregate(pod *corev1.Pod, of func(*corev1.Container) Resources) Resources {
	var reqs Resources
	for i := range pod.Spec.Containers {
		reqs.add(of(&pod.Spec.Containers[i]))
	}
	var sidecars, initMax Resources
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		r := of(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			reqs.add(r)
			sidecars.add(r)
			r = sidecars
		} else {
			r.add(sidecars)
		}
		initMax.max(r)
	}
	reqs.max(initMax)
	return reqs
}

// nodeAllocatable reads a node's allocatable resources and pod count,
// falling back to capacity for what allocatable does not name.
func nodeAllocatable(n *corev1.Node) (Resources, int) {
	list := n.Status.Allocatable
	if len(list) == 0 {
		list = n.Status.Capacity
	}
	r := fromList(list)
	pods := 0
	if q, ok := list[corev1.ResourcePods]; ok {
		pods = int(q.Value())
	} else if q, ok := n.Status.Capacity[corev1.ResourcePods]; ok {
		pods = int(q.Value())
	}
	return r, pods
}

// ScalarRequest is a pod's request of a resource other than CPU, memory,
// ephemeral storage and pods: extended resources (example.com/gpu),
// hugepages-*, and the like.
type ScalarRequest struct {
	Name     corev1.ResourceName
	Quantity int64
}

// isScalar is upstream's IsScalarResourceName: extended and prefixed
// native resources (with a "/"), hugepages and attachable volumes.
func isScalar(name corev1.ResourceName) bool {
	s := string(name)
	return strings.Contains(s, "/") || strings.HasPrefix(s, corev1.ResourceHugePagesPrefix) ||
		strings.HasPrefix(s, corev1.ResourceAttachableVolumesPrefix)
}

// PodScalarRequests returns a pod's scalar requests, aggregated as
// PodRequests does, sorted by name; nil if none.
func PodScalarRequests(pod *corev1.Pod) []ScalarRequest {
	var names []corev1.ResourceName
	note := func(l corev1.ResourceList) {
		for n := range l {
			if isScalar(n) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		note(pod.Spec.InitContainers[i].Resources.Requests)
	}
	for i := range pod.Spec.Containers {
		note(pod.Spec.Containers[i].Resources.Requests)
	}
	note(pod.Spec.Overhead)
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	out := make([]ScalarRequest, 0, len(names))
	for _, n := range names {
		// One dimension is enough: carry the amount in the Memory field.
		r := aggregate(pod, func(c *corev1.Container) Resources {
			q := c.Resources.Requests[n]
			return Resources{Memory: q.Value()}
		})
		if q, ok := pod.Spec.Overhead[n]; ok {
			r.Memory += q.Value()
		}
		if r.Memory > 0 {
			out = append(out, ScalarRequest{Name: n, Quantity: r.Memory})
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// nodeScalars reads a node's allocatable scalar resources; nil if none.
func nodeScalars(n *corev1.Node) map[corev1.ResourceName]int64 {
	list := n.Status.Allocatable
	if len(list) == 0 {
		list = n.Status.Capacity
	}
	var out map[corev1.ResourceName]int64
	for name, q := range list {
		if isScalar(name) {
			if out == nil {
				out = map[corev1.ResourceName]int64{}
			}
			out[name] = q.Value()
		}
	}
	return out
}
