package scheduler_test

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover/drover/internal/scheduler"
)

// Placing pods of 1 CPU on two nodes of 2 CPU: the cache counts each
// assumed pod, so the fifth pod fits nowhere and gets upstream's message.
func ExampleCache_Schedule() {
	c := scheduler.NewCache(scheduler.Config{})
	for _, name := range []string{"a", "b"} {
		c.SetNode(&corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("2"),
					corev1.ResourceMemory: resource.MustParse("4Gi"),
					corev1.ResourcePods:   resource.MustParse("110"),
				},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		})
	}
	for i := range 5 {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprint("p", i), UID: types.UID(fmt.Sprint("uid-", i))},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name:      "c",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
			}}},
		}
		node, err := c.Schedule(pod)
		if err != nil {
			fmt.Println(pod.Name, err)
			continue
		}
		_ = c.Assume(pod, node)
		fmt.Println(pod.Name, "->", node)
	}
	// Output:
	// p0 -> a
	// p1 -> b
	// p2 -> a
	// p3 -> b
	// p4 0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.
}
