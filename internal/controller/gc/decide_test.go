package gc

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

func ref(uid string, block bool) metav1.OwnerReference {
	yes := true
	r := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs-" + uid, UID: types.UID(uid), Controller: &yes}
	if block {
		r.BlockOwnerDeletion = &yes
	}
	return r
}

func owner(uid string, s OwnerState) Owner { return Owner{Ref: ref(uid, true), State: s} }

func TestDecide(t *testing.T) {
	orphanF := []string{metav1.FinalizerOrphanDependents}
	fgF := []string{metav1.FinalizerDeleteDependents}
	tests := []struct {
		name          string
		owners        []Owner
		finalizers    []string
		hasDependents bool
		want          Decision
	}{
		{"no owners", nil, nil, false, Decision{Action: Keep}},
		{"owner present", []Owner{owner("a", OwnerPresent)}, nil, false, Decision{Action: Keep}},
		{"owner gone: background", []Owner{owner("a", OwnerAbsent)}, nil, true,
			Decision{Action: Delete, Policy: metav1.DeletePropagationBackground}},
		{"all owners gone", []Owner{owner("a", OwnerAbsent), owner("b", OwnerAbsent)}, nil, false,
			Decision{Action: Delete, Policy: metav1.DeletePropagationBackground}},
		{"one owner left: drop the dangling reference", []Owner{owner("a", OwnerAbsent), owner("b", OwnerPresent)}, nil, false,
			Decision{Action: RemoveRefs, Remove: []types.UID{"a"}}},
		{"one owner left, another deleting dependents: drop it so it is not held", []Owner{owner("a", OwnerDeletingDependents), owner("b", OwnerPresent)}, nil, false,
			Decision{Action: RemoveRefs, Remove: []types.UID{"a"}}},
		{"owner deleting dependents, leaf dependent: background", []Owner{owner("a", OwnerDeletingDependents)}, nil, false,
			Decision{Action: Delete, Policy: metav1.DeletePropagationBackground}},
		{"owner deleting dependents, dependent with dependents: foreground", []Owner{owner("a", OwnerDeletingDependents)}, nil, true,
			Decision{Action: Delete, Policy: metav1.DeletePropagationForeground}},
		{"owner gone, dependent asks orphan", []Owner{owner("a", OwnerAbsent)}, orphanF, true,
			Decision{Action: Delete, Policy: metav1.DeletePropagationOrphan}},
		{"owner gone, dependent asks foreground", []Owner{owner("a", OwnerAbsent)}, fgF, true,
			Decision{Action: Delete, Policy: metav1.DeletePropagationForeground}},
		{"unknown owner keeps it, and asks for a retry", []Owner{owner("a", OwnerUnknown), owner("b", OwnerAbsent)}, nil, false,
			Decision{Action: RemoveRefs, Remove: []types.UID{"b"}, Unresolved: true}},
		{"only unknown", []Owner{owner("a", OwnerUnknown)}, nil, false, Decision{Action: Keep, Unresolved: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.owners, tt.finalizers, tt.hasDependents)
			if got.Action != tt.want.Action || got.Policy != tt.want.Policy || got.Unresolved != tt.want.Unresolved || !slices.Equal(got.Remove, tt.want.Remove) {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStateOf(t *testing.T) {
	if StateOf(false, []string{metav1.FinalizerDeleteDependents}) != OwnerPresent {
		t.Error("a live owner with the finalizer is just present")
	}
	if StateOf(true, []string{"x", metav1.FinalizerDeleteDependents}) != OwnerDeletingDependents {
		t.Error("deleting with foregroundDeletion is deleting dependents")
	}
	if StateOf(true, []string{metav1.FinalizerOrphanDependents}) != OwnerPresent {
		t.Error("an owner orphaning its dependents does not delete them")
	}
}

func TestForeground(t *testing.T) {
	tests := []struct {
		name       string
		deps       []Dependent
		wantDelete []int
		wantDone   bool
	}{
		{"no dependents", nil, nil, true},
		{"blocking dependent, live", []Dependent{{Refs: []metav1.OwnerReference{ref("o", true)}}}, []int{0}, false},
		{"blocking dependent being deleted still blocks", []Dependent{{Refs: []metav1.OwnerReference{ref("o", true)}, Deleting: true}}, nil, false},
		{"non-blocking dependent is deleted but does not block", []Dependent{{Refs: []metav1.OwnerReference{ref("o", false)}}}, []int{0}, true},
		{"mixed", []Dependent{
			{Refs: []metav1.OwnerReference{ref("x", true), ref("o", false)}},
			{Refs: []metav1.OwnerReference{ref("o", true)}, Deleting: true},
			{Refs: []metav1.OwnerReference{ref("other", true)}}, // not ours
		}, []int{0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, done := Foreground("o", tt.deps)
			if !slices.Equal(del, tt.wantDelete) || done != tt.wantDone {
				t.Errorf("Foreground = %v %v, want %v %v", del, done, tt.wantDelete, tt.wantDone)
			}
		})
	}
}

func TestWithout(t *testing.T) {
	refs := []metav1.OwnerReference{ref("a", true), ref("b", false), ref("c", true)}
	got := WithoutOwners(refs, "a", "c")
	if len(got) != 1 || got[0].UID != "b" {
		t.Errorf("WithoutOwners = %v", got)
	}
	if WithoutOwners(refs[:1], "a") != nil {
		t.Error("no owners left must be nil (a JSON null removes the field)")
	}
	if got := WithoutFinalizer([]string{"x", metav1.FinalizerOrphanDependents}, metav1.FinalizerOrphanDependents); !slices.Equal(got, []string{"x"}) {
		t.Errorf("WithoutFinalizer = %v", got)
	}
	if WithoutFinalizer([]string{metav1.FinalizerOrphanDependents}, metav1.FinalizerOrphanDependents) != nil {
		t.Error("no finalizers left must be nil")
	}
}

func TestWatchableAndKinds(t *testing.T) {
	all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	lists := []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: all},
			{Name: "pods/status", Kind: "Pod", Namespaced: true, Verbs: []string{"get", "patch", "update"}},
			{Name: "events", Kind: "Event", Namespaced: true, Verbs: all},
			{Name: "bindings", Kind: "Binding", Namespaced: true, Verbs: []string{"create"}},
			{Name: "namespaces", Kind: "Namespace", Verbs: all},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, Verbs: all},
		}},
		{GroupVersion: "events.k8s.io/v1", APIResources: []metav1.APIResource{
			{Name: "events", Kind: "Event", Namespaced: true, Verbs: all},
		}},
		{GroupVersion: "autoscaling/v2", APIResources: []metav1.APIResource{
			{Name: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler", Namespaced: true, Verbs: all},
		}},
		{GroupVersion: "autoscaling/v1", APIResources: []metav1.APIResource{
			{Name: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler", Namespaced: true, Verbs: all},
		}},
	}
	var got []string
	for _, gvr := range Watchable(lists) {
		got = append(got, gvr.String())
	}
	want := []string{
		"/v1, Resource=namespaces", "/v1, Resource=pods",
		"apps/v1, Resource=replicasets",
		"autoscaling/v2, Resource=horizontalpodautoscalers",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Watchable = %q\nwant %q", got, want)
	}
	kinds := Kinds(lists)
	if k := kinds[schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "HorizontalPodAutoscaler"}]; k.Resource.Version != "v1" || !k.Namespaced {
		t.Errorf("autoscaling/v1 HPA kind = %+v: every version must resolve", k)
	}
	if k := kinds[schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}]; k.Resource.Resource != "namespaces" || k.Namespaced {
		t.Errorf("Namespace kind = %+v", k)
	}
	if _, ok := kinds[schema.GroupVersionKind{Version: "v1", Kind: "Pod"}]; !ok {
		t.Error("Pod kind missing")
	}
}
