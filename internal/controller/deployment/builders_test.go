package deployment

import (
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Builders for table tests.

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

type depB struct{ d *appsv1.Deployment }

// dep is a RollingUpdate Deployment "web" of n replicas with maxSurge and
// maxUnavailable given as strings ("1", "25%").
func dep(n int32, surge, unavail string) depB {
	parse := func(s string) *intstr.IntOrString {
		v := intstr.Parse(s)
		return &v
	}
	return depB{&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "dep-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(n),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: parse(surge), MaxUnavailable: parse(unavail)}},
			RevisionHistoryLimit:    ptr(int32(10)),
			ProgressDeadlineSeconds: ptr(int32(600)),
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1},
	}}
}

func (b depB) recreate() depB {
	b.d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	return b
}
func (b depB) image(img string) depB { b.d.Spec.Template.Spec.Containers[0].Image = img; return b }
func (b depB) ann(k, v string) depB {
	if b.d.Annotations == nil {
		b.d.Annotations = map[string]string{}
	}
	b.d.Annotations[k] = v
	return b
}
func (b depB) obj() *appsv1.Deployment { return b.d }

type rsB struct{ rs *appsv1.ReplicaSet }

// rs is a ReplicaSet of "web" created age seconds after the epoch, with
// size replicas of which avail are available.
func rs(name string, age int, size, avail int32) rsB {
	return rsB{&appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name + "-uid"),
			CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Second)),
			Labels:            map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: name},
			Annotations:       map[string]string{},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(size), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: name}}},
		}},
		Status: appsv1.ReplicaSetStatus{Replicas: size, ReadyReplicas: avail, AvailableReplicas: avail},
	}}
}

func (b rsB) rev(r int) rsB {
	b.rs.Annotations[RevisionAnnotation] = strconv.Itoa(r)
	return b
}

// status sets the pods the ReplicaSet's status reports.
func (b rsB) status(n int32) rsB  { b.rs.Status.Replicas = n; return b }
func (b rsB) ann(k, v string) rsB { b.rs.Annotations[k] = v; return b }

// sizedFor sets the desired- and max-replicas annotations.
func (b rsB) sizedFor(desired, maxReplicas int32) rsB {
	setReplicasAnnotations(b.rs, desired, maxReplicas)
	return b
}
func (b rsB) obj() *appsv1.ReplicaSet { return b.rs }

func rsList(bs ...rsB) []*appsv1.ReplicaSet {
	out := make([]*appsv1.ReplicaSet, len(bs))
	for i, b := range bs {
		out[i] = b.obj()
	}
	return out
}
