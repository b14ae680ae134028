package authz

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/drover/drover/internal/auth"
)

// RuleStore is where RBAC reads roles and bindings. Cache implements it
// over informers; Static over fixed values.
type RuleStore interface {
	GetRole(namespace, name string) (*rbacv1.Role, error)
	GetClusterRole(name string) (*rbacv1.ClusterRole, error)
	ListClusterRoles() ([]*rbacv1.ClusterRole, error)
	ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error)
	ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error)
}

// RBAC authorizes by Roles, ClusterRoles and their bindings. It allows
// or has no opinion; it never denies.
type RBAC struct{ store RuleStore }

var _ Authorizer = (*RBAC)(nil)

// NewRBAC returns an RBAC authorizer reading from store.
func NewRBAC(store RuleStore) *RBAC { return &RBAC{store: store} }

// Authorize implements Authorizer. The reason of an allow names the
// binding, as upstream's does; a no-opinion's reason lists the bindings
// whose roles could not be found.
func (r *RBAC) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	var errs []string
	allowed := ""
	r.visitRules(a.User, a.Namespace, func(source func() string, rules []rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err.Error())
			return true
		}
		if RulesAllow(a, rules) {
			allowed = source()
			return false
		}
		return true
	})
	if allowed != "" {
		return DecisionAllow, "RBAC: allowed by " + allowed, nil
	}
	if len(errs) > 0 {
		return DecisionNoOpinion, "RBAC: [" + strings.Join(errs, ", ") + "]", nil
	}
	return DecisionNoOpinion, "", nil
}

// RulesFor returns every rule granted to user in namespace ("" for the
// cluster scope only): the rules of matching ClusterRoleBindings and, in
// a namespace, of its RoleBindings. The error lists roles that could not
// be read; the rules found are still returned.
func (r *RBAC) RulesFor(user auth.User, namespace string) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	var errs []string
	r.visitRules(user, namespace, func(_ func() string, rs []rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err.Error())
		}
		rules = append(rules, rs...)
		return true
	})
	if len(errs) > 0 {
		return rules, fmt.Errorf("[%s]", strings.Join(errs, ", "))
	}
	return rules, nil
}

// visitRules calls visit with the rules of each binding that applies to
// user, cluster bindings first, until visit returns false.
func (r *RBAC) visitRules(user auth.User, namespace string, visit func(source func() string, rules []rbacv1.PolicyRule, err error) bool) {
	crbs, err := r.store.ListClusterRoleBindings()
	if err != nil {
		visit(nil, nil, err)
		return
	}
	for _, b := range crbs {
		subject, ok := SubjectsMatch(user, b.Subjects, "")
		if !ok {
			continue
		}
		rules, err := r.roleRules(b.RoleRef, "")
		source := func() string {
			return fmt.Sprintf("ClusterRoleBinding %q of %s %q to %s", b.Name, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(subject, ""))
		}
		if !visit(source, rules, err) {
			return
		}
	}
	if namespace == "" {
		return
	}
	rbs, err := r.store.ListRoleBindings(namespace)
	if err != nil {
		visit(nil, nil, err)
		return
	}
	for _, b := range rbs {
		subject, ok := SubjectsMatch(user, b.Subjects, namespace)
		if !ok {
			continue
		}
		rules, err := r.roleRules(b.RoleRef, namespace)
		source := func() string {
			return fmt.Sprintf("RoleBinding %q of %s %q to %s", b.Name+"/"+namespace, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(subject, namespace))
		}
		if !visit(source, rules, err) {
			return
		}
	}
}

// roleRules returns the rules of the role a binding refers to.
func (r *RBAC) roleRules(ref rbacv1.RoleRef, namespace string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		role, err := r.store.GetRole(namespace, ref.Name)
		if err != nil {
			return nil, err
		}
		return role.Rules, nil
	case "ClusterRole":
		role, err := r.store.GetClusterRole(ref.Name)
		if err != nil {
			return nil, err
		}
		if role.AggregationRule == nil {
			return role.Rules, nil
		}
		all, err := r.store.ListClusterRoles()
		if err != nil {
			return nil, err
		}
		return AggregatedRules(role, all), nil
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

func describeSubject(s rbacv1.Subject, bindingNamespace string) string {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return fmt.Sprintf("%s %q", s.Kind, s.Name+"/"+ns)
	default:
		return fmt.Sprintf("%s %q", s.Kind, s.Name)
	}
}

// Static is a RuleStore over fixed values, for tests and for evaluating
// a policy before it is stored.
type Static struct {
	Roles               []*rbacv1.Role
	ClusterRoles        []*rbacv1.ClusterRole
	RoleBindings        []*rbacv1.RoleBinding
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
}

var _ RuleStore = (*Static)(nil)

// GetRole implements RuleStore.
func (s *Static) GetRole(namespace, name string) (*rbacv1.Role, error) {
	for _, r := range s.Roles {
		if r.Namespace == namespace && r.Name == name {
			return r, nil
		}
	}
	return nil, apierrors.NewNotFound(rbacv1.Resource("role"), name)
}

// GetClusterRole implements RuleStore.
func (s *Static) GetClusterRole(name string) (*rbacv1.ClusterRole, error) {
	for _, r := range s.ClusterRoles {
		if r.Name == name {
			return r, nil
		}
	}
	return nil, apierrors.NewNotFound(rbacv1.Resource("clusterrole"), name)
}

// ListClusterRoles implements RuleStore.
func (s *Static) ListClusterRoles() ([]*rbacv1.ClusterRole, error) { return s.ClusterRoles, nil }

// ListRoleBindings implements RuleStore.
func (s *Static) ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error) {
	var out []*rbacv1.RoleBinding
	for _, b := range s.RoleBindings {
		if b.Namespace == namespace {
			out = append(out, b)
		}
	}
	return out, nil
}

// ListClusterRoleBindings implements RuleStore.
func (s *Static) ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error) {
	return s.ClusterRoleBindings, nil
}
