package hpa_test

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/controller/hpa"
)

// Three ready pods requesting 500m CPU use 400m, 450m and 500m: 90% of
// their requests against a 50% target, so they need ceil(3 × 90/50) = 6.
func ExampleUtilizationReplicas() {
	now := time.Now()
	started := metav1.NewTime(now.Add(-time.Hour))
	var pods []*corev1.Pod
	metrics := map[string]hpa.PodMetric{}
	for i, used := range []int64{400, 450, 500} {
		name := fmt.Sprintf("web-%d", i)
		pods = append(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started, Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started}}},
		})
		metrics[name] = hpa.PodMetric{Value: used, Timestamp: now, Window: 5 * time.Second}
	}
	replicas, utilization, average, err := hpa.UtilizationReplicas(3, 50, corev1.ResourceCPU, "", pods, metrics,
		hpa.Tolerances{ScaleDown: 0.1, ScaleUp: 0.1}, hpa.Readiness{CPUInitializationPeriod: time.Minute}, now)
	fmt.Println(replicas, utilization, average, err)
	// Output: 6 90 450 <nil>
}
