package registry

import (
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// namespaceNameLabel is the label upstream puts on every namespace so
// namespaceSelectors can pick namespaces by name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

var supportedNamespacePhases = []corev1.NamespacePhase{corev1.NamespaceActive, corev1.NamespaceTerminating}

// Namespaces is core/v1 namespaces. The server handles namespaces/finalize.
func Namespaces() *Resource {
	return &Resource{
		GroupVersion:      corev1.SchemeGroupVersion,
		Kind:              "Namespace",
		Plural:            "namespaces",
		Singular:          "namespace",
		ShortNames:        []string{"ns"},
		New:               func() runtime.Object { return &corev1.Namespace{} },
		NewList:           func() runtime.Object { return &corev1.NamespaceList{} },
		StatusSubresource: true,
		Default: func(obj runtime.Object) {
			ns := obj.(*corev1.Namespace)
			if ns.Status.Phase == "" {
				ns.Status.Phase = corev1.NamespaceActive
			}
			if ns.Name != "" {
				if ns.Labels == nil {
					ns.Labels = map[string]string{}
				}
				ns.Labels[namespaceNameLabel] = ns.Name
			}
		},
		PrepareForCreate: func(obj runtime.Object) {
			ns := obj.(*corev1.Namespace)
			ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
			if ns.Name != "" {
				if ns.Labels == nil {
					ns.Labels = map[string]string{}
				}
				ns.Labels[namespaceNameLabel] = ns.Name
			}
			if !contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
				ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
			}
		},
		PrepareForUpdate: func(obj, old runtime.Object) {
			// spec.finalizers change only through /finalize.
			obj.(*corev1.Namespace).Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
		},
		Validate: func(obj runtime.Object) field.ErrorList { return validateNamespace(obj.(*corev1.Namespace)) },
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList {
			return validateNamespace(obj.(*corev1.Namespace))
		},
		ValidateStatus: func(obj, old runtime.Object) field.ErrorList {
			ns, o := obj.(*corev1.Namespace), old.(*corev1.Namespace)
			var errs field.ErrorList
			p := field.NewPath("status", "phase")
			if !contains(supportedNamespacePhases, ns.Status.Phase) {
				errs = append(errs, field.NotSupported(p, ns.Status.Phase, supportedNamespacePhases))
			}
			if o.DeletionTimestamp == nil && ns.Status.Phase != corev1.NamespaceActive {
				errs = append(errs, field.Invalid(p, ns.Status.Phase, "may only be 'Active' if `deletionTimestamp` is empty"))
			}
			if o.DeletionTimestamp != nil && ns.Status.Phase != corev1.NamespaceTerminating {
				errs = append(errs, field.Invalid(p, ns.Status.Phase, "may only be 'Terminating' if `deletionTimestamp` is not empty"))
			}
			return errs
		},
		TableColumns: []metav1.TableColumnDefinition{
			col("Status", "The status of the namespace"),
			ageColumn,
		},
		TableRow: func(obj runtime.Object) []interface{} {
			ns := obj.(*corev1.Namespace)
			return []interface{}{string(ns.Status.Phase), age(ns.CreationTimestamp)}
		},
		SelectableFields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
		},
	}
}

// validateNamespace checks the name is a DNS label and the finalizers.
func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	errs := nameIs(apivalidation.ValidateNamespaceName, &ns.ObjectMeta)
	for i, f := range ns.Spec.Finalizers {
		errs = append(errs, apivalidation.ValidateFinalizerName(string(f), field.NewPath("spec", "finalizers").Index(i))...)
	}
	return errs
}

// ValidateNamespaceFinalize checks a namespaces/finalize write (where only
// spec.finalizers may change): each must be a valid finalizer name.
func ValidateNamespaceFinalize(ns *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	for i, f := range ns.Spec.Finalizers {
		errs = append(errs, apivalidation.ValidateFinalizerName(string(f), field.NewPath("spec", "finalizers").Index(i))...)
	}
	return errs
}
