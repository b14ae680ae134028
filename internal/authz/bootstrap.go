package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Labels and annotations upstream puts on its default policy.
const (
	AggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	AggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	AggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
	autoUpdate       = "rbac.authorization.kubernetes.io/autoupdate"
	bootstrapping    = "kubernetes.io/bootstrapping"
)

var (
	read      = []string{"get", "list", "watch"}
	write     = []string{"create", "delete", "deletecollection", "patch", "update"}
	readWrite = append(append([]string(nil), read...), write...)
)

func rule(verbs []string, group string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: []string{group}, Resources: resources}
}

func clusterRole(name string, labels map[string]string, rules ...rbacv1.PolicyRule) rbacv1.ClusterRole {
	l := map[string]string{bootstrapping: "rbac-defaults"}
	for k, v := range labels {
		l[k] = v
	}
	return rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{autoUpdate: "true"}},
		Rules:      rules,
	}
}

func aggregating(role rbacv1.ClusterRole, label string) rbacv1.ClusterRole {
	role.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{label: "true"}}}}
	return role
}

func clusterRoleBinding(name, role string, groups ...string) rbacv1.ClusterRoleBinding {
	b := rbacv1.ClusterRoleBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{bootstrapping: "rbac-defaults"},
			Annotations: map[string]string{autoUpdate: "true"}},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
	}
	for _, g := range groups {
		b.Subjects = append(b.Subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: g})
	}
	return b
}

// BootstrapPolicy returns upstream's default ClusterRoles (cluster-admin,
// admin, edit, view and the system:aggregate-to-* roles they aggregate,
// system:discovery, system:public-info-viewer, system:basic-user) and
// ClusterRoleBindings (cluster-admin to system:masters; discovery,
// public-info-viewer and basic-user to system:authenticated). admin, edit
// and view carry upstream's aggregationRules and, already flattened, the
// rules they aggregate. Node identities need no role: the node authorizer
// covers them.
func BootstrapPolicy() ([]rbacv1.ClusterRole, []rbacv1.ClusterRoleBinding) {
	view := clusterRole("system:aggregate-to-view", map[string]string{AggregateToView: "true"},
		rule(read, "", "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
			"services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
		rule(read, "", "limitranges", "resourcequotas", "bindings", "events",
			"pods/status", "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"),
		rule(read, "", "namespaces"),
		rule(read, "discovery.k8s.io", "endpointslices"),
		rule(read, "apps", "controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
			"daemonsets", "daemonsets/status", "deployments", "deployments/status", "deployments/scale",
			"replicasets", "replicasets/status", "replicasets/scale"),
		rule(read, "autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
		rule(read, "batch", "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
		rule(read, "policy", "poddisruptionbudgets", "poddisruptionbudgets/status"),
		rule(read, "networking.k8s.io", "ingresses", "ingresses/status", "networkpolicies"),
	)
	edit := clusterRole("system:aggregate-to-edit", map[string]string{AggregateToEdit: "true"},
		rule(read, "", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
		rule([]string{"impersonate"}, "", "serviceaccounts"),
		rule(write, "", "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
		rule([]string{"create"}, "", "pods/eviction"),
		rule(write, "", "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale",
			"secrets", "serviceaccounts", "services", "services/proxy"),
		rule([]string{"create"}, "", "serviceaccounts/token"),
		rule(write, "apps", "daemonsets", "deployments", "deployments/rollback", "deployments/scale",
			"replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"),
		rule(write, "autoscaling", "horizontalpodautoscalers"),
		rule(write, "batch", "cronjobs", "jobs"),
		rule(write, "networking.k8s.io", "ingresses", "networkpolicies"),
		rule(write, "policy", "poddisruptionbudgets"),
		rule(readWrite, "coordination.k8s.io", "leases"),
	)
	admin := clusterRole("system:aggregate-to-admin", map[string]string{AggregateToAdmin: "true"},
		rule([]string{"create"}, "authorization.k8s.io", "localsubjectaccessreviews"),
		rule(readWrite, "rbac.authorization.k8s.io", "rolebindings", "roles"),
	)
	roles := []rbacv1.ClusterRole{
		clusterRole("cluster-admin", nil,
			rbacv1.PolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
			rbacv1.PolicyRule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}),
		aggregating(clusterRole("admin", nil), AggregateToAdmin),
		aggregating(clusterRole("edit", map[string]string{AggregateToAdmin: "true"}), AggregateToEdit),
		aggregating(clusterRole("view", map[string]string{AggregateToEdit: "true"}), AggregateToView),
		admin, edit, view,
		clusterRole("system:discovery", nil, rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{
			"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"}}),
		clusterRole("system:public-info-viewer", nil, rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{
			"/healthz", "/livez", "/readyz", "/version", "/version/"}}),
		clusterRole("system:basic-user", nil,
			rule([]string{"create"}, "authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			rule([]string{"create"}, "authentication.k8s.io", "selfsubjectreviews")),
	}
	// Flatten as the aggregation controller would, roles taken in name
	// order, so that it finds nothing to change.
	byName := make([]*rbacv1.ClusterRole, len(roles))
	for i := range roles {
		byName[i] = &roles[i]
	}
	slices.SortFunc(byName, func(a, b *rbacv1.ClusterRole) int { return strings.Compare(a.Name, b.Name) })
	for i := range roles {
		if roles[i].AggregationRule != nil {
			roles[i].Rules = AggregatedRules(&roles[i], byName)
		}
	}
	bindings := []rbacv1.ClusterRoleBinding{
		clusterRoleBinding("cluster-admin", "cluster-admin", MastersGroup),
		clusterRoleBinding("system:discovery", "system:discovery", AuthenticatedGroup),
		clusterRoleBinding("system:public-info-viewer", "system:public-info-viewer", AuthenticatedGroup, UnauthenticatedGroup),
		clusterRoleBinding("system:basic-user", "system:basic-user", AuthenticatedGroup),
	}
	return roles, bindings
}

// EnsureBootstrap creates the roles and bindings of BootstrapPolicy that do
// not exist yet, through client (an identity allowed to: the admin's).
// Existing objects are left as they are, so an administrator's changes
// stay. It retries errors that may pass until ctx ends or a minute passes.
func EnsureBootstrap(ctx context.Context, client kubernetes.Interface) error {
	roles, bindings := BootstrapPolicy()
	create := func(what string, fn func(context.Context) error) error {
		var last error
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			err := fn(ctx)
			switch {
			case err == nil, apierrors.IsAlreadyExists(err):
				return true, nil
			case apierrors.IsInvalid(err), apierrors.IsForbidden(err), apierrors.IsBadRequest(err), apierrors.IsNotFound(err):
				return false, err
			}
			last = err
			return false, nil
		})
		if err != nil {
			if last != nil && ctx.Err() == nil {
				err = last
			}
			return fmt.Errorf("authz: create %s: %w", what, err)
		}
		return nil
	}
	for i := range roles {
		r := &roles[i]
		if err := create("clusterrole "+r.Name, func(ctx context.Context) error {
			_, err := client.RbacV1().ClusterRoles().Create(ctx, r, metav1.CreateOptions{})
			return err
		}); err != nil {
			return err
		}
	}
	for i := range bindings {
		b := &bindings[i]
		if err := create("clusterrolebinding "+b.Name, func(ctx context.Context) error {
			_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{})
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}
