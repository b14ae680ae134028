package registry

import (
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestRoleRules(t *testing.T) {
	good := []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}
	requireNoErrors(t, create(Roles(), &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Rules: good}))

	errs := create(Roles(), &rbacv1.Role{Rules: []rbacv1.PolicyRule{
		{},
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}},
	}})
	requireError(t, errs, "rules[0].verbs", field.ErrorTypeRequired)
	requireError(t, errs, "rules[0].apiGroups", field.ErrorTypeRequired)
	requireError(t, errs, "rules[0].resources", field.ErrorTypeRequired)
	requireMessage(t, errs, "namespaced rules cannot apply to non-resource URLs")

	// A cluster role may grant non-resource URLs, but not mixed with resources.
	requireNoErrors(t, create(ClusterRoles(), &rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}}}))
	errs = create(ClusterRoles(), &rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/x"}, Resources: []string{"pods"}}}})
	requireMessage(t, errs, "rules cannot apply to both regular resources and non-resource URLs")
	errs = create(ClusterRoles(), &rbacv1.ClusterRole{AggregationRule: &rbacv1.AggregationRule{}})
	requireError(t, errs, "aggregationRule.clusterRoleSelectors", field.ErrorTypeRequired)

	// RBAC names are path segments: colons are fine, slashes are not.
	if msgs := ClusterRoles().ValidateName("system:discovery", false); len(msgs) != 0 {
		t.Errorf("system:discovery refused: %v", msgs)
	}
	if msgs := ClusterRoles().ValidateName("a/b", false); len(msgs) == 0 {
		t.Error("a/b accepted")
	}
}

func TestRoleTables(t *testing.T) {
	created := ago(2 * time.Hour)
	if row := cells(t, ClusterRoles(), &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: created}}); row[0] != "2026-01-02T01:04:05Z" {
		t.Errorf("CREATED AT = %v", row)
	}
	if c := ClusterRoles().TableColumns; len(c) != 1 || c[0].Name != "Created At" {
		t.Errorf("clusterrole columns = %v", c)
	}
	b := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns", CreationTimestamp: created},
		RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, Name: "alice"}, {Kind: rbacv1.UserKind, Name: "bob"},
			{Kind: rbacv1.GroupKind, Name: "devs"},
			{Kind: rbacv1.ServiceAccountKind, Name: "sa", Namespace: "ns"},
		},
	}
	requireNoErrors(t, create(RoleBindings(), b))
	row := cells(t, RoleBindings(), b)
	want := []string{"ClusterRole/view", "120m", "alice, bob", "devs", "ns/sa"}
	for i, w := range want {
		if row[i] != w {
			t.Errorf("cell %d = %q, want %q (row %v)", i, row[i], w, row)
		}
	}
}

func TestBindingValidation(t *testing.T) {
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "b"},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: ""},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Name: "sa"},
			{Kind: "Robot", Name: "r"},
			{Kind: rbacv1.UserKind},
		},
	}
	errs := create(ClusterRoleBindings(), b)
	if b.RoleRef.APIGroup != rbacv1.GroupName || b.Subjects[2].APIGroup != rbacv1.GroupName {
		t.Errorf("apiGroups not defaulted: %+v", b)
	}
	requireError(t, errs, "roleRef.kind", field.ErrorTypeNotSupported)
	requireError(t, errs, "roleRef.name", field.ErrorTypeRequired)
	requireError(t, errs, "subjects[0].namespace", field.ErrorTypeRequired)
	requireError(t, errs, "subjects[1].kind", field.ErrorTypeNotSupported)
	requireError(t, errs, "subjects[2].name", field.ErrorTypeRequired)

	// A role binding may refer to a Role; its service accounts default to its namespace.
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"},
		RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "r"}, Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "sa"}}}
	requireNoErrors(t, create(RoleBindings(), rb))

	changed := rb.DeepCopy()
	changed.RoleRef.Name = "other"
	requireMessage(t, update(RoleBindings(), changed, rb), "cannot change roleRef")
}

func TestAccessReviewValidation(t *testing.T) {
	requireError(t, create(SelfSubjectAccessReviews(), &authorizationv1.SelfSubjectAccessReview{}), "spec.resourceAttributes", field.ErrorTypeRequired)
	both := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{}, NonResourceAttributes: &authorizationv1.NonResourceAttributes{}}}
	requireError(t, create(SelfSubjectAccessReviews(), both), "spec.nonResourceAttributes", field.ErrorTypeInvalid)
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{}}}
	requireMessage(t, create(SubjectAccessReviews(), sar), "at least one of user or group must be specified")
	sar.Spec.User = "alice"
	requireNoErrors(t, create(SubjectAccessReviews(), sar))
}
