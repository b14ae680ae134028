package authz

import (
	"context"
	"fmt"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/drover/drover/internal/auth"
)

// Admission checks what the authorizer cannot see in a URL: the object
// being written. The API server calls Admit with each object it is about
// to store (created, updated or patched, after validation), on behalf of
// the authenticated user; an error refuses the write. It does two of
// upstream's checks:
//
//   - RBAC escalation prevention: a Role or ClusterRole may grant only
//     permissions its author holds, unless the author may "escalate" it; a
//     binding may grant only a role whose permissions its author holds,
//     unless the author may "bind" that role.
//   - Node restriction: a node identity may create only its own Node and
//     its own Lease.
type Admission struct {
	rbac       *RBAC
	authorizer Authorizer
}

// NewAdmission returns the checks over store (for the author's rules) and
// authorizer (for the escalate and bind verbs; system:masters pass there).
func NewAdmission(store RuleStore, authorizer Authorizer) *Admission {
	return &Admission{rbac: NewRBAC(store), authorizer: authorizer}
}

// Admit refuses obj when user may not write it; other kinds pass.
func (ad *Admission) Admit(ctx context.Context, user auth.User, obj runtime.Object) error {
	switch o := obj.(type) {
	case *rbacv1.Role:
		return ad.grant(ctx, user, "escalate", "roles", o.Namespace, o.Name, o.Rules)
	case *rbacv1.ClusterRole:
		return ad.grant(ctx, user, "escalate", "clusterroles", "", o.Name, o.Rules)
	case *rbacv1.RoleBinding:
		return ad.bind(ctx, user, "rolebindings", o.Namespace, o.Name, o.RoleRef)
	case *rbacv1.ClusterRoleBinding:
		return ad.bind(ctx, user, "clusterrolebindings", "", o.Name, o.RoleRef)
	case *corev1.Node:
		return ownedByNode(user, corev1.Resource("nodes"), o.Name, func(node string) string {
			return fmt.Sprintf("node %q is not allowed to modify node %q", node, o.Name)
		})
	case *coordinationv1.Lease:
		if o.Namespace != corev1.NamespaceNodeLease {
			return nil
		}
		return ownedByNode(user, coordinationv1.Resource("leases"), o.Name, func(string) string {
			return "can only access node lease with the same name as the requesting node"
		})
	}
	return nil
}

// ownedByNode refuses a node identity an object named for another node.
func ownedByNode(user auth.User, gr schema.GroupResource, name string, reason func(node string) string) error {
	a := Attributes{User: user}
	node, ok := NodeName(&a)
	if !ok || name == node {
		return nil
	}
	return apierrors.NewForbidden(gr, name, fmt.Errorf("%s", reason(node)))
}

func (ad *Admission) allowed(ctx context.Context, user auth.User, verb, resource, namespace, name string) bool {
	d, _, _ := ad.authorizer.Authorize(ctx, Attributes{User: user, ResourceRequest: true, Verb: verb,
		APIGroup: rbacv1.GroupName, APIVersion: "v1", Resource: resource, Namespace: namespace, Name: name})
	return d == DecisionAllow
}

// grant allows a role whose rules the user holds, or may escalate.
func (ad *Admission) grant(ctx context.Context, user auth.User, verb, resource, namespace, name string, rules []rbacv1.PolicyRule) error {
	if ad.allowed(ctx, user, verb, resource, namespace, name) {
		return nil
	}
	return ad.confirmNoEscalation(user, rbacv1.Resource(resource), namespace, name, rules)
}

// bind allows a binding to a role the user may bind, or whose rules it holds.
func (ad *Admission) bind(ctx context.Context, user auth.User, resource, namespace, name string, ref rbacv1.RoleRef) error {
	roleResource := "clusterroles"
	roleNamespace := ""
	if ref.Kind == "Role" {
		roleResource, roleNamespace = "roles", namespace
	}
	if ad.allowed(ctx, user, "bind", roleResource, roleNamespace, ref.Name) {
		return nil
	}
	rules, err := ad.rbac.roleRules(ref, namespace)
	if err != nil {
		return apierrors.NewForbidden(rbacv1.Resource(resource), name, fmt.Errorf("%w", err))
	}
	return ad.confirmNoEscalation(user, rbacv1.Resource(resource), namespace, name, rules)
}

// confirmNoEscalation is upstream's check and message.
func (ad *Admission) confirmNoEscalation(user auth.User, gr schema.GroupResource, namespace, name string, rules []rbacv1.PolicyRule) error {
	held, resolveErr := ad.rbac.RulesFor(user, namespace)
	ok, missing := Covers(held, rules)
	if ok {
		return nil
	}
	msg := fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s", user.Name, user.Groups, compactRules(missing))
	if resolveErr != nil {
		msg += fmt.Sprintf("; resolution errors: %v", resolveErr)
	}
	return apierrors.NewForbidden(gr, name, fmt.Errorf("%s", msg))
}

// compactRules renders rules one a line as upstream's CompactString does:
// {APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}.
func compactRules(rules []rbacv1.PolicyRule) string {
	lines := make([]string, 0, len(rules))
	for _, r := range rules {
		var parts []string
		field := func(name string, v []string) {
			if len(v) == 0 {
				return
			}
			q := make([]string, len(v))
			for i, s := range v {
				q[i] = fmt.Sprintf("%q", s)
			}
			parts = append(parts, name+":["+strings.Join(q, ", ")+"]")
		}
		field("APIGroups", r.APIGroups)
		field("Resources", r.Resources)
		field("ResourceNames", r.ResourceNames)
		field("NonResourceURLs", r.NonResourceURLs)
		field("Verbs", r.Verbs)
		lines = append(lines, "{"+strings.Join(parts, ", ")+"}")
	}
	return strings.Join(lines, "\n")
}
