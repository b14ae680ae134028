package deployment_test

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drover/drover/internal/controller/deployment"
)

// Percentages resolve as upstream: surge rounds up, unavailable down.
func ExampleResolveFenceposts() {
	surge, unavailable := intstr.FromString("25%"), intstr.FromString("25%")
	s, u, _ := deployment.ResolveFenceposts(&surge, &unavailable, 10)
	fmt.Println(s, u)
	// Output: 3 2
}

// One step of a rolling update of 10 replicas (maxSurge 1, maxUnavailable
// 1) whose new ReplicaSet already has its one surge pod, not yet ready:
// the old ReplicaSet may lose one pod, keeping 9 available.
func ExampleRollingStep() {
	one := intstr.FromInt32(1)
	ten, newSize, oldSize := int32(10), int32(1), int32(10)
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Replicas: &ten,
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &one}},
	}}
	newRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-new"}, Spec: appsv1.ReplicaSetSpec{Replicas: &newSize}}
	oldRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-old"}, Spec: appsv1.ReplicaSetSpec{Replicas: &oldSize},
		Status: appsv1.ReplicaSetStatus{Replicas: 10, ReadyReplicas: 10, AvailableReplicas: 10}}
	for _, s := range deployment.RollingStep(d, newRS, []*appsv1.ReplicaSet{oldRS}) {
		fmt.Println(s)
	}
	// Output: Scaled down replica set web-old from 10 to 9
}
