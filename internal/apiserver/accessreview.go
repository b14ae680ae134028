package apiserver

import (
	"context"
	"net/http"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/authz"
)

// accessReview serves POST selfsubjectaccessreviews and
// subjectaccessreviews (authorization.k8s.io/v1): the review is answered
// from the server's authorizer and returned with its status, never stored,
// as upstream does (kubectl auth can-i creates a SelfSubjectAccessReview).
func (h *handler) accessReview(ctx context.Context) (int, runtime.Object, error) {
	obj, err := h.decodeBody()
	if err != nil {
		return 0, nil, err
	}
	if h.res.Validate != nil {
		if errs := h.res.Validate(obj); len(errs) > 0 {
			return 0, nil, apierrors.NewInvalid(h.res.GroupVersionKind().GroupKind(), "", errs)
		}
	}
	var (
		user   auth.User
		res    *authorizationv1.ResourceAttributes
		nonRes *authorizationv1.NonResourceAttributes
		status *authorizationv1.SubjectAccessReviewStatus
	)
	switch review := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		u, ok := userFrom(ctx)
		if !ok {
			return 0, nil, apierrors.NewBadRequest("no user present on request")
		}
		user = authenticatedUser(u)
		res, nonRes, status = review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes, &review.Status
	case *authorizationv1.SelfSubjectRulesReview:
		u, ok := userFrom(ctx)
		if !ok {
			return 0, nil, apierrors.NewBadRequest("no user present on request")
		}
		review.Status = h.s.rulesReview(authenticatedUser(u), review.Spec.Namespace)
		review.SetGroupVersionKind(h.res.GroupVersionKind())
		return http.StatusCreated, review, nil
	case *authorizationv1.SubjectAccessReview:
		user = auth.User{Name: review.Spec.User, Groups: review.Spec.Groups}
		res, nonRes, status = review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes, &review.Status
	default:
		return 0, nil, apierrors.NewMethodNotSupported(groupResource(h.res), "create")
	}
	*status = h.s.review(ctx, reviewAttributes(user, res, nonRes))
	obj.GetObjectKind().SetGroupVersionKind(h.res.GroupVersionKind())
	return http.StatusCreated, obj, nil
}

// reviewAttributes turns a review's spec into authorizer attributes.
func reviewAttributes(u auth.User, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) authz.Attributes {
	a := authz.Attributes{User: u}
	if res != nil {
		a.ResourceRequest = true
		a.Verb, a.APIGroup, a.APIVersion = res.Verb, res.Group, res.Version
		a.Resource, a.Subresource, a.Namespace, a.Name = res.Resource, res.Subresource, res.Namespace, res.Name
		return a
	}
	a.Verb, a.Path = nonRes.Verb, nonRes.Path
	return a
}

// rulesReview lists what the user may do in namespace, as far as the
// authorizer can tell (authz.RuleLister); no authorizer allows everything.
func (s *server) rulesReview(u auth.User, namespace string) authorizationv1.SubjectRulesReviewStatus {
	if s.cfg.Authorizer == nil {
		return authorizationv1.SubjectRulesReviewStatus{
			ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
			NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		}
	}
	lister, ok := s.cfg.Authorizer.(authz.RuleLister)
	if !ok {
		return authorizationv1.SubjectRulesReviewStatus{Incomplete: true}
	}
	rules, incomplete, err := lister.RulesFor(u, namespace)
	st := authorizationv1.SubjectRulesReviewStatus{Incomplete: incomplete,
		ResourceRules: []authorizationv1.ResourceRule{}, NonResourceRules: []authorizationv1.NonResourceRule{}}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			st.NonResourceRules = append(st.NonResourceRules, authorizationv1.NonResourceRule{Verbs: r.Verbs, NonResourceURLs: r.NonResourceURLs})
			continue
		}
		st.ResourceRules = append(st.ResourceRules, authorizationv1.ResourceRule{
			Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames})
	}
	return st
}

// review asks the authorizer; no authorizer allows everything.
func (s *server) review(ctx context.Context, a authz.Attributes) authorizationv1.SubjectAccessReviewStatus {
	if s.cfg.Authorizer == nil {
		return authorizationv1.SubjectAccessReviewStatus{Allowed: true}
	}
	decision, reason, err := s.cfg.Authorizer.Authorize(ctx, a)
	st := authorizationv1.SubjectAccessReviewStatus{
		Allowed: decision == authz.DecisionAllow,
		Denied:  decision == authz.DecisionDeny,
		Reason:  reason,
	}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}
