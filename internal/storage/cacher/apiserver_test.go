package cacher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
	"github.com/drover/drover/internal/storage/storagetest"
)

// resourcePrefixes is one prefix per stored resource, as the API server
// lays out its keys.
func resourcePrefixes(resources []*registry.Resource) []string {
	var out []string
	for _, r := range resources {
		st := r.Storage()
		group := st.GroupVersion.Group
		if group == "" {
			group = "core"
		}
		p := "/registry/" + group + "/" + st.Plural + "/"
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// startAPI runs the API server on a new etcd member, through a cacher per
// resource or on etcd alone, and returns an admin clientset and the store.
func startAPI(tb testing.TB, cached bool) (kubernetes.Interface, storage.Interface) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	member, err := embedded.Start(context.Background(), embedded.Config{DataDir: tb.TempDir(), Name: "cacher", Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { member.Close() })
	var store storage.Interface = etcd.New(member.Client(), etcd.Options{ProgressInterval: time.Second})
	if cached {
		if store, err = NewMulti(store, Options{ProgressInterval: time.Second, EventWindow: 50}, resourcePrefixes(registry.All())...); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { store.Close() })
	authn := auth.NewTokenAuthenticator()
	authn.Add("token", auth.User{Name: "admin", Groups: []string{"system:masters"}})
	handler, err := apiserver.New(apiserver.Config{Storage: store, Resources: registry.All(), Authenticator: authn, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	tb.Cleanup(srv.Close)
	return kubernetes.NewForConfigOrDie(&rest.Config{Host: srv.URL, BearerToken: "token", QPS: -1}), store
}

// BenchmarkAPIWatchFanOut measures an update through the API server until
// every one of its HTTP watchers has received it.
func BenchmarkAPIWatchFanOut(b *testing.B) {
	for _, watchers := range []int{100, 500} {
		for _, cached := range []bool{false, true} {
			name := map[bool]string{false: "etcd", true: "cacher"}[cached]
			b.Run(fmt.Sprintf("watchers=%d/store=%s", watchers, name), func(b *testing.B) {
				kube, _ := startAPI(b, cached)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				cms := kube.CoreV1().ConfigMaps("default")
				cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "k"}, Data: map[string]string{"v": "0"}}, metav1.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				seen := make([]chan string, watchers)
				for i := range seen {
					w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: cm.ResourceVersion})
					if err != nil {
						b.Fatal(err)
					}
					defer w.Stop()
					seen[i] = make(chan string, 1)
					go func(out chan<- string) {
						for ev := range w.ResultChan() {
							if ev.Type == watch.Modified {
								out <- ev.Object.(*corev1.ConfigMap).ResourceVersion
							}
						}
					}(seen[i])
				}
				i := 0
				for b.Loop() {
					i++
					cm.Data["v"] = fmt.Sprint(i)
					if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
						b.Fatal(err)
					}
					for _, ch := range seen {
						for got := <-ch; got != cm.ResourceVersion; got = <-ch {
						}
					}
				}
			})
		}
	}
}

// TestAPIServerOnCacher runs the real API server on a Multi with a cacher
// per resource and drives it with client-go: informers sync and follow,
// paginated lists, bookmarks, and 410 Gone for a compacted revision.
func TestAPIServerOnCacher(t *testing.T) {
	kube, store := startAPI(t, true)
	ctx := storagetest.Context(t)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cms := kube.CoreV1().ConfigMaps("default")
	cmCacher := store.(*Multi).Cacher("/registry/core/configmaps/default/")

	// An informer lists and watches through the cache and follows writes.
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace("default"))
	informer := factory.Core().V1().ConfigMaps().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	const n = 100
	var firstRV string
	for i := range n {
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstRV = cm.ResourceVersion
		}
	}
	storagetest.WaitFor(t, func() bool { return len(informer.GetStore().List()) == n }, "the informer to see every configmap")
	if cmCacher.cachedWatches.Load() == 0 || cmCacher.cachedLists.Load() == 0 {
		t.Fatalf("informer bypassed the cache: %d cached lists, %d cached watches", cmCacher.cachedLists.Load(), cmCacher.cachedWatches.Load())
	}

	// A paginated list is one consistent snapshot.
	var names []string
	opts := metav1.ListOptions{Limit: 30}
	for {
		list, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range list.Items {
			names = append(names, cm.Name)
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if len(names) != n || !slices.IsSorted(names) {
		t.Fatalf("paginated list: %d names (sorted %v), want %d", len(names), slices.IsSorted(names), n)
	}

	// Bookmarks arrive on an idle watch.
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Bookmark {
			t.Fatalf("idle watch got %s, want a bookmark", ev.Type)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no bookmark on an idle watch")
	}

	// A revision older than the window but not compacted is still served
	// (by etcd); once compacted, the watch ends with 410 Gone.
	old, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: firstRV})
	if err != nil {
		t.Fatal(err)
	}
	ev := <-old.ResultChan()
	old.Stop()
	if ev.Type != watch.Added && ev.Type != watch.Modified {
		t.Fatalf("watch from an old, uncompacted revision: first event %s, want a change", ev.Type)
	}
	rev, err := store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	gone, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: firstRV})
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Stop()
	ev = <-gone.ResultChan()
	if status, ok := ev.Object.(*metav1.Status); ev.Type != watch.Error || !ok || !apierrors.IsResourceExpired(apierrors.FromObject(status)) {
		t.Fatalf("watch from a compacted revision: %s %v, want an Error with 410 Gone", ev.Type, ev.Object)
	}
}
