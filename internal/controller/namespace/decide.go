package namespace

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// NeedsCleanup reports whether ns is being deleted and still holds the
// "kubernetes" finalizer, i.e. its content must be deleted before the
// namespace can go.
func NeedsCleanup(ns *corev1.Namespace) bool {
	return ns.DeletionTimestamp != nil && slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
}

// WithoutFinalizer returns a copy of ns with the "kubernetes" finalizer
// removed from spec.finalizers: the body of the finalize call.
func WithoutFinalizer(ns *corev1.Namespace) *corev1.Namespace {
	out := ns.DeepCopy()
	out.Spec.Finalizers = slices.DeleteFunc(out.Spec.Finalizers, func(f corev1.FinalizerName) bool {
		return f == corev1.FinalizerKubernetes
	})
	return out
}

// Target is a resource whose instances a namespace deletion removes.
type Target struct {
	Resource schema.GroupVersionResource
	// DeleteCollection: the resource serves deletecollection, so one call
	// deletes every instance; otherwise each is deleted by name.
	DeleteCollection bool
}

// Deletable returns, sorted, the resources whose instances a namespace
// deletion must remove: namespaced, not subresources, supporting list and
// delete (as upstream). Lists whose group version does not parse are
// reported in the error and skipped.
func Deletable(lists []*metav1.APIResourceList) ([]Target, error) {
	var out []Target
	var bad []string
	seen := map[schema.GroupVersionResource]bool{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			bad = append(bad, l.GroupVersion)
			continue
		}
		for _, r := range l.APIResources {
			if !r.Namespaced || strings.Contains(r.Name, "/") {
				continue
			}
			if !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			if !seen[gvr] {
				seen[gvr] = true
				out = append(out, Target{Resource: gvr, DeleteCollection: slices.Contains(r.Verbs, "deletecollection")})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource.String() < out[j].Resource.String() })
	if len(bad) > 0 {
		return out, fmt.Errorf("unparsable group versions: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

// Content is what one pass found for one resource in a namespace being
// deleted, after deleting its instances.
type Content struct {
	Resource schema.GroupVersionResource
	// Remaining counts the instances still present (e.g. waiting for
	// finalizers or a grace period).
	Remaining int
	// Finalizers counts, per finalizer, the remaining instances holding it.
	Finalizers map[string]int
	// Err is why deleting or listing the instances failed, if it did.
	Err error
}

// Pass is everything one cleanup pass learned about a namespace.
type Pass struct {
	// DiscoveryErr: some groups could not be discovered, so there may be
	// content the pass did not see.
	DiscoveryErr error
	// ParseErr: some discovered group versions did not parse.
	ParseErr error
	Content  []Content
}

// Decision is what to do after a pass.
type Decision struct {
	// Finalize: everything is gone; remove the "kubernetes" finalizer.
	Finalize bool
	// Conditions are the namespace's status conditions to record (all five
	// deletion conditions, as upstream keeps them).
	Conditions []corev1.NamespaceCondition
}

// Decide turns a pass into a decision. old are the namespace's current
// conditions: a condition whose status does not change keeps its
// LastTransitionTime; one that changes gets now. When Finalize is false
// the caller tries again later.
func Decide(p Pass, old []corev1.NamespaceCondition, now metav1.Time) Decision {
	var failed, remaining []string
	finalizers := map[string]int{}
	for _, c := range p.Content {
		gr := c.Resource.GroupResource().String()
		if c.Err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", gr, c.Err))
			continue
		}
		if c.Remaining > 0 {
			remaining = append(remaining, fmt.Sprintf("%s has %d resource instances", gr, c.Remaining))
		}
		for f, n := range c.Finalizers {
			finalizers[f] += n
		}
	}
	var finalizerMsgs []string
	for f, n := range finalizers {
		finalizerMsgs = append(finalizerMsgs, fmt.Sprintf("%s in %d resource instances", f, n))
	}
	sort.Strings(failed)
	sort.Strings(remaining)
	sort.Strings(finalizerMsgs)

	conds := []corev1.NamespaceCondition{
		cond(corev1.NamespaceDeletionDiscoveryFailure, p.DiscoveryErr != nil,
			"DiscoveryFailed", errText("Discovery failed for some groups: ", p.DiscoveryErr),
			"ResourcesDiscovered", "All resources successfully discovered"),
		cond(corev1.NamespaceDeletionGVParsingFailure, p.ParseErr != nil,
			"GroupVersionParsingFailed", errText("", p.ParseErr),
			"ParsedGroupVersions", "All legacy kube types successfully parsed"),
		cond(corev1.NamespaceDeletionContentFailure, len(failed) > 0,
			"ContentDeletionFailed", "Failed to delete all resource types, "+fmt.Sprint(len(failed))+" remaining: "+strings.Join(failed, ", "),
			"ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
		cond(corev1.NamespaceContentRemaining, len(remaining) > 0,
			"SomeResourcesRemain", "Some resources are remaining: "+strings.Join(remaining, ", "),
			"ContentRemoved", "All content successfully removed"),
		cond(corev1.NamespaceFinalizersRemaining, len(finalizerMsgs) > 0,
			"SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: "+strings.Join(finalizerMsgs, ", "),
			"ContentHasNoFinalizers", "All content-preserving finalizers finished"),
	}
	for i := range conds {
		conds[i].LastTransitionTime = now
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return Decision{
		Finalize:   p.DiscoveryErr == nil && p.ParseErr == nil && len(failed) == 0 && len(remaining) == 0,
		Conditions: conds,
	}
}

func cond(t corev1.NamespaceConditionType, bad bool, badReason, badMsg, okReason, okMsg string) corev1.NamespaceCondition {
	if bad {
		return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: badReason, Message: badMsg}
	}
	return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: okReason, Message: okMsg}
}

func errText(prefix string, err error) string {
	if err == nil {
		return ""
	}
	return prefix + err.Error()
}

// ConditionsChanged reports whether want differs from old in anything but
// LastTransitionTime, i.e. whether the status needs writing.
func ConditionsChanged(old, want []corev1.NamespaceCondition) bool {
	for _, w := range want {
		i := slices.IndexFunc(old, func(o corev1.NamespaceCondition) bool { return o.Type == w.Type })
		if i < 0 || old[i].Status != w.Status || old[i].Reason != w.Reason || old[i].Message != w.Message {
			return true
		}
	}
	return false
}

// MergeConditions returns old with the types in want replaced by want's
// (other condition types kept), in want's order followed by the others.
func MergeConditions(old, want []corev1.NamespaceCondition) []corev1.NamespaceCondition {
	out := append([]corev1.NamespaceCondition(nil), want...)
	for _, o := range old {
		if !slices.ContainsFunc(want, func(w corev1.NamespaceCondition) bool { return w.Type == o.Type }) {
			out = append(out, o)
		}
	}
	return out
}
