package registry

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var supportedDeploymentStrategies = []appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}

// Deployments is apps/v1 deployments.
func Deployments() *Resource {
	return &Resource{
		GroupVersion:      appsv1.SchemeGroupVersion,
		Kind:              "Deployment",
		Plural:            "deployments",
		Singular:          "deployment",
		ShortNames:        []string{"deploy"},
		Categories:        []string{"all"},
		Namespaced:        true,
		New:               func() runtime.Object { return &appsv1.Deployment{} },
		NewList:           func() runtime.Object { return &appsv1.DeploymentList{} },
		StatusSubresource: true,
		Scale: &ScaleAccess{
			Get: func(obj runtime.Object) (int32, int32, string) {
				d := obj.(*appsv1.Deployment)
				return int32Value(d.Spec.Replicas, 1), d.Status.Replicas, scaleSelector(d.Spec.Selector)
			},
			Set: func(obj runtime.Object, n int32) { obj.(*appsv1.Deployment).Spec.Replicas = &n },
		},
		Default: func(obj runtime.Object) { defaultDeployment(obj.(*appsv1.Deployment)) },
		PrepareForCreate: func(obj runtime.Object) {
			d := obj.(*appsv1.Deployment)
			d.Status = appsv1.DeploymentStatus{}
			d.Generation = 1
		},
		PrepareForUpdate: func(obj, old runtime.Object) {
			d, o := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
			bumpGeneration(&d.ObjectMeta, &o.ObjectMeta, &d.Spec, &o.Spec)
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			return validateDeploymentSpec(&obj.(*appsv1.Deployment).Spec, field.NewPath("spec"))
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			d, o := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
			errs := validateDeploymentSpec(&d.Spec, field.NewPath("spec"))
			return append(errs, immutable(d.Spec.Selector, o.Spec.Selector, field.NewPath("spec", "selector"))...)
		},
		ValidateStatus: func(obj, _ runtime.Object) field.ErrorList {
			return validateDeploymentStatus(&obj.(*appsv1.Deployment).Status, field.NewPath("status"))
		},
		TableColumns: []metav1.TableColumnDefinition{
			col("Ready", "Number of the pod with ready state"),
			intCol("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
			intCol("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
			ageColumn,
			wide(col("Containers", "Names of each container in the template.")),
			wide(col("Images", "Images referenced by each container in the template.")),
			wide(col("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.")),
		},
		TableRow: func(obj runtime.Object) []interface{} {
			d := obj.(*appsv1.Deployment)
			names, images := containerCells(d.Spec.Template.Spec.Containers)
			return []interface{}{
				fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, int32Value(d.Spec.Replicas, 1)),
				int64(d.Status.UpdatedReplicas), int64(d.Status.AvailableReplicas), age(d.CreationTimestamp),
				names, images, selectorCell(d.Spec.Selector),
			}
		},
	}
}

// scaleSelector renders a selector for the Scale subresource's status.
func scaleSelector(sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return ""
	}
	return s.String()
}

// defaultDeployment applies apps/v1 Deployment defaults.
func defaultDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = ptrTo(int32(1))
	}
	s := &d.Spec.Strategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			s.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromString("25%"))
		}
		if s.RollingUpdate.MaxSurge == nil {
			s.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("25%"))
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = ptrTo(int32(10))
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = ptrTo(int32(600))
	}
	defaultPodTemplate(&d.Spec.Template)
}

// validateDeploymentSpec validates a deployment's spec.
func validateDeploymentSpec(spec *appsv1.DeploymentSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Replicas != nil {
		errs = append(errs, nonNegative(int64(*spec.Replicas), fldPath.Child("replicas"))...)
	}
	errs = append(errs, validateWorkloadSelector(spec.Selector, spec.Template.Labels, "deployment", fldPath)...)
	errs = append(errs, validatePodTemplate(&spec.Template, fldPath.Child("template"))...)
	errs = append(errs, validateDeploymentStrategy(&spec.Strategy, fldPath.Child("strategy"))...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	if p := spec.ProgressDeadlineSeconds; p != nil {
		errs = append(errs, nonNegative(int64(*p), fldPath.Child("progressDeadlineSeconds"))...)
		if *p <= spec.MinReadySeconds {
			errs = append(errs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), *p, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

// validateDeploymentStrategy checks the strategy type and rolling update
// parameters.
func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch s.Type {
	case "":
		errs = append(errs, field.Required(fldPath.Child("type"), ""))
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(fldPath.Child("rollingUpdate"), "may not be specified when strategy `type` is '"+string(appsv1.RecreateDeploymentStrategyType)+"'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		ru := s.RollingUpdate
		if ru == nil {
			errs = append(errs, field.Required(fldPath.Child("rollingUpdate"), "this should be defaulted and never be nil"))
			break
		}
		p := fldPath.Child("rollingUpdate")
		if ru.MaxUnavailable != nil {
			errs = append(errs, positiveIntOrPercent(*ru.MaxUnavailable, p.Child("maxUnavailable"))...)
			errs = append(errs, notMoreThan100Percent(*ru.MaxUnavailable, p.Child("maxUnavailable"))...)
		}
		if ru.MaxSurge != nil {
			errs = append(errs, positiveIntOrPercent(*ru.MaxSurge, p.Child("maxSurge"))...)
		}
		if isZeroIntOrPercent(ru.MaxUnavailable) && isZeroIntOrPercent(ru.MaxSurge) {
			errs = append(errs, field.Invalid(p.Child("maxUnavailable"), ru.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("type"), s.Type, supportedDeploymentStrategies))
	}
	return errs
}

// validateDeploymentStatus checks status counters.
func validateDeploymentStatus(s *appsv1.DeploymentStatus, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, c := range []struct {
		name string
		v    int32
	}{
		{"replicas", s.Replicas}, {"updatedReplicas", s.UpdatedReplicas},
		{"readyReplicas", s.ReadyReplicas}, {"availableReplicas", s.AvailableReplicas}, {"unavailableReplicas", s.UnavailableReplicas},
	} {
		errs = append(errs, nonNegative(int64(c.v), fldPath.Child(c.name))...)
	}
	errs = append(errs, nonNegative(s.ObservedGeneration, fldPath.Child("observedGeneration"))...)
	if s.AvailableReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), s.AvailableReplicas, "cannot be greater than status.replicas"))
	}
	if s.ReadyReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("readyReplicas"), s.ReadyReplicas, "cannot be greater than status.replicas"))
	}
	if s.AvailableReplicas > s.ReadyReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), s.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return errs
}
