package registry

import (
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// rbacName is upstream's ValidateRBACName: any valid path segment.
func rbacName(name string, prefix bool) []string { return path.IsValidPathSegmentName(name) }

// Roles is rbac.authorization.k8s.io/v1 roles.
func Roles() *Resource {
	return &Resource{
		GroupVersion: rbacv1.SchemeGroupVersion, Kind: "Role", Plural: "roles", Singular: "role",
		Namespaced: true, ValidateName: rbacName,
		New:            func() runtime.Object { return &rbacv1.Role{} },
		NewList:        func() runtime.Object { return &rbacv1.RoleList{} },
		Validate:       func(obj runtime.Object) field.ErrorList { return validateRules(obj.(*rbacv1.Role).Rules, true) },
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateRules(obj.(*rbacv1.Role).Rules, true) },
		TableColumns:   []metav1.TableColumnDefinition{createdAtColumn},
		TableRow: func(obj runtime.Object) []interface{} {
			return []interface{}{createdAt(obj.(*rbacv1.Role).CreationTimestamp)}
		},
	}
}

// ClusterRoles is rbac.authorization.k8s.io/v1 clusterroles.
func ClusterRoles() *Resource {
	return &Resource{
		GroupVersion: rbacv1.SchemeGroupVersion, Kind: "ClusterRole", Plural: "clusterroles", Singular: "clusterrole",
		ValidateName:   rbacName,
		New:            func() runtime.Object { return &rbacv1.ClusterRole{} },
		NewList:        func() runtime.Object { return &rbacv1.ClusterRoleList{} },
		Validate:       func(obj runtime.Object) field.ErrorList { return validateClusterRole(obj.(*rbacv1.ClusterRole)) },
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateClusterRole(obj.(*rbacv1.ClusterRole)) },
		TableColumns:   []metav1.TableColumnDefinition{createdAtColumn},
		TableRow: func(obj runtime.Object) []interface{} {
			return []interface{}{createdAt(obj.(*rbacv1.ClusterRole).CreationTimestamp)}
		},
	}
}

// RoleBindings is rbac.authorization.k8s.io/v1 rolebindings.
func RoleBindings() *Resource {
	return &Resource{
		GroupVersion: rbacv1.SchemeGroupVersion, Kind: "RoleBinding", Plural: "rolebindings", Singular: "rolebinding",
		Namespaced: true, ValidateName: rbacName,
		New:     func() runtime.Object { return &rbacv1.RoleBinding{} },
		NewList: func() runtime.Object { return &rbacv1.RoleBindingList{} },
		Default: func(obj runtime.Object) {
			b := obj.(*rbacv1.RoleBinding)
			defaultBinding(&b.RoleRef, b.Subjects)
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			b := obj.(*rbacv1.RoleBinding)
			return validateBinding(b.RoleRef, b.Subjects, true)
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			b, o := obj.(*rbacv1.RoleBinding), old.(*rbacv1.RoleBinding)
			return append(validateBinding(b.RoleRef, b.Subjects, true), roleRefUnchanged(b.RoleRef, o.RoleRef)...)
		},
		TableColumns: bindingColumns,
		TableRow: func(obj runtime.Object) []interface{} {
			b := obj.(*rbacv1.RoleBinding)
			return bindingRow(b.RoleRef, b.Subjects, b.CreationTimestamp)
		},
	}
}

// ClusterRoleBindings is rbac.authorization.k8s.io/v1 clusterrolebindings.
func ClusterRoleBindings() *Resource {
	return &Resource{
		GroupVersion: rbacv1.SchemeGroupVersion, Kind: "ClusterRoleBinding", Plural: "clusterrolebindings", Singular: "clusterrolebinding",
		ValidateName: rbacName,
		New:          func() runtime.Object { return &rbacv1.ClusterRoleBinding{} },
		NewList:      func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} },
		Default: func(obj runtime.Object) {
			b := obj.(*rbacv1.ClusterRoleBinding)
			defaultBinding(&b.RoleRef, b.Subjects)
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			b := obj.(*rbacv1.ClusterRoleBinding)
			return validateBinding(b.RoleRef, b.Subjects, false)
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			b, o := obj.(*rbacv1.ClusterRoleBinding), old.(*rbacv1.ClusterRoleBinding)
			return append(validateBinding(b.RoleRef, b.Subjects, false), roleRefUnchanged(b.RoleRef, o.RoleRef)...)
		},
		TableColumns: bindingColumns,
		TableRow: func(obj runtime.Object) []interface{} {
			b := obj.(*rbacv1.ClusterRoleBinding)
			return bindingRow(b.RoleRef, b.Subjects, b.CreationTimestamp)
		},
	}
}

// SelfSubjectAccessReviews is authorization.k8s.io/v1
// selfsubjectaccessreviews: create-only, answered by the server from its
// authorizer and never stored.
func SelfSubjectAccessReviews() *Resource {
	return &Resource{
		GroupVersion: authorizationv1.SchemeGroupVersion, Kind: "SelfSubjectAccessReview",
		Plural: "selfsubjectaccessreviews", Singular: "selfsubjectaccessreview",
		Verbs:   []string{"create"},
		New:     func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} },
		NewList: func() runtime.Object { return &metav1.List{} },
		Validate: func(obj runtime.Object) field.ErrorList {
			s := obj.(*authorizationv1.SelfSubjectAccessReview)
			return validateReviewSpec(s.Spec.ResourceAttributes, s.Spec.NonResourceAttributes)
		},
	}
}

// SelfSubjectRulesReviews is authorization.k8s.io/v1
// selfsubjectrulesreviews (kubectl auth can-i --list): create-only,
// answered by the server from its authorizer's rules and never stored.
func SelfSubjectRulesReviews() *Resource {
	return &Resource{
		GroupVersion: authorizationv1.SchemeGroupVersion, Kind: "SelfSubjectRulesReview",
		Plural: "selfsubjectrulesreviews", Singular: "selfsubjectrulesreview",
		Verbs:   []string{"create"},
		New:     func() runtime.Object { return &authorizationv1.SelfSubjectRulesReview{} },
		NewList: func() runtime.Object { return &metav1.List{} },
	}
}

// SubjectAccessReviews is authorization.k8s.io/v1 subjectaccessreviews:
// create-only, answered by the server from its authorizer and never stored.
func SubjectAccessReviews() *Resource {
	return &Resource{
		GroupVersion: authorizationv1.SchemeGroupVersion, Kind: "SubjectAccessReview",
		Plural: "subjectaccessreviews", Singular: "subjectaccessreview",
		Verbs:   []string{"create"},
		New:     func() runtime.Object { return &authorizationv1.SubjectAccessReview{} },
		NewList: func() runtime.Object { return &metav1.List{} },
		Validate: func(obj runtime.Object) field.ErrorList {
			s := obj.(*authorizationv1.SubjectAccessReview)
			errs := validateReviewSpec(s.Spec.ResourceAttributes, s.Spec.NonResourceAttributes)
			if s.Spec.User == "" && len(s.Spec.Groups) == 0 {
				errs = append(errs, field.Invalid(field.NewPath("spec", "user"), s.Spec.User, `at least one of user or group must be specified`))
			}
			return errs
		},
	}
}

// validateReviewSpec is upstream's check that exactly one kind of
// attributes is given.
func validateReviewSpec(res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) field.ErrorList {
	spec := field.NewPath("spec")
	switch {
	case res == nil && nonRes == nil:
		return field.ErrorList{field.Required(spec.Child("resourceAttributes"), `exactly one of nonResourceAttributes or resourceAttributes must be specified`)}
	case res != nil && nonRes != nil:
		return field.ErrorList{field.Invalid(spec.Child("nonResourceAttributes"), nonRes, `cannot be specified in combination with resourceAttributes`)}
	}
	return nil
}

var createdAtColumn = metav1.TableColumnDefinition{Name: "Created At", Type: "date", Description: ageDescription}

// createdAt renders the CREATED AT cell as upstream does: RFC 3339, UTC.
func createdAt(ts metav1.Time) string { return ts.UTC().Format(time.RFC3339) }

var bindingColumns = []metav1.TableColumnDefinition{
	col("Role", "RoleRef is the reference to the role this binding grants."),
	ageColumn,
	wide(col("Users", "Users in the binding")),
	wide(col("Groups", "Groups in the binding")),
	wide(col("ServiceAccounts", "ServiceAccounts in the binding")),
}

func bindingRow(ref rbacv1.RoleRef, subjects []rbacv1.Subject, created metav1.Time) []interface{} {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+"/"+s.Name)
		}
	}
	return []interface{}{ref.Kind + "/" + ref.Name, age(created),
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
}

func validateClusterRole(r *rbacv1.ClusterRole) field.ErrorList {
	errs := validateRules(r.Rules, false)
	if r.AggregationRule != nil {
		p := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(r.AggregationRule.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(p, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range r.AggregationRule.ClusterRoleSelectors {
			errs = append(errs, labelSelector(&r.AggregationRule.ClusterRoleSelectors[i], p.Index(i))...)
		}
	}
	return errs
}

// validateRules is upstream's ValidatePolicyRule over a role's rules.
func validateRules(rules []rbacv1.PolicyRule, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	for i, rule := range rules {
		p := field.NewPath("rules").Index(i)
		if len(rule.Verbs) == 0 {
			errs = append(errs, field.Required(p.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(rule.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), rule.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(rule.APIGroups) > 0 || len(rule.Resources) > 0 || len(rule.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), rule.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(rule.APIGroups) == 0 {
			errs = append(errs, field.Required(p.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(rule.Resources) == 0 {
			errs = append(errs, field.Required(p.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

// validateBinding is upstream's ValidateRoleBindingSubject and roleRef checks.
func validateBinding(ref rbacv1.RoleRef, subjects []rbacv1.Subject, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	refPath := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(refPath.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kinds := []string{"ClusterRole"}
	if namespaced {
		kinds = []string{"Role", "ClusterRole"}
	}
	okKind := false
	for _, k := range kinds {
		okKind = okKind || ref.Kind == k
	}
	if !okKind {
		errs = append(errs, field.NotSupported(refPath.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(refPath.Child("name"), ""))
	} else {
		errs = append(errs, invalidEach(refPath.Child("name"), ref.Name, rbacName(ref.Name, false))...)
	}
	for i, s := range subjects {
		p := field.NewPath("subjects").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.Name != "" {
				errs = append(errs, invalidEach(p.Child("name"), s.Name, path.IsValidPathSegmentName(s.Name))...)
			}
			if s.APIGroup != "" {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{""}))
			}
			if !namespaced && s.Namespace == "" {
				errs = append(errs, field.Required(p.Child("namespace"), ""))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			if s.APIGroup != rbacv1.GroupName {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
		}
	}
	return errs
}

// defaultBinding is upstream's v1 defaulting: the roleRef's apiGroup, and
// users' and groups' apiGroup, default to rbac.authorization.k8s.io.
func defaultBinding(ref *rbacv1.RoleRef, subjects []rbacv1.Subject) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
	for i := range subjects {
		if subjects[i].APIGroup == "" && (subjects[i].Kind == rbacv1.UserKind || subjects[i].Kind == rbacv1.GroupKind) {
			subjects[i].APIGroup = rbacv1.GroupName
		}
	}
}

func roleRefUnchanged(ref, old rbacv1.RoleRef) field.ErrorList {
	if ref != old {
		return field.ErrorList{field.Invalid(field.NewPath("roleRef"), ref, "cannot change roleRef")}
	}
	return nil
}
