package authz

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drover/drover/internal/auth"
)

// RuleAllows reports whether rule grants the request, with upstream's
// matching: "*" matches any verb, group, resource or non-resource URL; a
// resource "pods/status" names a subresource and "*/scale" the subresource
// of any resource; resourceNames, when given, must contain the name; a
// non-resource URL ending in "*" matches by prefix.
func RuleAllows(a Attributes, rule rbacv1.PolicyRule) bool {
	if !has(rule.Verbs, a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		return nonResourceURLMatches(rule.NonResourceURLs, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	return has(rule.APIGroups, a.APIGroup) &&
		resourceMatches(rule.Resources, resource, a.Subresource) &&
		(len(rule.ResourceNames) == 0 || contains(rule.ResourceNames, a.Name))
}

// RulesAllow reports whether any of rules grants the request.
func RulesAllow(a Attributes, rules []rbacv1.PolicyRule) bool {
	for _, r := range rules {
		if RuleAllows(a, r) {
			return true
		}
	}
	return false
}

// has reports whether list holds want or the wildcard "*".
func has(list []string, want string) bool {
	for _, s := range list {
		if s == rbacv1.VerbAll || s == want {
			return true
		}
	}
	return false
}

func contains(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}

func resourceMatches(ruleResources []string, combined, subresource string) bool {
	for _, r := range ruleResources {
		switch {
		case r == rbacv1.ResourceAll, r == combined:
			return true
		case subresource != "" && len(r) == len(subresource)+2 && strings.HasPrefix(r, "*/") && strings.HasSuffix(r, subresource):
			return true
		}
	}
	return false
}

func nonResourceURLMatches(urls []string, path string) bool {
	for _, u := range urls {
		switch {
		case u == rbacv1.NonResourceAll, u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimSuffix(u, "*")):
			return true
		}
	}
	return false
}

// SubjectsMatch reports whether a binding's subjects include the user:
// by user name, by one of its groups, or as a service account (named
// system:serviceaccount:<namespace>:<name>; a subject without a namespace
// takes the binding's, bindingNamespace).
func SubjectsMatch(user auth.User, subjects []rbacv1.Subject, bindingNamespace string) (rbacv1.Subject, bool) {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if user.Name == s.Name {
				return s, true
			}
		case rbacv1.GroupKind:
			if contains(user.Groups, s.Name) {
				return s, true
			}
		case rbacv1.ServiceAccountKind:
			ns := bindingNamespace
			if s.Namespace != "" {
				ns = s.Namespace
			}
			if ns != "" && s.Name != "" && user.Name == ServiceAccountUserPrefix+ns+":"+s.Name {
				return s, true
			}
		}
	}
	return rbacv1.Subject{}, false
}

// AggregatedRules returns a ClusterRole's effective rules: its own when it
// has no aggregationRule; otherwise, as upstream's aggregation controller
// writes them into the role (replacing what was there), the effective
// rules of every other ClusterRole whose labels match one of its
// selectors, transitively (admin takes edit's, which takes view's), in
// the order of all and without duplicates. Authorization reads them this way, so a
// role labelled to aggregate counts at once, and stops counting when
// removed.
func AggregatedRules(role *rbacv1.ClusterRole, all []*rbacv1.ClusterRole) []rbacv1.PolicyRule {
	if role.AggregationRule == nil {
		return role.Rules
	}
	rules := []rbacv1.PolicyRule{}
	aggregate(role, all, map[string]bool{}, &rules)
	return rules
}

func aggregate(role *rbacv1.ClusterRole, all []*rbacv1.ClusterRole, seen map[string]bool, rules *[]rbacv1.PolicyRule) {
	if seen[role.Name] {
		return
	}
	seen[role.Name] = true
	if role.AggregationRule == nil {
		for _, r := range role.Rules {
			if !hasRule(*rules, r) {
				*rules = append(*rules, r)
			}
		}
		return
	}
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil || selector.Empty() {
			continue
		}
		for _, other := range all {
			if selector.Matches(labels.Set(other.Labels)) {
				aggregate(other, all, seen, rules)
			}
		}
	}
}

func hasRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for _, have := range rules {
		if equalStrings(have.Verbs, r.Verbs) && equalStrings(have.APIGroups, r.APIGroups) &&
			equalStrings(have.Resources, r.Resources) && equalStrings(have.ResourceNames, r.ResourceNames) &&
			equalStrings(have.NonResourceURLs, r.NonResourceURLs) {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Covers reports whether owner's rules grant everything servant grants, as
// upstream's escalation check decides it: each servant rule is broken down
// into one verb, group, resource and name (or non-resource URL) at a time,
// and each piece must be granted by some owner rule, where a servant's "*"
// is only granted by an owner's "*". It returns the pieces not covered.
func Covers(owner, servant []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	var missing []rbacv1.PolicyRule
	for _, s := range servant {
		for _, piece := range breakdown(s) {
			covered := false
			for _, o := range owner {
				if ruleCovers(o, piece) {
					covered = true
					break
				}
			}
			if !covered {
				missing = append(missing, piece)
			}
		}
	}
	return len(missing) == 0, missing
}

// breakdown splits a rule into rules of one verb, group, resource and
// resource name (or one verb and non-resource URL).
func breakdown(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, verb := range r.Verbs {
		for _, url := range r.NonResourceURLs {
			out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, NonResourceURLs: []string{url}})
		}
		for _, group := range r.APIGroups {
			for _, resource := range r.Resources {
				if len(r.ResourceNames) == 0 {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{group}, Resources: []string{resource}})
					continue
				}
				for _, name := range r.ResourceNames {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{group}, Resources: []string{resource}, ResourceNames: []string{name}})
				}
			}
		}
	}
	return out
}

// ruleCovers reports whether owner grants the single-piece rule s.
func ruleCovers(o, s rbacv1.PolicyRule) bool {
	if !has(o.Verbs, s.Verbs[0]) {
		return false
	}
	if len(s.NonResourceURLs) > 0 {
		return nonResourceURLCovers(o.NonResourceURLs, s.NonResourceURLs[0])
	}
	if !has(o.APIGroups, s.APIGroups[0]) {
		return false
	}
	resource := s.Resources[0]
	ok := false
	for _, r := range o.Resources {
		switch {
		case r == rbacv1.ResourceAll, r == resource:
			ok = true
		case strings.HasPrefix(r, "*/"):
			_, sub, found := strings.Cut(resource, "/")
			ok = ok || (found && "*/"+sub == r)
		}
	}
	if !ok {
		return false
	}
	if len(o.ResourceNames) == 0 {
		return true
	}
	return len(s.ResourceNames) == 1 && contains(o.ResourceNames, s.ResourceNames[0])
}

func nonResourceURLCovers(owner []string, url string) bool {
	for _, o := range owner {
		switch {
		case o == url, o == rbacv1.NonResourceAll:
			return true
		case strings.HasSuffix(o, "*") && strings.HasPrefix(url, strings.TrimSuffix(o, "*")):
			return true
		}
	}
	return false
}
