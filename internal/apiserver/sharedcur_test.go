package apiserver_test

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// watchedPod returns the pod a local watch delivers at resourceVersion rv:
// the object the watch memo decoded, which every in-process watcher shares.
func watchedPod(t *testing.T, w watch.Interface, rv string) *corev1.Pod {
	t.Helper()
	for {
		if pod, ok := nextEvent(t, w).Object.(*corev1.Pod); ok && pod.ResourceVersion == rv {
			return pod
		}
	}
}

// TestStatusWriteAndBindingLeaveTheWatchersPodAlone: a binding and a status
// write start from the pod the watch memo decoded, without a copy; the pod
// an in-process watch received is the same after them.
func TestStatusWriteAndBindingLeaveTheWatchersPodAlone(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, uniqueNamespace("shared-cur"))
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods(ns)
	w, err := ts.server.Watch(ctx, podsGVR, ns, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	key := "/registry/core/pods/" + ns + "/p"

	created, err := pods.Create(ctx, testPod("p", map[string]string{"app": "web"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// As the scheduler reports a pod it could not place: the binding
	// replaces this condition.
	created.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable},
		{Type: "example.com/gate", Status: corev1.ConditionTrue},
	}
	pending, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held := watchedPod(t, w, pending.ResourceVersion)
	ts.waitCached(t, key, pending.ResourceVersion)
	before := held.DeepCopy()
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bound.Spec.NodeName != "n1" || len(bound.Status.Conditions) != 2 || bound.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Fatalf("bound pod: nodeName %q, conditions %+v", bound.Spec.NodeName, bound.Status.Conditions)
	}
	if !reflect.DeepEqual(held, before) {
		t.Fatalf("the binding changed the watch's pod:\n%+v\nwas\n%+v", held, before)
	}

	held = watchedPod(t, w, bound.ResourceVersion)
	ts.waitCached(t, key, bound.ResourceVersion)
	before = held.DeepCopy()
	running := held.DeepCopy()
	running.Status.Phase = corev1.PodRunning
	running.Status.PodIP = "10.0.0.5"
	running.Status.Conditions[1].Status = corev1.ConditionFalse
	written, err := pods.UpdateStatus(ctx, running, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Defaulted as before: podIP is folded into podIPs.
	if written.Status.Phase != corev1.PodRunning || len(written.Status.PodIPs) != 1 || written.Status.PodIPs[0].IP != "10.0.0.5" {
		t.Fatalf("status written: %+v", written.Status)
	}
	if !reflect.DeepEqual(held, before) {
		t.Fatalf("the status write changed the watch's pod:\n%+v\nwas\n%+v", held, before)
	}
}
