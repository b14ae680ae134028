package registry

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var supportedUnhealthyPodEvictionPolicies = []policyv1.UnhealthyPodEvictionPolicyType{policyv1.IfHealthyBudget, policyv1.AlwaysAllow}

// PodDisruptionBudgets is policy/v1 poddisruptionbudgets.
func PodDisruptionBudgets() *Resource {
	return &Resource{
		GroupVersion:      policyv1.SchemeGroupVersion,
		Kind:              "PodDisruptionBudget",
		Plural:            "poddisruptionbudgets",
		Singular:          "poddisruptionbudget",
		ShortNames:        []string{"pdb"},
		Namespaced:        true,
		New:               func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
		NewList:           func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
		StatusSubresource: true,
		PrepareForCreate: func(obj runtime.Object) {
			pdb := obj.(*policyv1.PodDisruptionBudget)
			pdb.Status = policyv1.PodDisruptionBudgetStatus{}
			pdb.Generation = 1
		},
		PrepareForUpdate: func(obj, old runtime.Object) {
			p, o := obj.(*policyv1.PodDisruptionBudget), old.(*policyv1.PodDisruptionBudget)
			bumpGeneration(&p.ObjectMeta, &o.ObjectMeta, &p.Spec, &o.Spec)
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			return validatePDBSpec(&obj.(*policyv1.PodDisruptionBudget).Spec, field.NewPath("spec"))
		},
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList {
			return validatePDBSpec(&obj.(*policyv1.PodDisruptionBudget).Spec, field.NewPath("spec"))
		},
		ValidateStatus: func(obj, _ runtime.Object) field.ErrorList {
			s := &obj.(*policyv1.PodDisruptionBudget).Status
			p := field.NewPath("status")
			errs := nonNegative(int64(s.DisruptionsAllowed), p.Child("disruptionsAllowed"))
			errs = append(errs, nonNegative(int64(s.CurrentHealthy), p.Child("currentHealthy"))...)
			errs = append(errs, nonNegative(int64(s.DesiredHealthy), p.Child("desiredHealthy"))...)
			return append(errs, nonNegative(int64(s.ExpectedPods), p.Child("expectedPods"))...)
		},
		TableColumns: []metav1.TableColumnDefinition{
			col("Min Available", "The minimum number of pods that must be available simultaneously. This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
			col("Max Unavailable", "The maximum number of pods that may be unavailable simultaneously. This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
			intCol("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time."),
			ageColumn,
		},
		TableRow: func(obj runtime.Object) []interface{} {
			pdb := obj.(*policyv1.PodDisruptionBudget)
			cell := func(v *intstr.IntOrString) string {
				if v == nil {
					return "N/A"
				}
				return v.String()
			}
			return []interface{}{cell(pdb.Spec.MinAvailable), cell(pdb.Spec.MaxUnavailable), int64(pdb.Status.DisruptionsAllowed), age(pdb.CreationTimestamp)}
		},
	}
}

// validatePDBSpec checks minAvailable/maxUnavailable (at most one; each a
// non-negative count or a percentage up to 100%), the selector and the
// unhealthy pod eviction policy.
func validatePDBSpec(s *policyv1.PodDisruptionBudgetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.MinAvailable != nil && s.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(fldPath, s, "minAvailable and maxUnavailable cannot be both set"))
	}
	if v := s.MinAvailable; v != nil {
		errs = append(errs, positiveIntOrPercent(*v, fldPath.Child("minAvailable"))...)
		errs = append(errs, notMoreThan100Percent(*v, fldPath.Child("minAvailable"))...)
	}
	if v := s.MaxUnavailable; v != nil {
		errs = append(errs, positiveIntOrPercent(*v, fldPath.Child("maxUnavailable"))...)
		errs = append(errs, notMoreThan100Percent(*v, fldPath.Child("maxUnavailable"))...)
	}
	errs = append(errs, labelSelector(s.Selector, fldPath.Child("selector"))...)
	if p := s.UnhealthyPodEvictionPolicy; p != nil && !contains(supportedUnhealthyPodEvictionPolicies, *p) {
		errs = append(errs, field.NotSupported(fldPath.Child("unhealthyPodEvictionPolicy"), *p, supportedUnhealthyPodEvictionPolicies))
	}
	return errs
}
