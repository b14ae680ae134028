package registry

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ReplicaSets is apps/v1 replicasets.
func ReplicaSets() *Resource {
	return &Resource{
		GroupVersion:      appsv1.SchemeGroupVersion,
		Kind:              "ReplicaSet",
		Plural:            "replicasets",
		Singular:          "replicaset",
		ShortNames:        []string{"rs"},
		Categories:        []string{"all"},
		Namespaced:        true,
		New:               func() runtime.Object { return &appsv1.ReplicaSet{} },
		NewList:           func() runtime.Object { return &appsv1.ReplicaSetList{} },
		StatusSubresource: true,
		Scale: &ScaleAccess{
			Get: func(obj runtime.Object) (int32, int32, string) {
				rs := obj.(*appsv1.ReplicaSet)
				return int32Value(rs.Spec.Replicas, 1), rs.Status.Replicas, scaleSelector(rs.Spec.Selector)
			},
			Set: func(obj runtime.Object, n int32) { obj.(*appsv1.ReplicaSet).Spec.Replicas = &n },
		},
		Default: func(obj runtime.Object) {
			rs := obj.(*appsv1.ReplicaSet)
			if rs.Spec.Replicas == nil {
				rs.Spec.Replicas = ptrTo(int32(1))
			}
			defaultPodTemplate(&rs.Spec.Template)
		},
		PrepareForCreate: func(obj runtime.Object) {
			rs := obj.(*appsv1.ReplicaSet)
			rs.Status = appsv1.ReplicaSetStatus{}
			rs.Generation = 1
		},
		PrepareForUpdate: func(obj, old runtime.Object) {
			rs, o := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
			bumpGeneration(&rs.ObjectMeta, &o.ObjectMeta, &rs.Spec, &o.Spec)
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			return validateReplicaSetSpec(&obj.(*appsv1.ReplicaSet).Spec, field.NewPath("spec"))
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			rs, o := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
			errs := validateReplicaSetSpec(&rs.Spec, field.NewPath("spec"))
			return append(errs, immutable(rs.Spec.Selector, o.Spec.Selector, field.NewPath("spec", "selector"))...)
		},
		ValidateStatus: func(obj, _ runtime.Object) field.ErrorList {
			return validateReplicaSetStatus(&obj.(*appsv1.ReplicaSet).Status, field.NewPath("status"))
		},
		TableColumns: []metav1.TableColumnDefinition{
			intCol("Desired", "Replicas is the number of desired pods."),
			intCol("Current", "Replicas is the most recently observed number of replicas."),
			intCol("Ready", "The number of ready replicas for this replica set."),
			ageColumn,
			wide(col("Containers", "Names of each container in the template.")),
			wide(col("Images", "Images referenced by each container in the template.")),
			wide(col("Selector", "Selector is a label query over pods that should match the replica count.")),
		},
		TableRow: func(obj runtime.Object) []interface{} {
			rs := obj.(*appsv1.ReplicaSet)
			names, images := containerCells(rs.Spec.Template.Spec.Containers)
			return []interface{}{
				int64(int32Value(rs.Spec.Replicas, 1)), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
				age(rs.CreationTimestamp), names, images, selectorCell(rs.Spec.Selector),
			}
		},
		SelectableFields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.replicas": strconv.Itoa(int(obj.(*appsv1.ReplicaSet).Status.Replicas))}
		},
	}
}

// validateReplicaSetSpec validates a replica set's spec.
func validateReplicaSetSpec(spec *appsv1.ReplicaSetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Replicas != nil {
		errs = append(errs, nonNegative(int64(*spec.Replicas), fldPath.Child("replicas"))...)
	}
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	errs = append(errs, validateWorkloadSelector(spec.Selector, spec.Template.Labels, "replicaset", fldPath)...)
	errs = append(errs, validatePodTemplate(&spec.Template, fldPath.Child("template"))...)
	return errs
}

// validateReplicaSetStatus checks status counters.
func validateReplicaSetStatus(s *appsv1.ReplicaSetStatus, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, nonNegative(int64(s.Replicas), fldPath.Child("replicas"))...)
	errs = append(errs, nonNegative(int64(s.FullyLabeledReplicas), fldPath.Child("fullyLabeledReplicas"))...)
	errs = append(errs, nonNegative(int64(s.ReadyReplicas), fldPath.Child("readyReplicas"))...)
	errs = append(errs, nonNegative(int64(s.AvailableReplicas), fldPath.Child("availableReplicas"))...)
	errs = append(errs, nonNegative(s.ObservedGeneration, fldPath.Child("observedGeneration"))...)
	if s.ReadyReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("readyReplicas"), s.ReadyReplicas, "cannot be greater than status.replicas"))
	}
	if s.AvailableReplicas > s.ReadyReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), s.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return errs
}
