package clusterroleaggregation

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/authz"
	"github.com/drover/drover/internal/testenv"
)

func TestUpdates(t *testing.T) {
	roles, _ := authz.BootstrapPolicy()
	var all []*rbacv1.ClusterRole
	for i := range roles {
		all = append(all, &roles[i])
	}
	// The bootstrap roles come already flattened: nothing to do.
	if u := Updates(all); len(u) != 0 {
		t.Errorf("bootstrap policy needs updates: %v", names(u))
	}
	// A new role labelled for view changes view, edit and admin.
	all = append(all, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "widgets", Labels: map[string]string{authz.AggregateToView: "true"}},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{"example.com"}, Resources: []string{"widgets"}}}})
	u := Updates(all)
	if got := names(u); !slices.Equal(got, []string{"admin", "edit", "view"}) {
		t.Fatalf("updated %v, want admin, edit, view", got)
	}
	last := u[2].Rules[len(u[2].Rules)-1]
	if last.Resources[0] != "widgets" {
		t.Errorf("view's last rule = %+v", last)
	}
}

func names(roles []*rbacv1.ClusterRole) []string {
	var out []string
	for _, r := range roles {
		out = append(out, r.Name)
	}
	return out
}

func TestRunAggregatesIntoStoredRoles(t *testing.T) {
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := authz.EnsureBootstrap(ctx, env.Kube); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, env.Kube, testenv.Logger(t)) }()
	if _, err := env.Kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets", Labels: map[string]string{authz.AggregateToEdit: "true"}},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"create"}, APIGroups: []string{"example.com"}, Resources: []string{"widgets"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	has := func(name string) (bool, error) {
		r, err := env.Kube.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, rule := range r.Rules {
			if slices.Contains(rule.Resources, "widgets") {
				return true, nil
			}
		}
		return false, nil
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, n := range []string{"edit", "admin"} {
			if ok, err := has(n); !ok {
				return fmt.Errorf("%s has no widgets rule (%v)", n, err)
			}
		}
		return nil
	})
	if ok, _ := has("view"); ok {
		t.Error("view took an edit-only role")
	}
	// Dropping the label takes the rules away again.
	if err := env.Kube.RbacV1().ClusterRoles().Delete(ctx, "widgets", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if ok, _ := has("admin"); ok {
			return fmt.Errorf("admin still has widgets")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
