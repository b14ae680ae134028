package apiserver_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const protobufType = "application/vnd.kubernetes.protobuf"

// protobufClient is a clientset that sends and prefers protobuf, as
// Drover's own components and upstream's do.
func protobufClient(t *testing.T, ts *testServer) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(ts.config)
	cfg.ContentType = protobufType
	cfg.AcceptContentTypes = protobufType + ",application/json"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func TestProtobufResponses(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "protobuf")
	ctx := context.Background()
	pods := protobufClient(t, ts).CoreV1().Pods(ns)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.Spec.Containers[0].Image != "web:1" {
		t.Fatalf("created pod came back wrong: %+v", created)
	}

	// The wire form is protobuf, enveloped as upstream's.
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/api/v1/namespaces/"+ns+"/pods/web", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Accept", protobufType+", application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != protobufType || !bytes.HasPrefix(body, []byte("k8s\x00")) {
		t.Fatalf("GET with Accept protobuf: Content-Type %q, body starts %q", ct, body[:min(len(body), 8)])
	}

	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: created.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	got := created.DeepCopy()
	got.Status.Phase = corev1.PodRunning
	got.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	updated, err := pods.UpdateStatus(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Status.Phase != corev1.PodRunning {
		t.Fatalf("status update not returned: %+v", updated.Status)
	}
	patched, err := pods.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"front"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if patched.Labels["tier"] != "front" || patched.Labels["app"] != "web" {
		t.Fatalf("patched labels %v", patched.Labels)
	}
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "tier=front"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "web" || list.ResourceVersion == "" {
		t.Fatalf("list: %d items, resourceVersion %q", len(list.Items), list.ResourceVersion)
	}
	if err := pods.Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}

	// The watch saw every change, typed, in order.
	var seen []string
	for len(seen) < 3 {
		ev := nextEvent(t, w)
		if ev.Type == watch.Bookmark {
			continue
		}
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			t.Fatalf("watch event %s carries %T", ev.Type, ev.Object)
		}
		seen = append(seen, string(ev.Type)+" "+string(p.Status.Phase)+" "+p.Labels["tier"])
	}
	want := []string{"MODIFIED Running ", "MODIFIED Running front", "DELETED Running front"}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("watch events %q, want %q", seen, want)
		}
	}

	// Errors keep their shape.
	if _, err := pods.Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get of a deleted pod: %v, want NotFound", err)
	}
	_, err = pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name"}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("invalid pod: %v, want 422 Invalid", err)
	}
}

// An informer over protobuf (list, then watch with bookmarks) syncs and
// follows changes.
func TestProtobufInformer(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "protobufinformer")
	client := protobufClient(t, ts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms := client.CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps()
	inf.Informer() // registers it with the factory before Start
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		t.Fatal("informer did not sync")
	}
	if _, err := inf.Lister().ConfigMaps(ns).Get("before"); err != nil {
		t.Fatalf("listed object missing: %v", err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cm, err := inf.Lister().ConfigMaps(ns).Get("after")
		if err == nil && cm.Data["k"] == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer never saw the watched object: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Objects are stored in protobuf; a value stored as JSON (by an earlier
// version of Drover) still reads, updates and is then stored in protobuf.
func TestStoredInProtobufAndJSONStillReads(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "storedformat")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := ts.store.Get(ctx, "/registry/core/configmaps/"+ns+"/new")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(kv.Value, []byte("k8s\x00")) {
		t.Errorf("stored value is not protobuf: %q", kv.Value[:min(len(kv.Value), 20)])
	}

	legacy := `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"legacy","namespace":"` + ns + `","uid":"0b1e5e6a-0000-4000-8000-000000000001","creationTimestamp":"2026-01-01T00:00:00Z"},"data":{"old":"json"}}`
	if _, err := ts.store.Create(ctx, "/registry/core/configmaps/"+ns+"/legacy", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, "legacy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["old"] != "json" || cm.UID != "0b1e5e6a-0000-4000-8000-000000000001" {
		t.Fatalf("legacy JSON value read back as %+v", cm)
	}
	cm.Data["new"] = "write"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err = ts.store.Get(ctx, "/registry/core/configmaps/"+ns+"/legacy")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(kv.Value, []byte("k8s\x00")) {
		t.Errorf("updated legacy value is not protobuf: %q", kv.Value[:min(len(kv.Value), 20)])
	}
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("list after update: %v, %d items", err, len(list.Items))
	}
}
