package apiserver_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

func cmKey(ns, name string) string { return "/registry/core/configmaps/" + ns + "/" + name }

// createCached creates a ConfigMap and waits until the watch cache holds it.
func (ts *cachedTestServer) createCached(t *testing.T, ns, name string, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm, err := ts.client.CoreV1().ConfigMaps(ns).Create(context.Background(),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts.waitCached(t, cmKey(ns, name), cm.ResourceVersion)
	return cm
}

// storedRevision reads the object's revision from etcd itself.
func storedRevision(t *testing.T, key string) string {
	t.Helper()
	kv, err := shared.store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("etcd get %s: %v", key, err)
	}
	return strconv.FormatInt(kv.Revision, 10)
}

// assertCacheAt checks that the cache still holds key at rv: the case under
// test really starts from a stale copy.
func (ts *cachedTestServer) assertCacheAt(t *testing.T, key, rv string) {
	t.Helper()
	kv, ok := ts.cache.GetCached(key)
	if !ok || strconv.FormatInt(kv.Revision, 10) != rv {
		t.Fatalf("cache holds %s at %d (present %v), want the stale %s", key, kv.Revision, ok, rv)
	}
}

// TestUpdateFromStaleCacheHonoursResourceVersion: the watch cache lags a
// write; an update carrying the newer resourceVersion succeeds (no false
// 409 from the cached copy) and one carrying the older one gets its 409.
func TestUpdateFromStaleCacheHonoursResourceVersion(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, "cached-update-rv")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	v1 := ts.createCached(t, ns, "cm", map[string]string{"k": "1"})

	ts.gated.hold()
	v2 := v1.DeepCopy()
	v2.Data["k"] = "2"
	v2, err := cms.Update(ctx, v2, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update from the cached copy at the client's revision: %v", err)
	}
	ts.assertCacheAt(t, cmKey(ns, "cm"), v1.ResourceVersion)

	// The client knows v2; the cache still holds v1.
	v3 := v2.DeepCopy()
	v3.Data["k"] = "3"
	v3, err = cms.Update(ctx, v3, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update at resourceVersion %s, newer than the cache's %s: %v", v2.ResourceVersion, v1.ResourceVersion, err)
	}
	if v3.Data["k"] != "3" || v3.ResourceVersion == v2.ResourceVersion {
		t.Fatalf("update returned data %v at %s, want k=3 at a new revision", v3.Data, v3.ResourceVersion)
	}
	if got := storedRevision(t, cmKey(ns, "cm")); got != v3.ResourceVersion {
		t.Fatalf("etcd holds revision %s, the update answered %s", got, v3.ResourceVersion)
	}

	// The cache's own revision is old too, and still refused: the write
	// conditional on it conflicts and the fresh read answers 409.
	stale := v1.DeepCopy()
	stale.Data["k"] = "stale"
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update at the stale resourceVersion %s (the cache's): %v, want 409", v1.ResourceVersion, err)
	}
	stale.ResourceVersion = v2.ResourceVersion
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update at the stale resourceVersion %s: %v, want 409", v2.ResourceVersion, err)
	}
	// A patch whose precondition is only met by the current object.
	patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"data":{"k":"4"}}`, v3.ResourceVersion)
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch at the current resourceVersion, newer than the cache's: %v", err)
	}
	ts.assertCacheAt(t, cmKey(ns, "cm"), v1.ResourceVersion)

	// Caught up, the cache gives the same answers.
	ts.gated.release()
	cur, err := cms.Get(ctx, "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts.waitCached(t, cmKey(ns, "cm"), cur.ResourceVersion)
	if _, err := cms.Update(ctx, v3, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update at an old resourceVersion with the cache caught up: %v, want 409", err)
	}
	cur.Data["k"] = "5"
	if _, err := cms.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update at the current resourceVersion with the cache caught up: %v", err)
	}
}

// TestNoOpFromStaleCacheIsConfirmed: an update that changes nothing in the
// cached copy may change the stored object; it is written, and a real no-op
// is not.
func TestNoOpFromStaleCacheIsConfirmed(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, "cached-noop")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	v1 := ts.createCached(t, ns, "cm", map[string]string{"k": "1"})

	ts.gated.hold()
	v2 := v1.DeepCopy()
	v2.Data["k"] = "2"
	v2, err := cms.Update(ctx, v2, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Back to what the cache holds, without a resourceVersion: nothing
	// changes against the cached copy, everything against etcd's.
	back := v1.DeepCopy()
	back.ResourceVersion = ""
	ts.assertCacheAt(t, cmKey(ns, "cm"), v1.ResourceVersion)
	got, err := cms.Update(ctx, back, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := storedRevision(t, cmKey(ns, "cm"))
	if got.Data["k"] != "1" || got.ResourceVersion == v2.ResourceVersion || got.ResourceVersion == v1.ResourceVersion || got.ResourceVersion != stored {
		t.Fatalf("update back to k=1 answered k=%s at %s (v1 %s, v2 %s, etcd %s): taken for a no-op on the cached copy",
			got.Data["k"], got.ResourceVersion, v1.ResourceVersion, v2.ResourceVersion, stored)
	}
	// The same through a patch and a status-less no-op: answered with the
	// current object, nothing written.
	same, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"data":{"k":"1"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if same.ResourceVersion != got.ResourceVersion || storedRevision(t, cmKey(ns, "cm")) != got.ResourceVersion {
		t.Fatalf("a no-op patch answered %s, etcd at %s, want both at %s", same.ResourceVersion, storedRevision(t, cmKey(ns, "cm")), got.ResourceVersion)
	}
	// A patch that is a no-op on the cached copy (k=1) after etcd moved to
	// k=2 must write.
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"data":{"k":"2"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	ts.gated.release()
	ts.waitCached(t, cmKey(ns, "cm"), storedRevision(t, cmKey(ns, "cm")))
	ts.gated.hold()
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"data":{"k":"3"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	undo, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"data":{"k":"2"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if undo.Data["k"] != "2" || storedRevision(t, cmKey(ns, "cm")) != undo.ResourceVersion {
		t.Fatalf("patch back to the cached k=2 answered k=%s at %s, etcd at %s", undo.Data["k"], undo.ResourceVersion, storedRevision(t, cmKey(ns, "cm")))
	}
	fromEtcd, err := ts.testServerOverEtcd(t).client.CoreV1().ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{})
	if err != nil || fromEtcd.Data["k"] != "2" {
		t.Fatalf("stored object k=%v (%v), want 2", fromEtcd.Data, err)
	}
}

// testServerOverEtcd is a second API server on the same etcd without a
// cache: it sees what is stored.
func (ts *cachedTestServer) testServerOverEtcd(t *testing.T) *testServer { return newTestServer(t) }

// TestUpdateOfJustDeletedObjectIs404: the cache still holds an object
// deleted a moment ago; an update of it is a 404, not a resurrection.
func TestUpdateOfJustDeletedObjectIs404(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, "cached-deleted")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	v1 := ts.createCached(t, ns, "cm", map[string]string{"k": "1"})

	ts.gated.hold()
	if err := cms.Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ts.assertCacheAt(t, cmKey(ns, "cm"), v1.ResourceVersion)
	upd := v1.DeepCopy()
	upd.ResourceVersion = ""
	upd.Data["k"] = "2"
	if _, err := cms.Update(ctx, upd, metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("update of a deleted object still cached: %v, want 404", err)
	}
	if _, err := cms.Update(ctx, v1, metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("update at the cached resourceVersion of a deleted object: %v, want 404", err)
	}
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"data":{"k":"1"}}`), metav1.PatchOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("no-op patch of a deleted object still cached: %v, want 404", err)
	}
	if _, err := shared.store.Get(ctx, cmKey(ns, "cm")); err == nil {
		t.Fatal("the deleted object is back in etcd")
	}

	// An object created a moment ago, not yet cached, updates from etcd.
	fresh, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ts.cache.GetCached(cmKey(ns, "new")); ok {
		t.Fatal("the cache holds an object created while its watch is held")
	}
	fresh.Data = map[string]string{"k": "1"}
	if _, err := cms.Update(ctx, fresh, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update of an object the cache does not hold yet: %v", err)
	}
}

// TestFinalizerRemovalFromStaleCacheDeletes: removing the last finalizer
// from a cached copy whose revision is stale conflicts on the delete, and
// the retry on the fresh object completes the deletion.
func TestFinalizerRemovalFromStaleCacheDeletes(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, "cached-finalizer")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	terminating := storedRevision(t, cmKey(ns, "cm"))
	ts.waitCached(t, cmKey(ns, "cm"), terminating)
	ts.gated.hold()
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	ts.assertCacheAt(t, cmKey(ns, "cm"), terminating)
	if _, err := cms.Patch(ctx, "cm", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("removing the last finalizer: %v", err)
	}
	if _, err := shared.store.Get(ctx, cmKey(ns, "cm")); err == nil {
		t.Fatalf("%s still stored after its last finalizer went (created at %s)", cm.Name, cm.ResourceVersion)
	}
}

// TestCreateChecksNamespaceThroughCache: a create into a namespace made a
// moment ago (not yet cached) works; one into a namespace being deleted is
// refused, also while the cache still shows it active.
func TestCreateChecksNamespaceThroughCache(t *testing.T) {
	ts := newCachedTestServer(t)
	ctx := context.Background()
	nsKey := func(name string) string { return "/registry/core/namespaces/" + name }

	ts.gated.hold()
	ns := ts.namespace(t, "cached-ns-new")
	if _, ok := ts.cache.GetCached(nsKey(ns)); ok {
		t.Fatal("the cache holds a namespace created while its watch is held")
	}
	if _, err := ts.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create in a namespace created a moment ago: %v", err)
	}
	if _, err := ts.client.CoreV1().ConfigMaps("cached-ns-missing").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: %v, want 404", err)
	}
	ts.gated.release()
	nsObj, err := ts.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts.waitCached(t, nsKey(ns), nsObj.ResourceVersion)

	// Deleting: the cache still shows the namespace active.
	ts.gated.hold()
	if err := ts.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ts.assertCacheAt(t, nsKey(ns), nsObj.ResourceVersion)
	_, err = ts.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("create in a terminating namespace the cache shows active: %v, want 403", err)
	}
	// The cache caught up shows it terminating.
	ts.gated.release()
	ts.waitCached(t, nsKey(ns), storedRevision(t, nsKey(ns)))
	_, err = ts.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("create in a terminating namespace: %v, want 403", err)
	}
}

// TestConcurrentUpdatesThroughCacheLoseNothing: writers race on one object
// through the cache, each retrying its 409s; every increment lands.
func TestConcurrentUpdatesThroughCacheLoseNothing(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, "cached-race")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	ts.createCached(t, ns, "counter", map[string]string{"n": "0"})
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range each {
				// Writers collide often: retry until the increment lands.
				err := retry.RetryOnConflict(wait.Backoff{Steps: 1000, Duration: time.Millisecond}, func() error {
					cm, err := cms.Get(ctx, "counter", metav1.GetOptions{})
					if err != nil {
						return err
					}
					n, _ := strconv.Atoi(cm.Data["n"])
					cm.Data["n"] = strconv.Itoa(n + 1)
					_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, "counter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["n"] != strconv.Itoa(writers*each) {
		t.Fatalf("counter at %s after %d increments", cm.Data["n"], writers*each)
	}
}
