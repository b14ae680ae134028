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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

var configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// partial asserts a watch event carries a PartialObjectMetadata named name.
func partial(t *testing.T, ev watch.Event, typ watch.EventType, name string) *metav1.PartialObjectMetadata {
	t.Helper()
	m, ok := ev.Object.(*metav1.PartialObjectMetadata)
	if !ok {
		t.Fatalf("%s event: got %T (%v), want *PartialObjectMetadata", ev.Type, ev.Object, ev.Object)
	}
	if ev.Type != typ || m.Name != name {
		t.Fatalf("got %s %q, want %s %q", ev.Type, m.Name, typ, name)
	}
	return m
}

// TestMetadataClient drives client-go's metadata client (what the garbage
// collector uses): list, watch from the list's resourceVersion with
// bookmarks, get, patch and delete, all in PartialObjectMetadata.
func TestMetadataClient(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "partialmeta")
	ctx := context.Background()
	md := metadata.NewForConfigOrDie(ts.config).Resource(configMapsGVR).Namespace(ns)
	cms := ts.client.CoreV1().ConfigMaps(ns)
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "o", UID: "owner-uid"}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "a", OwnerReferences: []metav1.OwnerReference{owner}},
		Data:       map[string]string{"big": "not in the metadata"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := md.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "a" || list.Items[0].UID == "" ||
		len(list.Items[0].OwnerReferences) != 1 || list.Items[0].OwnerReferences[0].UID != owner.UID {
		t.Fatalf("list: %+v", list.Items)
	}
	if list.ResourceVersion == "" {
		t.Fatal("list has no resourceVersion")
	}

	w, err := md.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	partial(t, nextEvent(t, w), watch.Added, "b")

	// Patch and read back through the metadata client.
	patched, err := md.Patch(ctx, "a", types.MergePatchType, []byte(`{"metadata":{"finalizers":["example.com/hold"]}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(patched.Finalizers) != 1 || patched.Name != "a" {
		t.Fatalf("patch returned %+v", patched.ObjectMeta)
	}
	partial(t, nextEvent(t, w), watch.Modified, "a")
	got, err := md.Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != patched.ResourceVersion || len(got.OwnerReferences) != 1 {
		t.Fatalf("get: %+v", got.ObjectMeta)
	}

	// Delete with a UID precondition: a wrong one conflicts.
	wrong := types.UID("not-the-uid")
	if err := md.Delete(ctx, "b", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrong}}); !apierrors.IsConflict(err) {
		t.Fatalf("delete with a wrong uid: %v, want a conflict", err)
	}
	if err := md.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	partial(t, nextEvent(t, w), watch.Deleted, "b")
	if _, err := md.Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

// TestMetadataWatchListBookmark: a watch that sends the initial events
// ends them with a bookmark the metadata client can decode (client-go's
// reflector uses this "watch list" by default).
func TestMetadataWatchListBookmark(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "partialmetawl")
	ctx := context.Background()
	md := metadata.NewForConfigOrDie(ts.config).Resource(configMapsGVR).Namespace(ns)
	if _, err := ts.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes := true
	w, err := md.Watch(ctx, metav1.ListOptions{
		SendInitialEvents: &yes, AllowWatchBookmarks: true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	partial(t, nextEvent(t, w), watch.Added, "a")
	ev := nextEvent(t, w)
	m, ok := ev.Object.(*metav1.PartialObjectMetadata)
	if ev.Type != watch.Bookmark || !ok {
		t.Fatalf("got %s %T (%v), want a PartialObjectMetadata bookmark", ev.Type, ev.Object, ev.Object)
	}
	if m.Annotations[metav1.InitialEventsAnnotationKey] != "true" || m.ResourceVersion == "" {
		t.Fatalf("bookmark: %+v", m.ObjectMeta)
	}
}

// TestMetadataInformer: a metadata informer syncs and then follows changes.
func TestMetadataInformer(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "partialmetainf")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f := metadatainformer.NewFilteredSharedInformerFactory(metadata.NewForConfigOrDie(ts.config), 0, ns, nil)
	inf := f.ForResource(configMapsGVR).Informer()
	added := make(chan any, 1)
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if m, ok := obj.(metav1.Object); ok && m.GetName() == "after" {
			added <- obj
		}
	}}); err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	defer f.Shutdown() // after cancel (deferred calls run last first)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("not synced")
	}
	if _, ok, _ := inf.GetStore().GetByKey(ns + "/before"); !ok {
		t.Fatal("synced without the existing configmap")
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case obj := <-added:
		if _, isMeta := obj.(*metav1.PartialObjectMetadata); !isMeta {
			t.Fatalf("informer holds %T", obj)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("informer never saw the configmap created after it synced")
	}
}

// TestPartialMetadataInProtobuf: a client asking partial metadata in
// protobuf first (client-go's metadata client does) gets protobuf, in
// get, list and watch; a Table asked in protobuf is still JSON.
func TestPartialMetadataInProtobuf(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "partialmeta-pb")
	ctx := context.Background()
	if _, err := ts.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func(path, accept string) (string, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 512)
		n, _ := io.ReadAtLeast(resp.Body, buf, 8)
		return resp.Header.Get("Content-Type"), buf[:n]
	}
	const meta = ";g=meta.k8s.io;v=v1"
	for _, tc := range []struct {
		name, path, accept, wantType, wantIn string
	}{
		{"get", "/api/v1/namespaces/" + ns + "/configmaps/a",
			protobufType + ";as=PartialObjectMetadata" + meta + ",application/json;as=PartialObjectMetadata" + meta, protobufType, "PartialObjectMetadata"},
		{"list", "/api/v1/namespaces/" + ns + "/configmaps",
			protobufType + ";as=PartialObjectMetadataList" + meta + ",application/json;as=PartialObjectMetadataList" + meta, protobufType, "PartialObjectMetadataList"},
		{"watch", "/api/v1/namespaces/" + ns + "/configmaps?watch=1&resourceVersion=0",
			protobufType + ";as=PartialObjectMetadata" + meta + ",application/json;as=PartialObjectMetadata" + meta, protobufType + ";stream=watch", "PartialObjectMetadata"},
		{"table", "/api/v1/namespaces/" + ns + "/configmaps",
			protobufType + ";as=Table" + meta + ",application/json;as=Table" + meta, "application/json", `"kind":"Table"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := get(tc.path, tc.accept)
			if ct != tc.wantType || !bytes.Contains(body, []byte(tc.wantIn)) {
				t.Errorf("Content-Type %q, body %q; want %q containing %q", ct, body, tc.wantType, tc.wantIn)
			}
		})
	}
}
