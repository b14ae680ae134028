package registry

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Leases is coordination.k8s.io/v1 leases (node heartbeats, leader election).
func Leases() *Resource {
	return &Resource{
		GroupVersion:   coordinationv1.SchemeGroupVersion,
		Kind:           "Lease",
		Plural:         "leases",
		Singular:       "lease",
		Namespaced:     true,
		New:            func() runtime.Object { return &coordinationv1.Lease{} },
		NewList:        func() runtime.Object { return &coordinationv1.LeaseList{} },
		Validate:       func(obj runtime.Object) field.ErrorList { return validateLease(obj.(*coordinationv1.Lease)) },
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateLease(obj.(*coordinationv1.Lease)) },
		TableColumns: []metav1.TableColumnDefinition{
			col("Holder", "holderIdentity contains the identity of the holder of a current lease."),
			ageColumn,
		},
		TableRow: func(obj runtime.Object) []interface{} {
			l := obj.(*coordinationv1.Lease)
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return []interface{}{holder, age(l.CreationTimestamp)}
		},
	}
}

// validateLease checks the duration and transition count.
func validateLease(l *coordinationv1.Lease) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	if d := l.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(p.Child("leaseDurationSeconds"), *d, isNotPositiveErrorMsg))
	}
	if t := l.Spec.LeaseTransitions; t != nil {
		errs = append(errs, nonNegative(int64(*t), p.Child("leaseTransitions"))...)
	}
	if s := l.Spec.Strategy; s != nil && *s != coordinationv1.OldestEmulationVersion {
		errs = append(errs, field.NotSupported(p.Child("strategy"), *s, []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}))
	}
	return errs
}
