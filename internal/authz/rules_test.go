package authz

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/auth"
)

// res builds resource-request attributes: "verb group/resource/sub ns/name".
func res(verb, group, resource, sub, ns, name string) Attributes {
	return Attributes{ResourceRequest: true, Verb: verb, APIGroup: group, APIVersion: "v1", Resource: resource, Subresource: sub, Namespace: ns, Name: name}
}

func nonRes(verb, path string) Attributes { return Attributes{Verb: verb, Path: path} }

func pr(verbs, groups, resources []string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources}
}

func ss(s ...string) []string { return s }

func TestRuleAllows(t *testing.T) {
	tests := []struct {
		name string
		rule rbacv1.PolicyRule
		a    Attributes
		want bool
	}{
		{"exact", pr(ss("get"), ss(""), ss("pods")), res("get", "", "pods", "", "ns", "p"), true},
		{"other verb", pr(ss("get"), ss(""), ss("pods")), res("list", "", "pods", "", "ns", ""), false},
		{"other group", pr(ss("get"), ss(""), ss("deployments")), res("get", "apps", "deployments", "", "ns", "d"), false},
		{"verb wildcard", pr(ss("*"), ss(""), ss("pods")), res("deletecollection", "", "pods", "", "ns", ""), true},
		{"group wildcard", pr(ss("get"), ss("*"), ss("deployments")), res("get", "apps", "deployments", "", "ns", "d"), true},
		{"resource wildcard covers subresources", pr(ss("get"), ss(""), ss("*")), res("get", "", "pods", "log", "ns", "p"), true},
		{"resource does not cover its subresource", pr(ss("update"), ss(""), ss("pods")), res("update", "", "pods", "status", "ns", "p"), false},
		{"resource/subresource", pr(ss("update"), ss(""), ss("pods/status")), res("update", "", "pods", "status", "ns", "p"), true},
		{"subresource rule not the resource", pr(ss("get"), ss(""), ss("pods/status")), res("get", "", "pods", "", "ns", "p"), false},
		{"*/subresource", pr(ss("update"), ss("apps"), ss("*/scale")), res("update", "apps", "deployments", "scale", "ns", "d"), true},
		{"*/subresource other sub", pr(ss("update"), ss("apps"), ss("*/scale")), res("update", "apps", "deployments", "status", "ns", "d"), false},
		{"resourceNames match", rbacv1.PolicyRule{Verbs: ss("get"), APIGroups: ss(""), Resources: ss("configmaps"), ResourceNames: ss("a", "b")}, res("get", "", "configmaps", "", "ns", "b"), true},
		{"resourceNames miss", rbacv1.PolicyRule{Verbs: ss("get"), APIGroups: ss(""), Resources: ss("configmaps"), ResourceNames: ss("a")}, res("get", "", "configmaps", "", "ns", "c"), false},
		{"resourceNames refuse unnamed list", rbacv1.PolicyRule{Verbs: ss("list"), APIGroups: ss(""), Resources: ss("configmaps"), ResourceNames: ss("a")}, res("list", "", "configmaps", "", "ns", ""), false},
		{"resource rule not a path", pr(ss("get"), ss("*"), ss("*")), nonRes("get", "/healthz"), false},
		{"non-resource exact", rbacv1.PolicyRule{Verbs: ss("get"), NonResourceURLs: ss("/healthz")}, nonRes("get", "/healthz"), true},
		{"non-resource other", rbacv1.PolicyRule{Verbs: ss("get"), NonResourceURLs: ss("/healthz")}, nonRes("get", "/metrics"), false},
		{"non-resource prefix", rbacv1.PolicyRule{Verbs: ss("get"), NonResourceURLs: ss("/apis/*")}, nonRes("get", "/apis/apps/v1"), true},
		{"non-resource prefix not bare", rbacv1.PolicyRule{Verbs: ss("get"), NonResourceURLs: ss("/apis/*")}, nonRes("get", "/apis"), false},
		{"non-resource wildcard", rbacv1.PolicyRule{Verbs: ss("*"), NonResourceURLs: ss("*")}, nonRes("post", "/anything"), true},
		{"non-resource rule not a resource", rbacv1.PolicyRule{Verbs: ss("*"), NonResourceURLs: ss("*")}, res("get", "", "pods", "", "ns", "p"), false},
	}
	for _, tt := range tests {
		if got := RuleAllows(tt.a, tt.rule); got != tt.want {
			t.Errorf("%s: RuleAllows = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSubjectsMatch(t *testing.T) {
	alice := auth.User{Name: "alice", Groups: ss("devs", AuthenticatedGroup)}
	sa := auth.User{Name: "system:serviceaccount:ns:robot", Groups: ss("system:serviceaccounts")}
	tests := []struct {
		name     string
		user     auth.User
		subjects []rbacv1.Subject
		ns       string
		want     bool
	}{
		{"user", alice, []rbacv1.Subject{{Kind: "User", Name: "alice"}}, "", true},
		{"other user", alice, []rbacv1.Subject{{Kind: "User", Name: "bob"}}, "", false},
		{"group", alice, []rbacv1.Subject{{Kind: "Group", Name: "devs"}}, "", true},
		{"user named like a group", alice, []rbacv1.Subject{{Kind: "User", Name: "devs"}}, "", false},
		{"authenticated", alice, []rbacv1.Subject{{Kind: "Group", Name: AuthenticatedGroup}}, "", true},
		{"service account", sa, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "robot", Namespace: "ns"}}, "", true},
		{"service account in binding's namespace", sa, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "robot"}}, "ns", true},
		{"service account elsewhere", sa, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "robot", Namespace: "other"}}, "ns", false},
		{"second subject", alice, []rbacv1.Subject{{Kind: "User", Name: "bob"}, {Kind: "User", Name: "alice"}}, "", true},
	}
	for _, tt := range tests {
		if _, got := SubjectsMatch(tt.user, tt.subjects, tt.ns); got != tt.want {
			t.Errorf("%s: SubjectsMatch = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAggregatedRulesAreTransitive(t *testing.T) {
	roles, _ := BootstrapPolicy()
	var all []*rbacv1.ClusterRole
	var admin, edit, view *rbacv1.ClusterRole
	for i := range roles {
		r := roles[i]
		r.Rules = nil // as stored before the aggregation controller ran: rules come from labels only
		if r.AggregationRule == nil {
			r.Rules = roles[i].Rules
		}
		all = append(all, &r)
		switch r.Name {
		case "admin":
			admin = &r
		case "edit":
			edit = &r
		case "view":
			view = &r
		}
	}
	can := func(role *rbacv1.ClusterRole, a Attributes) bool { return RulesAllow(a, AggregatedRules(role, all)) }
	getPods := res("get", "", "pods", "", "ns", "p")
	createDeploy := res("create", "apps", "deployments", "", "ns", "")
	createRole := res("create", "rbac.authorization.k8s.io", "roles", "", "ns", "")
	for _, c := range []struct {
		role *rbacv1.ClusterRole
		a    Attributes
		want bool
	}{
		{view, getPods, true}, {view, createDeploy, false}, {view, createRole, false},
		{edit, getPods, true}, {edit, createDeploy, true}, {edit, createRole, false},
		{admin, getPods, true}, {admin, createDeploy, true}, {admin, createRole, true},
	} {
		if got := can(c.role, c.a); got != c.want {
			t.Errorf("%s may %s %s: %v, want %v", c.role.Name, c.a.Verb, c.a.Resource, got, c.want)
		}
	}
	// A user-made role labelled to aggregate into view is picked up by
	// view, edit and admin.
	custom := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "widgets-view", Labels: map[string]string{AggregateToView: "true"}},
		Rules: []rbacv1.PolicyRule{pr(ss("get"), ss("example.com"), ss("widgets"))}}
	all = append(all, custom)
	getWidget := res("get", "example.com", "widgets", "", "ns", "w")
	for _, r := range []*rbacv1.ClusterRole{view, edit, admin} {
		if !can(r, getWidget) {
			t.Errorf("%s does not aggregate widgets-view", r.Name)
		}
	}
	// Unlabelled, it leaves them; an aggregated role's own rules are the
	// controller's to write, and do not count.
	custom.Labels = nil
	view.Rules = []rbacv1.PolicyRule{pr(ss("delete"), ss("*"), ss("*"))}
	for _, r := range []*rbacv1.ClusterRole{view, edit, admin} {
		if can(r, getWidget) || can(r, res("delete", "", "nodes", "", "", "n")) {
			t.Errorf("%s still grants widgets or its stale rules", r.Name)
		}
	}
}

func TestBootstrapFlattenedMatchesAggregation(t *testing.T) {
	roles, bindings := BootstrapPolicy()
	var all []*rbacv1.ClusterRole
	for i := range roles {
		all = append(all, &roles[i])
	}
	for _, r := range all {
		if r.AggregationRule == nil {
			continue
		}
		// The stored rules already hold what aggregation would add.
		if ok, missing := Covers(r.Rules, AggregatedRules(r, all)); !ok {
			t.Errorf("%s's flattened rules miss %v", r.Name, missing)
		}
	}
	want := map[string]string{"cluster-admin": MastersGroup, "system:discovery": AuthenticatedGroup, "system:basic-user": AuthenticatedGroup}
	for _, b := range bindings {
		if g, ok := want[b.Name]; ok && (b.Subjects[0].Name != g || b.RoleRef.Name != b.Name) {
			t.Errorf("binding %s = %+v", b.Name, b)
		}
		delete(want, b.Name)
	}
	if len(want) != 0 {
		t.Errorf("bindings missing: %v", want)
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		name           string
		owner, servant []rbacv1.PolicyRule
		want           bool
	}{
		{"same", []rbacv1.PolicyRule{pr(ss("get", "list"), ss(""), ss("pods"))}, []rbacv1.PolicyRule{pr(ss("get"), ss(""), ss("pods"))}, true},
		{"more verbs", []rbacv1.PolicyRule{pr(ss("get"), ss(""), ss("pods"))}, []rbacv1.PolicyRule{pr(ss("get", "delete"), ss(""), ss("pods"))}, false},
		{"star owner", []rbacv1.PolicyRule{pr(ss("*"), ss("*"), ss("*"))}, []rbacv1.PolicyRule{pr(ss("get"), ss("apps"), ss("deployments/scale"))}, true},
		{"star servant needs star", []rbacv1.PolicyRule{pr(ss("get", "list", "watch"), ss(""), ss("pods"))}, []rbacv1.PolicyRule{pr(ss("*"), ss(""), ss("pods"))}, false},
		{"split over rules", []rbacv1.PolicyRule{pr(ss("get"), ss(""), ss("pods")), pr(ss("get"), ss(""), ss("secrets"))}, []rbacv1.PolicyRule{pr(ss("get"), ss(""), ss("pods", "secrets"))}, true},
		{"names narrow", []rbacv1.PolicyRule{{Verbs: ss("get"), APIGroups: ss(""), Resources: ss("secrets"), ResourceNames: ss("a")}}, []rbacv1.PolicyRule{pr(ss("get"), ss(""), ss("secrets"))}, false},
		{"names within", []rbacv1.PolicyRule{{Verbs: ss("get"), APIGroups: ss(""), Resources: ss("secrets"), ResourceNames: ss("a", "b")}}, []rbacv1.PolicyRule{{Verbs: ss("get"), APIGroups: ss(""), Resources: ss("secrets"), ResourceNames: ss("b")}}, true},
		{"*/sub", []rbacv1.PolicyRule{pr(ss("get"), ss("apps"), ss("*/scale"))}, []rbacv1.PolicyRule{pr(ss("get"), ss("apps"), ss("deployments/scale"))}, true},
		{"urls", []rbacv1.PolicyRule{{Verbs: ss("get"), NonResourceURLs: ss("/apis/*")}}, []rbacv1.PolicyRule{{Verbs: ss("get"), NonResourceURLs: ss("/apis/apps")}}, true},
		{"urls outside", []rbacv1.PolicyRule{{Verbs: ss("get"), NonResourceURLs: ss("/apis/*")}}, []rbacv1.PolicyRule{{Verbs: ss("get"), NonResourceURLs: ss("/metrics")}}, false},
	}
	for _, tt := range tests {
		if got, missing := Covers(tt.owner, tt.servant); got != tt.want {
			t.Errorf("%s: Covers = %v (missing %v), want %v", tt.name, got, missing, tt.want)
		}
	}
}

func TestRBACAuthorize(t *testing.T) {
	store := &Static{
		Roles: []*rbacv1.Role{{ObjectMeta: metav1.ObjectMeta{Name: "cm-reader", Namespace: "team"},
			Rules: []rbacv1.PolicyRule{pr(ss("get"), ss(""), ss("configmaps"))}}},
		ClusterRoles: []*rbacv1.ClusterRole{
			{ObjectMeta: metav1.ObjectMeta{Name: "node-reader"}, Rules: []rbacv1.PolicyRule{pr(ss("get", "list"), ss(""), ss("nodes"))}},
			{ObjectMeta: metav1.ObjectMeta{Name: "pod-admin"}, Rules: []rbacv1.PolicyRule{pr(ss("*"), ss(""), ss("pods"))}},
		},
		ClusterRoleBindings: []*rbacv1.ClusterRoleBinding{
			{ObjectMeta: metav1.ObjectMeta{Name: "readers"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "node-reader"},
				Subjects: []rbacv1.Subject{{Kind: "Group", Name: "ops"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "dangling"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "gone"},
				Subjects: []rbacv1.Subject{{Kind: "User", Name: "carol"}}},
		},
		RoleBindings: []*rbacv1.RoleBinding{
			{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "team"}, RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "cm-reader"},
				Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}},
			// A RoleBinding to a ClusterRole grants it in its namespace only.
			{ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: "team"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "pod-admin"},
				Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}},
		},
	}
	z := NewRBAC(store)
	alice := auth.User{Name: "alice"}
	ops := auth.User{Name: "olga", Groups: ss("ops")}
	tests := []struct {
		user   auth.User
		a      Attributes
		want   Decision
		reason string
	}{
		{alice, res("get", "", "configmaps", "", "team", "c"), DecisionAllow, `RBAC: allowed by RoleBinding "cm/team" of Role "cm-reader" to User "alice"`},
		{alice, res("get", "", "configmaps", "", "other", "c"), DecisionNoOpinion, ""},
		{alice, res("delete", "", "pods", "", "team", "p"), DecisionAllow, ""},
		{alice, res("delete", "", "pods", "", "other", "p"), DecisionNoOpinion, ""},
		{alice, res("list", "", "pods", "", "", ""), DecisionNoOpinion, ""},
		{ops, res("list", "", "nodes", "", "", ""), DecisionAllow, `RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "node-reader" to Group "ops"`},
		{ops, res("delete", "", "nodes", "", "", "n"), DecisionNoOpinion, ""},
		{auth.User{Name: "carol"}, res("get", "", "nodes", "", "", "n"), DecisionNoOpinion, `RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found]`},
	}
	for _, tt := range tests {
		tt.a.User = tt.user
		d, reason, err := z.Authorize(context.Background(), tt.a)
		if err != nil || d != tt.want || (tt.reason != "" && reason != tt.reason) {
			t.Errorf("%s %s %s in %q: got %v %q %v, want %v %q", tt.user.Name, tt.a.Verb, tt.a.Resource, tt.a.Namespace, d, reason, err, tt.want, tt.reason)
		}
	}
	rules, err := z.RulesFor(alice, "team")
	if err != nil || len(rules) != 2 {
		t.Errorf("RulesFor(alice, team) = %v, %v", rules, err)
	}
}

func TestUnionAndForbidden(t *testing.T) {
	deny := Func(func(context.Context, Attributes) (Decision, string, error) { return DecisionDeny, "denied", nil })
	none := func(reason string) Authorizer {
		return Func(func(context.Context, Attributes) (Decision, string, error) { return DecisionNoOpinion, reason, nil })
	}
	masters := Groups(MastersGroup)
	admin := Attributes{User: auth.User{Name: "admin", Groups: ss(MastersGroup)}}
	if d, _, _ := Union(none("a"), masters, deny).Authorize(context.Background(), admin); d != DecisionAllow {
		t.Errorf("masters: %v", d)
	}
	if d, r, _ := Union(none("a"), deny, masters).Authorize(context.Background(), admin); d != DecisionDeny || r != "denied" {
		t.Errorf("deny first: %v %q", d, r)
	}
	if d, r, _ := Union(none("a"), none(""), none("b")).Authorize(context.Background(), admin); d != DecisionNoOpinion || r != "a; b" {
		t.Errorf("no opinion: %v %q", d, r)
	}

	a := res("update", "", "nodes", "", "", "x")
	a.User = auth.User{Name: "system:node:a"}
	err := Forbidden(a, "node 'a' cannot modify node 'x'")
	want := `nodes "x" is forbidden: User "system:node:a" cannot update resource "nodes" in API group "" at the cluster scope: node 'a' cannot modify node 'x'`
	if err.Error() != want || err.ErrStatus.Code != 403 || err.ErrStatus.Reason != metav1.StatusReasonForbidden {
		t.Errorf("Forbidden = %q (%d %s)\nwant %q", err.Error(), err.ErrStatus.Code, err.ErrStatus.Reason, want)
	}
	ns := res("create", "apps", "deployments", "", "team", "")
	ns.User = auth.User{Name: "bob"}
	if got := Forbidden(ns, "").Error(); got != `deployments.apps is forbidden: User "bob" cannot create resource "deployments" in API group "apps" in the namespace "team"` {
		t.Errorf("namespaced Forbidden = %q", got)
	}
	p := nonRes("get", "/metrics")
	p.User = auth.User{Name: "bob"}
	if got := Forbidden(p, "").Error(); !strings.HasSuffix(got, `User "bob" cannot get path "/metrics"`) {
		t.Errorf("non-resource Forbidden = %q", got)
	}
}
