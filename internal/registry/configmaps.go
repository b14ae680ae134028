package registry

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxDataSize is the most a ConfigMap's or Secret's data may hold (1 MiB).
const maxDataSize = 1 * 1024 * 1024

// immutableDataMsg is upstream's error for changing immutable data.
const immutableDataMsg = "field is immutable when `immutable` is set"

// ConfigMaps is core/v1 configmaps.
func ConfigMaps() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion,
		Kind:         "ConfigMap",
		Plural:       "configmaps",
		Singular:     "configmap",
		ShortNames:   []string{"cm"},
		Namespaced:   true,
		New:          func() runtime.Object { return &corev1.ConfigMap{} },
		NewList:      func() runtime.Object { return &corev1.ConfigMapList{} },
		Validate:     func(obj runtime.Object) field.ErrorList { return validateConfigMap(obj.(*corev1.ConfigMap)) },
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			cm, o := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
			errs := validateConfigMap(cm)
			if o.Immutable != nil && *o.Immutable {
				if cm.Immutable == nil || !*cm.Immutable {
					errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableDataMsg))
				}
				if !semanticEqual(cm.Data, o.Data) {
					errs = append(errs, field.Forbidden(field.NewPath("data"), immutableDataMsg))
				}
				if !semanticEqual(cm.BinaryData, o.BinaryData) {
					errs = append(errs, field.Forbidden(field.NewPath("binaryData"), immutableDataMsg))
				}
			}
			return errs
		},
		TableColumns: []metav1.TableColumnDefinition{
			intCol("Data", "Data contains the configuration data."),
			ageColumn,
		},
		TableRow: func(obj runtime.Object) []interface{} {
			cm := obj.(*corev1.ConfigMap)
			return []interface{}{int64(len(cm.Data) + len(cm.BinaryData)), age(cm.CreationTimestamp)}
		},
	}
}

// validateConfigMap checks keys (valid, not in both data and binaryData)
// and the total size.
func validateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for _, k := range sortedKeys(cm.Data) {
		size += len(k) + len(cm.Data[k])
		errs = append(errs, invalidEach(field.NewPath("data").Key(k), k, validation.IsConfigMapKey(k))...)
		if _, ok := cm.BinaryData[k]; ok {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, "duplicate of key present in binaryData"))
		}
	}
	for _, k := range sortedKeys(cm.BinaryData) {
		size += len(k) + len(cm.BinaryData[k])
		errs = append(errs, invalidEach(field.NewPath("binaryData").Key(k), k, validation.IsConfigMapKey(k))...)
	}
	if size > maxDataSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxDataSize))
	}
	return errs
}

// sortedKeys returns a map's keys in order, for stable error lists.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
