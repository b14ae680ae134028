package registry

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ServiceAccounts is core/v1 serviceaccounts.
func ServiceAccounts() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion,
		Kind:         "ServiceAccount",
		Plural:       "serviceaccounts",
		Singular:     "serviceaccount",
		ShortNames:   []string{"sa"},
		Namespaced:   true,
		New:          func() runtime.Object { return &corev1.ServiceAccount{} },
		NewList:      func() runtime.Object { return &corev1.ServiceAccountList{} },
		Validate:     func(obj runtime.Object) field.ErrorList { return validateServiceAccount(obj.(*corev1.ServiceAccount)) },
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList {
			return validateServiceAccount(obj.(*corev1.ServiceAccount))
		},
		TableColumns: []metav1.TableColumnDefinition{
			intCol("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
			ageColumn,
		},
		TableRow: func(obj runtime.Object) []interface{} {
			sa := obj.(*corev1.ServiceAccount)
			return []interface{}{int64(len(sa.Secrets)), age(sa.CreationTimestamp)}
		},
	}
}

// validateServiceAccount checks the referenced secrets are named.
func validateServiceAccount(sa *corev1.ServiceAccount) field.ErrorList {
	var errs field.ErrorList
	for i, s := range sa.Secrets {
		if s.Name == "" {
			errs = append(errs, field.Required(field.NewPath("secrets").Index(i).Child("name"), ""))
		}
	}
	for i, s := range sa.ImagePullSecrets {
		if s.Name == "" {
			errs = append(errs, field.Required(field.NewPath("imagePullSecrets").Index(i).Child("name"), ""))
		}
	}
	return errs
}
