package registry

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Secrets is core/v1 secrets.
func Secrets() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion,
		Kind:         "Secret",
		Plural:       "secrets",
		Singular:     "secret",
		Namespaced:   true,
		New:          func() runtime.Object { return &corev1.Secret{} },
		NewList:      func() runtime.Object { return &corev1.SecretList{} },
		Default: func(obj runtime.Object) {
			s := obj.(*corev1.Secret)
			if s.Type == "" {
				s.Type = corev1.SecretTypeOpaque
			}
			// stringData is write-only: it merges into data, winning on
			// conflicts, as upstream's conversion does.
			for k, v := range s.StringData {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				s.Data[k] = []byte(v)
			}
			s.StringData = nil
		},
		Validate: func(obj runtime.Object) field.ErrorList { return validateSecret(obj.(*corev1.Secret)) },
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			s, o := obj.(*corev1.Secret), old.(*corev1.Secret)
			errs := validateSecret(s)
			errs = append(errs, immutable(s.Type, o.Type, field.NewPath("type"))...)
			if o.Immutable != nil && *o.Immutable {
				if s.Immutable == nil || !*s.Immutable {
					errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableDataMsg))
				}
				if !semanticEqual(s.Data, o.Data) {
					errs = append(errs, field.Forbidden(field.NewPath("data"), immutableDataMsg))
				}
			}
			return errs
		},
		TableColumns: []metav1.TableColumnDefinition{
			col("Type", "The type of the secret"),
			intCol("Data", "The number of entries in the secret"),
			ageColumn,
		},
		TableRow: func(obj runtime.Object) []interface{} {
			s := obj.(*corev1.Secret)
			return []interface{}{string(s.Type), int64(len(s.Data)), age(s.CreationTimestamp)}
		},
		SelectableFields: func(obj runtime.Object) fields.Set {
			return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
		},
	}
}

// validateSecret checks keys, size and what each well-known type requires.
func validateSecret(s *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	dataPath := field.NewPath("data")
	size := 0
	for _, k := range sortedKeys(s.Data) {
		size += len(s.Data[k])
		errs = append(errs, invalidEach(dataPath.Key(k), k, validation.IsConfigMapKey(k))...)
	}
	if size > maxDataSize {
		errs = append(errs, field.TooLong(dataPath, "", maxDataSize))
	}
	requireKey := func(key string) {
		if _, ok := s.Data[key]; !ok {
			errs = append(errs, field.Required(dataPath.Key(key), ""))
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		requireKey(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		requireKey(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		_, user := s.Data[corev1.BasicAuthUsernameKey]
		_, pass := s.Data[corev1.BasicAuthPasswordKey]
		if !user && !pass {
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""))
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		requireKey(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		requireKey(corev1.TLSCertKey)
		requireKey(corev1.TLSPrivateKeyKey)
	case "":
		errs = append(errs, field.Required(field.NewPath("type"), ""))
	}
	return errs
}
