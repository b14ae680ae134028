package scheduler

import (
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
	return podRequests(pod, fromList)
}

// PodScoringRequests is PodRequests with the non-zero defaults
// (DefaultMilliCPURequest, DefaultMemoryRequest) for containers that
// request no CPU or memory: what scoring counts.
func PodScoringRequests(pod *corev1.Pod) Resources {
	return podRequests(pod, nonZero)
}

func podRequests(pod *corev1.Pod, of func(corev1.ResourceList) Resources) Resources {
	var reqs Resources
	for i := range pod.Spec.Containers {
		reqs.add(of(pod.Spec.Containers[i].Resources.Requests))
	}
	var sidecars, initMax Resources
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		r := of(c.Resources.Requests)
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
