package registry_test

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/registry"
)

// Example shows the create pipeline the API server runs over a resource's
// description: Default, PrepareForCreate, Validate, then a table row.
func Example() {
	var deployments *registry.Resource
	for _, r := range registry.All() {
		if r.GroupVersionResource().Resource == "deployments" {
			deployments = r
		}
	}

	obj := deployments.New().(*appsv1.Deployment)
	obj.Name = "web"
	obj.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	obj.Spec.Template.Labels = map[string]string{"app": "other"}

	deployments.Default(obj)
	deployments.PrepareForCreate(obj)
	for _, err := range deployments.Validate(obj) {
		fmt.Println(err)
	}
	fmt.Println(*obj.Spec.Replicas, obj.Spec.Strategy.Type, obj.Spec.Strategy.RollingUpdate.MaxSurge)
	for i, cell := range deployments.TableRow(obj)[:3] {
		fmt.Printf("%s=%v ", deployments.TableColumns[i].Name, cell)
	}
	fmt.Println()
	// Output:
	// spec.template.metadata.labels: Invalid value: {"app":"other"}: `selector` does not match template `labels`
	// spec.template.spec.containers: Required value
	// 1 RollingUpdate 25%
	// Ready=0/1 Up-to-date=0 Available=0
}
