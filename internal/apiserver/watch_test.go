package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// nextEvent waits for one watch event or fails after a generous deadline.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event within 30s")
	}
	return watch.Event{}
}

func TestWatchFromResourceVersionGetsEveryLaterEventOnce(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "watchresume")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	first, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Changes after first's resourceVersion: b created, a updated, a deleted.
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := first.DeepCopy()
	a.Data = map[string]string{"k": "v"}
	if _, err := cms.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	want := []struct {
		typ  watch.EventType
		name string
	}{{watch.Added, "b"}, {watch.Modified, "a"}, {watch.Deleted, "a"}}
	last := 0
	for _, wt := range want {
		ev := nextEvent(t, w)
		cm := ev.Object.(*corev1.ConfigMap)
		if ev.Type != wt.typ || cm.Name != wt.name {
			t.Fatalf("got %s %s, want %s %s", ev.Type, cm.Name, wt.typ, wt.name)
		}
		rv, _ := strconv.Atoi(cm.ResourceVersion)
		if rv <= last {
			t.Errorf("resourceVersion %d not increasing after %d", rv, last)
		}
		last = rv
	}
	// Nothing else: a new change is the very next event.
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "c" {
		t.Errorf("after the replay got %s %v, want ADDED c", ev.Type, ev.Object)
	}
}

// A watch from a compacted revision ends with 410 Expired, in JSON and in
// protobuf.
func TestWatchTooOldIsGone(t *testing.T) {
	ts := newTestServer(t)
	for _, enc := range []struct {
		name   string
		client kubernetes.Interface
	}{{"json", ts.client}, {"protobuf", protobufClient(t, ts)}} {
		t.Run(enc.name, func(t *testing.T) { watchTooOldIsGone(t, ts, enc.client, "watchgone-"+enc.name) })
	}
}

func watchTooOldIsGone(t *testing.T, ts *testServer, client kubernetes.Interface, namespace string) {
	ns := ts.namespace(t, namespace)
	ctx := context.Background()
	cms := client.CoreV1().ConfigMaps(ns)
	old, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Compact past b's revision, so a watch from a's (which must replay b) is too old.
	rev, _ := strconv.ParseInt(latest.ResourceVersion, 10, 64)
	rev++
	if err := ts.store.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: old.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := nextEvent(t, w)
	if ev.Type != watch.Error {
		t.Fatalf("want ERROR event, got %s", ev.Type)
	}
	status, ok := ev.Object.(*metav1.Status)
	if !ok || status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Errorf("want 410 Expired, got %+v", ev.Object)
	}
}

func TestInformerSeesEventsInOrder(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "informer")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan string, 100)
	factory := informers.NewSharedInformerFactoryWithOptions(ts.client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { events <- "add " + obj.(*corev1.ConfigMap).Name },
		UpdateFunc: func(_, obj any) { events <- "update " + obj.(*corev1.ConfigMap).Data["v"] },
		DeleteFunc: func(obj any) {
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				events <- "delete " + cm.Name
			}
		},
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	cms := ts.client.CoreV1().ConfigMaps(ns)
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Data: map[string]string{"v": "0"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		cm.Data["v"] = strconv.Itoa(i)
		if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.Delete(ctx, "x", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"add x", "update 1", "update 2", "update 3", "delete x"}
	for _, w := range want {
		select {
		case got := <-events:
			if got != w {
				t.Fatalf("informer event %q, want %q", got, w)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("informer: no event, want %q", w)
		}
	}
}

func TestListPagination(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "pages")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	for i := 0; i < 25; i++ {
		labels := map[string]string{"parity": []string{"even", "odd"}[i%2]}
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i), Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	opts := metav1.ListOptions{Limit: 10}
	pages := 0
	for {
		list, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, cm := range list.Items {
			if seen[cm.Name] {
				t.Errorf("%s listed twice", cm.Name)
			}
			seen[cm.Name] = true
		}
		// A write between pages must not show up: the list is one snapshot.
		if pages == 1 {
			if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-99"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if list.RemainingItemCount == nil || *list.RemainingItemCount != 15 {
				t.Errorf("remainingItemCount %v, want 15", list.RemainingItemCount)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if pages != 3 || len(seen) != 25 || seen["cm-99"] {
		t.Errorf("pages %d, items %d (cm-99 seen: %v); want 3 pages of the 25 from the snapshot", pages, len(seen), seen["cm-99"])
	}
	odd, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "parity=odd", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(odd.Items) != 5 || odd.Continue == "" {
		t.Errorf("selector page: %d items, continue %q", len(odd.Items), odd.Continue)
	}
	byName, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=cm-07"})
	if err != nil || len(byName.Items) != 1 {
		t.Errorf("field selector: %v, %d items", err, len(byName.Items))
	}
	if _, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "spec.bogus=x"}); !apierrors.IsBadRequest(err) {
		t.Errorf("unsupported field selector: want BadRequest, got %v", err)
	}
}

func TestWatchSelectorTransitions(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "watchsel")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "team=a"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"team": "b"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels["team"] = "a"
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm.Labels["team"] = "c"
	if _, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []watch.EventType{watch.Added, watch.Deleted} {
		if ev := nextEvent(t, w); ev.Type != want {
			t.Fatalf("got %s, want %s", ev.Type, want)
		}
	}
}

func TestTablesAndDiscovery(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "tables")
	ctx := context.Background()
	if _, err := ts.client.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/apis/apps/v1/namespaces/"+ns+"/deployments", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		t.Fatal(err)
	}
	if table.Kind != "Table" || len(table.Rows) != 1 || table.Rows[0].Cells[0] != "web" {
		t.Fatalf("table: %+v", table)
	}
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if len(names) < 5 || fmt.Sprint(names[:5]) != "[Name Ready Up-to-date Available Age]" {
		t.Errorf("deployment columns %v", names)
	}

	groups, resources, err := ts.client.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, g := range groups {
		found[g.Name+"/"+g.PreferredVersion.Version] = true
	}
	for _, want := range []string{"/v1", "apps/v1", "autoscaling/v2", "coordination.k8s.io/v1", "discovery.k8s.io/v1"} {
		if !found[want] {
			t.Errorf("discovery lacks group %s (preferred)", want)
		}
	}
	shorts := map[string]string{}
	for _, list := range resources {
		for _, r := range list.APIResources {
			for _, s := range r.ShortNames {
				shorts[s] = r.Name
			}
		}
	}
	for short, name := range map[string]string{"po": "pods", "deploy": "deployments", "svc": "services", "ns": "namespaces", "hpa": "horizontalpodautoscalers"} {
		if shorts[short] != name {
			t.Errorf("short name %s -> %q, want %s", short, shorts[short], name)
		}
	}
}
