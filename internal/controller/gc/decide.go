package gc

import (
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// OwnerState is what the collector knows of the object an owner reference
// points to.
type OwnerState int

const (
	// OwnerUnknown: the reference cannot be resolved (a kind the server
	// does not serve, or the lookup failed). The dependent is kept.
	OwnerUnknown OwnerState = iota
	// OwnerAbsent: no object with the reference's UID exists (deleted, or
	// the name now belongs to another object).
	OwnerAbsent
	// OwnerPresent: the owner exists and is not deleting its dependents.
	OwnerPresent
	// OwnerDeletingDependents: the owner is being deleted in the
	// foreground (deletionTimestamp and the foregroundDeletion finalizer)
	// and waits for its dependents to go.
	OwnerDeletingDependents
)

func (s OwnerState) String() string {
	return [...]string{"Unknown", "Absent", "Present", "DeletingDependents"}[s]
}

// StateOf returns the state of an owner that exists, from its
// deletionTimestamp and finalizers.
func StateOf(deleting bool, finalizers []string) OwnerState {
	if deleting && slices.Contains(finalizers, metav1.FinalizerDeleteDependents) {
		return OwnerDeletingDependents
	}
	return OwnerPresent
}

// Owner is one owner reference of a dependent and what its target is.
type Owner struct {
	Ref   metav1.OwnerReference
	State OwnerState
}

// Action is what the collector does to a dependent.
type Action int

const (
	// Keep the dependent as it is.
	Keep Action = iota
	// RemoveRefs removes the references to absent owners and to owners
	// deleting their dependents, because another owner keeps it alive.
	RemoveRefs
	// Delete the dependent with Decision.Policy.
	Delete
)

func (a Action) String() string { return [...]string{"Keep", "RemoveRefs", "Delete"}[a] }

// Decision is the collector's verdict on one dependent.
type Decision struct {
	Action Action
	// Remove lists the owner UIDs to drop, for RemoveRefs.
	Remove []types.UID
	// Policy is the propagation policy of the deletion, for Delete.
	Policy metav1.DeletionPropagation
	// Unresolved: some owner's state is unknown; look again later.
	Unresolved bool
}

// Decide says what to do with a dependent given its owners, as upstream's
// garbage collector:
//   - an owner that is present (or unknown) keeps the dependent alive; the
//     references to absent owners and to owners deleting their dependents
//     are then removed, so those owners are not held up by it;
//   - with no such owner, if some owner is deleting its dependents and
//     the dependent has dependents of its own, it is deleted in the
//     foreground, so its owner waits for the whole subtree;
//   - otherwise it is deleted with the policy its own finalizers ask for
//     (orphan, foreground), background by default.
//
// A dependent with no owners is kept.
func Decide(owners []Owner, finalizers []string, hasDependents bool) Decision {
	if len(owners) == 0 {
		return Decision{Action: Keep}
	}
	var solid, unresolved bool
	var drop []types.UID
	waiting := false
	for _, o := range owners {
		switch o.State {
		case OwnerUnknown:
			solid, unresolved = true, true
		case OwnerPresent:
			solid = true
		case OwnerAbsent:
			drop = append(drop, o.Ref.UID)
		case OwnerDeletingDependents:
			drop = append(drop, o.Ref.UID)
			waiting = true
		}
	}
	switch {
	case solid && len(drop) == 0:
		return Decision{Action: Keep, Unresolved: unresolved}
	case solid:
		return Decision{Action: RemoveRefs, Remove: drop, Unresolved: unresolved}
	case waiting && hasDependents:
		return Decision{Action: Delete, Policy: metav1.DeletePropagationForeground}
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case slices.Contains(finalizers, metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case slices.Contains(finalizers, metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return Decision{Action: Delete, Policy: policy}
}

// Dependent is, for an owner being deleted, one object that refers to it.
type Dependent struct {
	Refs []metav1.OwnerReference
	// Deleting: the dependent has a deletionTimestamp already.
	Deleting bool
}

// Foreground decides for an owner being deleted in the foreground: the
// indexes of the dependents to delete now (those not already being
// deleted), and whether the owner may drop its foregroundDeletion
// finalizer: no dependent, even one being deleted, still blocks it with
// blockOwnerDeletion.
func Foreground(owner types.UID, deps []Dependent) (toDelete []int, done bool) {
	done = true
	for i, d := range deps {
		ref := refTo(d.Refs, owner)
		if ref == nil {
			continue
		}
		if ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
			done = false
		}
		if !d.Deleting {
			toDelete = append(toDelete, i)
		}
	}
	return toDelete, done
}

func refTo(refs []metav1.OwnerReference, uid types.UID) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].UID == uid {
			return &refs[i]
		}
	}
	return nil
}

// WithoutOwners returns refs without the references to the given UIDs
// (nil when none remain).
func WithoutOwners(refs []metav1.OwnerReference, uids ...types.UID) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, r := range refs {
		if !slices.Contains(uids, r.UID) {
			out = append(out, r)
		}
	}
	return out
}

// WithoutFinalizer returns finalizers without f (nil when none remain).
func WithoutFinalizer(finalizers []string, f string) []string {
	var out []string
	for _, x := range finalizers {
		if x != f {
			out = append(out, x)
		}
	}
	return out
}

// Kind is how the collector reaches the objects of one kind.
type Kind struct {
	Resource   schema.GroupVersionResource
	Namespaced bool
}

// Kinds maps every kind (in every served version) to its resource, to
// resolve owner references (apiVersion and kind) to something to GET.
func Kinds(lists []*metav1.APIResourceList) map[schema.GroupVersionKind]Kind {
	out := map[schema.GroupVersionKind]Kind{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			out[gv.WithKind(r.Kind)] = Kind{Resource: gv.WithResource(r.Name), Namespaced: r.Namespaced}
		}
	}
	return out
}

// ignored are the resources upstream's collector does not watch: events
// never own anything and are too many to hold.
var ignored = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// Watchable returns, sorted, the resources to watch for owner
// references: not subresources, serving list, watch and delete, minus the
// ignored ones. Pass the server's preferred versions, so each resource is
// watched once.
func Watchable(lists []*metav1.APIResourceList) []schema.GroupVersionResource {
	var out []schema.GroupVersionResource
	seen := map[schema.GroupResource]bool{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			if !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "watch") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			if ignored[gvr.GroupResource()] || seen[gvr.GroupResource()] {
				continue
			}
			seen[gvr.GroupResource()] = true
			out = append(out, gvr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
