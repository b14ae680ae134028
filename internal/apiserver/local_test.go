package apiserver_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

func uniqueNamespace(prefix string) string {
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
}

func testPod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
}

// seen is one event as a client sees it.
type seen struct {
	Type watch.EventType
	Name string
	RV   string
}

func collect(t *testing.T, w watch.Interface, n int) []seen {
	t.Helper()
	var out []seen
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch ended after %v, want %d events", out, n)
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				t.Fatalf("event %s with %T", ev.Type, ev.Object)
			}
			out = append(out, seen{ev.Type, pod.Name, pod.ResourceVersion})
		case <-timeout:
			t.Fatalf("timed out with %v, want %d events", out, n)
		}
	}
	return out
}

// TestLocalWatchSeesWhatAWatchRequestSees: the in-process watch and a
// client-go watch with the same selector, from the same resourceVersion,
// get the same events, objects entering and leaving the selection
// included.
func TestLocalWatchSeesWhatAWatchRequestSees(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, uniqueNamespace("local-watch"))
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods(ns)
	first, err := pods.Create(ctx, testPod("before", map[string]string{"app": "web"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := metav1.ListOptions{LabelSelector: "app=web", ResourceVersion: first.ResourceVersion}
	remote, err := pods.Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Stop()
	local, err := ts.server.Watch(ctx, podsGVR, ns, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Stop()

	a, err := pods.Create(ctx, testPod("a", map[string]string{"app": "web"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, testPod("other", map[string]string{"app": "db"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.Labels["app"] = "db" // leaves the selection: DELETED
	if a, err = pods.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.Labels["app"] = "web" // back: ADDED
	if a, err = pods.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.Annotations = map[string]string{"k": "v"}
	if _, err = pods.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	want := collect(t, remote, 5)
	got := collect(t, local, 5)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("local watch saw %v\nwatch request saw %v", got, want)
	}
	types := []watch.EventType{watch.Added, watch.Deleted, watch.Added, watch.Modified, watch.Deleted}
	for i, ev := range got {
		if ev.Type != types[i] || ev.Name != "a" {
			t.Fatalf("events %v, want types %v for pod a", got, types)
		}
	}
	local.Stop()
	for range local.ResultChan() {
	}
}

// TestLocalWatchList: with sendInitialEvents the local watch sends the
// current objects, then the bookmark that ends them, as client-go's
// watch-list reflector expects; an informer built on it syncs and follows.
func TestLocalWatchList(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, uniqueNamespace("local-watchlist"))
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods(ns)
	for _, name := range []string{"p1", "p2"} {
		if _, err := pods.Create(ctx, testPod(name, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	yes := true
	w, err := ts.server.Watch(ctx, podsGVR, ns, metav1.ListOptions{
		SendInitialEvents: &yes, AllowWatchBookmarks: true, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var names []string
	for ev := range w.ResultChan() {
		if ev.Type == watch.Bookmark {
			acc := ev.Object.(*corev1.Pod)
			if acc.Annotations[metav1.InitialEventsAnnotationKey] != "true" || acc.ResourceVersion == "" {
				t.Fatalf("bookmark %+v does not end the initial events", acc.ObjectMeta)
			}
			break
		}
		names = append(names, ev.Object.(*corev1.Pod).Name)
	}
	if fmt.Sprint(names) != "[p1 p2]" {
		t.Fatalf("initial events for %v, want [p1 p2]", names)
	}

	// An informer over it (client-go's reflector uses watch-list).
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return pods.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return ts.server.Watch(ctx, podsGVR, ns, opts)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	stop := make(chan struct{})
	defer close(stop)
	go inf.Run(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if _, err := pods.Create(ctx, testPod("p3", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(inf.GetStore().ListKeys()) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("informer holds %v, want 3 pods", inf.GetStore().ListKeys())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLocalWatchErrors(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	if _, err := ts.server.Watch(ctx, schema.GroupVersionResource{Version: "v1", Resource: "nothings"}, "", metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("unknown resource: %v, want NotFound", err)
	}
	if _, err := ts.server.Watch(ctx, podsGVR, "", metav1.ListOptions{FieldSelector: "spec.nothing=x"}); !apierrors.IsBadRequest(err) {
		t.Errorf("unknown field: %v, want BadRequest", err)
	}
	if _, err := ts.server.Watch(ctx, podsGVR, "", metav1.ListOptions{ResourceVersion: "x"}); !apierrors.IsBadRequest(err) {
		t.Errorf("bad resourceVersion: %v, want BadRequest", err)
	}
}

// TestLocalWatchMetadata: the metadata form gives PartialObjectMetadata for
// objects and bookmarks alike, with the object's metadata.
func TestLocalWatchMetadata(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, uniqueNamespace("local-watch-md"))
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods(ns)
	if _, err := pods.Create(ctx, testPod("p", map[string]string{"app": "web"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes := true
	w, err := ts.server.WatchMetadata(ctx, podsGVR, ns, metav1.ListOptions{SendInitialEvents: &yes, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.ResultChan()
	m, ok := ev.Object.(*metav1.PartialObjectMetadata)
	if ev.Type != watch.Added || !ok || m.Name != "p" || m.Labels["app"] != "web" || m.ResourceVersion == "" || m.Kind != "PartialObjectMetadata" {
		t.Fatalf("first event %s %#v", ev.Type, ev.Object)
	}
	ev = <-w.ResultChan()
	if b, ok := ev.Object.(*metav1.PartialObjectMetadata); ev.Type != watch.Bookmark || !ok || b.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("second event %s %#v, want the bookmark ending the initial events", ev.Type, ev.Object)
	}
}
