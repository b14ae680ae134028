// Package authz decides whether an authenticated user may make a request,
// as Kubernetes' authorizers do: RBAC over the cluster's Roles, ClusterRoles
// and their bindings, the node authorizer that confines a kubelet's
// identity (system:node:<name>) to its own node and pods, and the
// system:masters group that may do anything. The API server asks one
// Authorizer, usually a Union of these, after authentication.
//
// Wiring it into a server:
//
//	cache := authz.NewCache()                    // empty until started
//	cfg.Authorizer = authz.Default(cache)        // masters, node, RBAC
//	... once a loopback (admin) client exists:
//	go cache.Run(ctx, client)                    // informers over the API
//	authz.EnsureBootstrap(ctx, client)           // default roles and bindings
//
// Until the cache has synced, only system:masters is allowed.
package authz

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/drover/drover/internal/auth"
)

// Decision is an authorizer's answer.
type Decision int

// The decisions, as upstream numbers them.
const (
	// DecisionDeny refuses the request; no later authorizer is asked.
	DecisionDeny Decision = iota
	// DecisionAllow permits the request; no later authorizer is asked.
	DecisionAllow
	// DecisionNoOpinion leaves the request to the next authorizer; if none
	// allows it, it is refused.
	DecisionNoOpinion
)

func (d Decision) String() string {
	switch d {
	case DecisionDeny:
		return "Deny"
	case DecisionAllow:
		return "Allow"
	case DecisionNoOpinion:
		return "NoOpinion"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// Well-known groups and users.
const (
	// MastersGroup may do anything (the admin's group).
	MastersGroup = "system:masters"
	// AuthenticatedGroup holds every authenticated user.
	AuthenticatedGroup = "system:authenticated"
	// UnauthenticatedGroup holds anonymous requests.
	UnauthenticatedGroup = "system:unauthenticated"
	// NodesGroup holds node identities.
	NodesGroup = "system:nodes"
	// NodeUserPrefix starts a node identity's user name.
	NodeUserPrefix = "system:node:"
	// ServiceAccountUserPrefix starts a service account's user name
	// (system:serviceaccount:<namespace>:<name>).
	ServiceAccountUserPrefix = "system:serviceaccount:"
)

// Attributes describe one request to authorize, as upstream's
// authorizer.Attributes do.
type Attributes struct {
	// User is who asks; the server adds system:authenticated to its groups.
	User auth.User
	// Verb is get, list, watch, create, update, patch, delete or
	// deletecollection for resource requests; the lower-case HTTP method
	// for others.
	Verb string
	// ResourceRequest is true for /api and /apis paths naming a resource;
	// false for non-resource paths (/healthz, /version, discovery).
	ResourceRequest bool
	// APIGroup, APIVersion, Resource, Subresource, Namespace and Name
	// locate the object of a resource request.
	APIGroup    string
	APIVersion  string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	// Path is the URL path of a non-resource request.
	Path string
}

// Authorizer decides on a request. An error means it could not decide;
// the decision then still counts (usually NoOpinion).
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (Decision, string, error)
}

// Func adapts a function to Authorizer.
type Func func(ctx context.Context, a Attributes) (Decision, string, error)

// Authorize implements Authorizer.
func (f Func) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	return f(ctx, a)
}

// Union asks each authorizer in turn: the first Allow or Deny decides;
// if all have no opinion, the result is NoOpinion with their reasons
// joined by "; " (as upstream's union does).
func Union(authorizers ...Authorizer) Authorizer {
	return Func(func(ctx context.Context, a Attributes) (Decision, string, error) {
		var reasons []string
		var errs []error
		for _, z := range authorizers {
			d, reason, err := z.Authorize(ctx, a)
			if err != nil {
				errs = append(errs, err)
			}
			switch d {
			case DecisionAllow, DecisionDeny:
				return d, reason, err
			}
			if reason != "" {
				reasons = append(reasons, reason)
			}
		}
		var err error
		if len(errs) > 0 {
			err = joinErrors(errs)
		}
		return DecisionNoOpinion, strings.Join(reasons, "; "), err
	})
}

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("[%s]", strings.Join(msgs, ", "))
}

// Groups allows every request from a member of one of the groups (e.g.
// system:masters) and has no opinion on others.
func Groups(groups ...string) Authorizer {
	return Func(func(_ context.Context, a Attributes) (Decision, string, error) {
		for _, g := range a.User.Groups {
			for _, want := range groups {
				if g == want {
					return DecisionAllow, "", nil
				}
			}
		}
		return DecisionNoOpinion, "", nil
	})
}

// Default returns the authorizer Drover's API server uses: system:masters,
// then the node authorizer, then RBAC, all reading from cache. It is also
// a RuleLister (RBAC's rules), for selfsubjectrulesreviews.
func Default(cache *Cache) Authorizer {
	rbac := NewRBAC(cache)
	return &chain{Authorizer: Union(Groups(MastersGroup), NewNode(cache), rbac), rbac: rbac}
}

// RuleLister lists the rules a user holds in a namespace, as far as an
// authorizer can tell: what kubectl auth can-i --list shows.
type RuleLister interface {
	// RulesFor returns the user's rules; incomplete is true when some
	// authorizer grants more than the rules say (node identities, the
	// system:masters group without its binding).
	RulesFor(user auth.User, namespace string) (rules []rbacv1.PolicyRule, incomplete bool, err error)
}

type chain struct {
	Authorizer
	rbac *RBAC
}

// RulesFor implements RuleLister.
func (c *chain) RulesFor(user auth.User, namespace string) ([]rbacv1.PolicyRule, bool, error) {
	rules, err := c.rbac.RulesFor(user, namespace)
	a := Attributes{User: user}
	_, node := NodeName(&a)
	return rules, node || err != nil, err
}

// ForbiddenMessage words a refusal as upstream does, e.g.
// `User "u" cannot update resource "nodes" in API group "" at the cluster
// scope`, with ": reason" appended when there is one.
func ForbiddenMessage(a Attributes, reason string) string {
	var msg string
	switch {
	case !a.ResourceRequest:
		msg = fmt.Sprintf("User %q cannot %s path %q", a.User.Name, a.Verb, a.Path)
	default:
		resource := a.Resource
		if a.Subresource != "" {
			resource += "/" + a.Subresource
		}
		if a.Namespace != "" {
			msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", a.User.Name, a.Verb, resource, a.APIGroup, a.Namespace)
		} else {
			msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", a.User.Name, a.Verb, resource, a.APIGroup)
		}
	}
	if reason != "" {
		msg += ": " + reason
	}
	return msg
}

// Forbidden is the 403 Status error upstream's API server returns for a
// refused request: `nodes "x" is forbidden: User ... : reason`.
func Forbidden(a Attributes, reason string) *apierrors.StatusError {
	gr := schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}
	return apierrors.NewForbidden(gr, a.Name, fmt.Errorf("%s", ForbiddenMessage(a, reason)))
}
