package apiserver

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/authz"
)

type userKey struct{}

// withUser records the authenticated user in a request's context.
func withUser(ctx context.Context, u *auth.User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// userFrom returns the authenticated user of a request's context.
func userFrom(ctx context.Context) (*auth.User, bool) {
	u, ok := ctx.Value(userKey{}).(*auth.User)
	return u, ok
}

// authenticatedUser returns u with system:authenticated among its groups,
// as upstream's authenticators add it.
func authenticatedUser(u *auth.User) auth.User {
	out := auth.User{Name: u.Name, Groups: slices.Clone(u.Groups)}
	if !slices.Contains(out.Groups, authz.AuthenticatedGroup) {
		out.Groups = append(out.Groups, authz.AuthenticatedGroup)
	}
	return out
}

// requestAttributes describes a request for the authorizer as upstream's
// RequestInfoFactory does: resource requests with their verb and object,
// everything else (discovery, /openapi, /metrics) as a non-resource path
// with the lower-case method as verb. A list or watch selecting one name
// (fieldSelector=metadata.name=x) carries that name.
func requestAttributes(r *http.Request, u *auth.User) authz.Attributes {
	a := authz.Attributes{User: authenticatedUser(u)}
	info, ok := parseRequestInfo(r)
	if !ok {
		a.Verb, a.Path = strings.ToLower(r.Method), r.URL.Path
		return a
	}
	a.ResourceRequest = true
	a.Verb, a.APIGroup, a.APIVersion = info.Verb, info.Group, info.Version
	a.Resource, a.Subresource, a.Namespace, a.Name = info.Resource, info.Subresource, info.Namespace, info.Name
	if (a.Verb == "list" || a.Verb == "watch") && a.Name == "" {
		if sel, err := fields.ParseSelector(r.URL.Query().Get("fieldSelector")); err == nil {
			if name, found := sel.RequiresExactMatch("metadata.name"); found {
				a.Name = name
			}
		}
	}
	return a
}

// Admitter checks an object the server is about to store (created,
// updated or patched, after validation) on behalf of its author; an
// error refuses the write. It must not modify the object, which may share
// memory with objects the server hands to watchers. authz.Admission is
// one.
type Admitter interface {
	Admit(ctx context.Context, user auth.User, obj runtime.Object) error
}

// admit runs the configured Admitter for the request's user.
func (s *server) admit(ctx context.Context, obj runtime.Object) error {
	u, ok := userFrom(ctx)
	if s.cfg.Admission == nil || !ok {
		return nil
	}
	return s.cfg.Admission.Admit(ctx, authenticatedUser(u), obj)
}

// authorize asks the configured authorizer about r and writes upstream's
// 403 Status when it does not allow it. No authorizer allows everything.
func (s *server) authorize(w http.ResponseWriter, r *http.Request, u *auth.User) bool {
	if s.cfg.Authorizer == nil {
		return true
	}
	a := requestAttributes(r, u)
	decision, reason, err := s.cfg.Authorizer.Authorize(r.Context(), a)
	if decision == authz.DecisionAllow {
		return true
	}
	if err != nil {
		s.log.Debug("authorization error", "user", u.Name, "verb", a.Verb, "resource", a.Resource, "path", a.Path, "err", err)
	}
	writeError(w, authz.Forbidden(a, reason))
	return false
}
