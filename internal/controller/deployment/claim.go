package deployment

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Claims is how the ReplicaSets of a namespace stand towards a Deployment.
type Claims struct {
	// Owned are controlled by the Deployment and match its selector (or the
	// Deployment is being deleted, when nothing is released).
	Owned []*appsv1.ReplicaSet
	// Adopt are orphans matching the selector, to be made the Deployment's.
	Adopt []*appsv1.ReplicaSet
	// Release are controlled by the Deployment but no longer match.
	Release []*appsv1.ReplicaSet
}

// Claim sorts rss (a namespace's ReplicaSets) as upstream's
// ControllerRefManager would: a Deployment being deleted adopts nothing
// and releases nothing; ReplicaSets being deleted are not adopted.
func Claim(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) (Claims, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return Claims{}, fmt.Errorf("deployment %s/%s: invalid selector: %w", d.Namespace, d.Name, err)
	}
	var c Claims
	for _, rs := range rss {
		if rs.Namespace != d.Namespace {
			continue
		}
		match := !sel.Empty() && sel.Matches(labels.Set(rs.Labels))
		ref := metav1.GetControllerOf(rs)
		switch {
		case ref != nil && ref.UID == d.UID:
			if match || d.DeletionTimestamp != nil {
				c.Owned = append(c.Owned, rs)
			} else {
				c.Release = append(c.Release, rs)
			}
		case ref == nil && match && d.DeletionTimestamp == nil && rs.DeletionTimestamp == nil:
			c.Adopt = append(c.Adopt, rs)
		}
	}
	return c, nil
}

// Adopted returns a copy of rs controlled by d.
func Adopted(d *appsv1.Deployment, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	out := rs.DeepCopy()
	out.OwnerReferences = append(out.OwnerReferences, *metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment")))
	return out
}

// Released returns a copy of rs without d's owner reference.
func Released(d *appsv1.Deployment, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	out := rs.DeepCopy()
	out.OwnerReferences = nil
	for _, r := range rs.OwnerReferences {
		if r.UID != d.UID {
			out.OwnerReferences = append(out.OwnerReferences, r)
		}
	}
	return out
}
