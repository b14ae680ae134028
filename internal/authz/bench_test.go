package authz

import (
	"context"
	"fmt"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/auth"
)

// BenchmarkRBACAuthorize measures one decision for a user bound to the
// aggregated view role in a namespace, among 100 other bindings.
func BenchmarkRBACAuthorize(b *testing.B) {
	roles, bindings := BootstrapPolicy()
	s := &Static{}
	for i := range roles {
		s.ClusterRoles = append(s.ClusterRoles, &roles[i])
	}
	for i := range bindings {
		s.ClusterRoleBindings = append(s.ClusterRoleBindings, &bindings[i])
	}
	for i := 0; i < 100; i++ {
		s.RoleBindings = append(s.RoleBindings, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("b", i), Namespace: "team"},
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "edit"}, Subjects: []rbacv1.Subject{{Kind: "User", Name: fmt.Sprint("u", i)}}})
	}
	s.RoleBindings = append(s.RoleBindings, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: "team"},
		RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"}, Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}})
	z := Union(Groups(MastersGroup), NewRBAC(s))
	a := res("list", "apps", "deployments", "", "team", "")
	a.User = auth.User{Name: "alice", Groups: []string{AuthenticatedGroup}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, _, _ := z.Authorize(ctx, a); d != DecisionAllow {
			b.Fatal(d)
		}
	}
}
