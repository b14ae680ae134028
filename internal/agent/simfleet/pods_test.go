package simfleet

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

func TestNodePodsSeesOnlyItsNode(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{nodeIndex: indexByNode})
	pod := func(ns, name, node string, l map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}, Spec: corev1.PodSpec{NodeName: node}}
	}
	for _, p := range []*corev1.Pod{
		pod("a", "p1", "n1", map[string]string{"app": "x"}),
		pod("b", "p2", "n1", nil),
		pod("a", "p3", "n2", map[string]string{"app": "x"}),
		pod("a", "p4", "", nil),
	} {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	l := nodePods{idx: idx, node: "n1"}
	all, _ := l.List(labels.Everything())
	if len(all) != 2 {
		t.Errorf("n1 lists %d pods, want 2", len(all))
	}
	sel := labels.SelectorFromSet(labels.Set{"app": "x"})
	if got, _ := l.List(sel); len(got) != 1 || got[0].Name != "p1" {
		t.Errorf("n1 app=x lists %v, want p1", got)
	}
	if got, _ := l.Pods("b").List(labels.Everything()); len(got) != 1 || got[0].Name != "p2" {
		t.Errorf("n1 in b lists %v, want p2", got)
	}
	if p, err := l.Pods("a").Get("p1"); err != nil || p.Name != "p1" {
		t.Errorf("Get p1 = %v, %v", p, err)
	}
	for _, name := range []string{"p3", "p4", "nope"} {
		if _, err := l.Pods("a").Get(name); !apierrors.IsNotFound(err) {
			t.Errorf("Get %s on n1: %v, want NotFound", name, err)
		}
	}
}
