package simfleet

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestDispatcherTellsOnlyThePodsNode(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{nodeIndex: indexByNode})
	pod := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: node}}
	}
	if err := idx.Add(pod("old", "n1")); err != nil {
		t.Fatal(err)
	}
	d := newDispatcher(idx)
	seen := map[string][]string{}
	handler := func(node string) cache.ResourceEventHandler {
		note := func(what string) func(any) {
			return func(obj any) {
				if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = t.Obj
				}
				seen[node] = append(seen[node], what+" "+obj.(*corev1.Pod).Name)
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: note("add"), UpdateFunc: func(_, o any) { note("update")(o) }, DeleteFunc: note("delete")}
	}
	unsubscribe := d.subscribe("n1", handler("n1"))
	d.subscribe("n2", handler("n2"))

	d.OnAdd(pod("pending", ""), false)                   // unbound: nobody
	d.OnUpdate(pod("pending", ""), pod("pending", "n2")) // bound to n2
	d.OnAdd(pod("new", "n1"), false)
	d.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/new", Obj: pod("new", "n1")})
	unsubscribe()
	d.OnAdd(pod("late", "n1"), false)

	if want := []string{"add old", "add new", "delete new"}; !slices.Equal(seen["n1"], want) {
		t.Errorf("n1 saw %q, want %q", seen["n1"], want)
	}
	if want := []string{"update pending"}; !slices.Equal(seen["n2"], want) {
		t.Errorf("n2 saw %q, want %q", seen["n2"], want)
	}
}
