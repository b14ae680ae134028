package replicaset

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	testingclock "k8s.io/utils/clock/testing"
)

// handlerRig is the controller's event handlers and queue over stores
// filled by the test, the queue's delays timed by a fake clock.
type handlerRig struct {
	c   *controller
	clk *testingclock.FakeClock
}

func newHandlerRig(t *testing.T, rss ...*appsv1.ReplicaSet) *handlerRig {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	rsIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, controllerUIDIndex: controllerUIDIndexFunc})
	podIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{controllerUIDIndex: podControllerUIDIndexFunc})
	for _, rs := range rss {
		if err := rsIndexer.Add(rs); err != nil {
			t.Fatal(err)
		}
	}
	c := &controller{
		expectations: NewExpectations(nil),
		queue:        newQueue(clk),
		rsLister:     appslisters.NewReplicaSetLister(rsIndexer),
		rsIndexer:    rsIndexer,
		podIndexer:   podIndexer,
	}
	t.Cleanup(c.queue.ShutDown)
	return &handlerRig{c: c, clk: clk}
}

// ready returns the keys the queue hands out now, in order, waiting for
// at least want of them. To know that the queue's delaying loop has moved
// every entry due by now, it waits for a sentinel due 1ns later (the clock
// steps 1ns): entries come out in deadline order, so all those due before
// it precede it. The loop may take the sentinel off its channel after the
// step and queue it before re-reading its heap, so a due entry can follow
// the sentinel: hence waiting for want keys as well.
func (r *handlerRig) ready(t *testing.T, want int) []string {
	t.Helper()
	const sentinel = "sentinel/sentinel"
	r.c.queue.AddAfter(sentinel, time.Nanosecond)
	r.clk.Step(time.Nanosecond)
	var out []string
	seen := false
	deadline := time.Now().Add(10 * time.Second)
	for !seen || len(out) < want {
		if r.c.queue.Len() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the queue handed out %v (sentinel seen: %v), want %d keys and the sentinel", out, seen, want)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		k, _ := r.c.queue.Get()
		r.c.queue.Done(k)
		if k == sentinel {
			seen = true
			continue
		}
		out = append(out, k)
	}
	return out
}

func bigRS(name string, n int32) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		},
	}
	rs.Status.Replicas = n
	return rs
}

func podOf(rs *appsv1.ReplicaSet, name, rv string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "default", ResourceVersion: rv,
		Labels: map[string]string{"app": rs.Name},
	}}
	if rs != nil {
		p.OwnerReferences = []metav1.OwnerReference{*ControllerRef(rs)}
	}
	return p
}

func withReady(p *corev1.Pod, rv string, ready corev1.ConditionStatus) *corev1.Pod {
	q := p.DeepCopy()
	q.ResourceVersion = rv
	q.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
	return q
}

func TestStatusSyncDelay(t *testing.T) {
	for _, tc := range []struct {
		n    int32
		want time.Duration
	}{
		{0, 0},
		{3, 750 * time.Microsecond},
		{1000, 250 * time.Millisecond},
		{10000, 2500 * time.Millisecond},
		{40000, 10 * time.Second},
		{100000, 10 * time.Second},
	} {
		if got := statusSyncDelay(bigRS("x", tc.n)); got != tc.want {
			t.Errorf("%d pods: delay %v, want %v", tc.n, got, tc.want)
		}
	}
	// A ReplicaSet scaling up counts the pods it will have.
	rs := bigRS("x", 10000)
	rs.Status.Replicas = 0
	if got := statusSyncDelay(rs); got != 2500*time.Millisecond {
		t.Errorf("scaling up to 10000: delay %v, want 2.5s", got)
	}
}

// TestStatusUpdatesBatched checks that status-only pod changes of a
// 4,000-pod ReplicaSet (1s delay) make one sync at the first
// change's deadline: later changes do not put it off, and are taken in
// by it.
func TestStatusUpdatesBatched(t *testing.T) {
	rs := bigRS("big", 4000)
	r := newHandlerRig(t, rs)
	pods := []*corev1.Pod{podOf(rs, "big-a", "1"), podOf(rs, "big-b", "2"), podOf(rs, "big-c", "3")}

	r.c.updatePod(pods[0], withReady(pods[0], "11", corev1.ConditionTrue)) // due at 1s
	if got := r.ready(t, 0); len(got) != 0 {
		t.Fatalf("status change synced at once: %v", got)
	}
	// Changes every 250ms, each due 1s after it, for 1.5s.
	for i := range 6 {
		r.clk.Step(250 * time.Millisecond)
		p := pods[i%len(pods)]
		r.c.updatePod(p, withReady(p, "2"+p.ResourceVersion, corev1.ConditionFalse))
		want := 0
		if i == 3 {
			want = 1
		}
		got := r.ready(t, want)
		// Steps of 250ms plus the sentinels' 1ns each: the first
		// change's 1s deadline falls in the fourth step.
		switch {
		case i == 3 && !slices.Equal(got, []string{"default/big"}):
			t.Fatalf("at %dms: ready %v, want one sync of default/big at the first change's deadline", 250*(i+1), got)
		case i != 3 && len(got) != 0:
			t.Fatalf("at %dms: ready %v, want nothing", 250*(i+1), got)
		}
	}
	// The changes after the sync are due 1s after the first of them.
	r.clk.Step(time.Second)
	if got := r.ready(t, 1); !slices.Equal(got, []string{"default/big"}) {
		t.Fatalf("after the last changes: ready %v, want one more sync", got)
	}
	r.clk.Step(5 * time.Second)
	if got := r.ready(t, 0); len(got) != 0 {
		t.Fatalf("ready %v after everything was synced, want nothing", got)
	}
}

// TestSmallReplicaSetStatusSyncsAtOnce: 3 pods wait 750µs.
func TestSmallReplicaSetStatusSyncsAtOnce(t *testing.T) {
	rs := bigRS("small", 3)
	r := newHandlerRig(t, rs)
	p := podOf(rs, "small-a", "1")
	r.c.updatePod(p, withReady(p, "2", corev1.ConditionTrue))
	r.clk.Step(750 * time.Microsecond)
	if got := r.ready(t, 1); !slices.Equal(got, []string{"default/small"}) {
		t.Fatalf("ready %v 750µs after, want default/small", got)
	}
}

// TestActionableChangesSyncAtOnce: changes the controller acts on (pod
// added, deleted, being deleted, finished, relabelled, released) queue a
// big ReplicaSet at once, with no delay.
func TestActionableChangesSyncAtOnce(t *testing.T) {
	rs := bigRS("big", 10000)
	base := podOf(rs, "big-a", "1")
	now := metav1.Now()
	for name, event := range map[string]func(c *controller){
		"add": func(c *controller) { c.addPod(base) },
		"delete": func(c *controller) {
			c.deletePod(cache.DeletedFinalStateUnknown{Key: "default/big-a", Obj: base})
		},
		"deletionTimestamp": func(c *controller) {
			cur := base.DeepCopy()
			cur.ResourceVersion, cur.DeletionTimestamp = "2", &now
			c.updatePod(base, cur)
		},
		"failed": func(c *controller) {
			cur := base.DeepCopy()
			cur.ResourceVersion, cur.Status.Phase = "2", corev1.PodFailed
			c.updatePod(base, cur)
		},
		"labels": func(c *controller) {
			cur := base.DeepCopy()
			cur.ResourceVersion, cur.Labels = "2", map[string]string{"app": "big", "extra": "x"}
			c.updatePod(base, cur)
		},
		"released": func(c *controller) {
			cur := base.DeepCopy()
			cur.ResourceVersion, cur.OwnerReferences = "2", nil
			c.updatePod(base, cur)
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := newHandlerRig(t, rs)
			event(r.c)
			// Add is synchronous: no clock step, no waiting loop.
			if n := r.c.queue.Len(); n != 1 {
				t.Fatalf("queue length %d right after the event, want 1", n)
			}
			if k, _ := r.c.queue.Get(); k != "default/big" {
				t.Fatalf("queued %q, want default/big", k)
			}
		})
	}
}

// TestCandidatePods: a sync reads the ReplicaSet's own pods (active or
// not) and its namespace's orphans, not other controllers' pods nor
// orphans elsewhere; and the index follows a pod adopted or released.
func TestCandidatePods(t *testing.T) {
	rs, other := bigRS("mine", 2), bigRS("other", 2)
	r := newHandlerRig(t, rs, other)
	now := metav1.Now()
	mine := podOf(rs, "mine-a", "1")
	going := podOf(rs, "mine-b", "1")
	going.DeletionTimestamp = &now
	theirs := podOf(other, "other-a", "1")
	orphan := podOf(rs, "orphan", "1")
	orphan.OwnerReferences = nil
	elsewhere := orphan.DeepCopy()
	elsewhere.Namespace = "kube-system"
	for _, p := range []*corev1.Pod{mine, going, theirs, orphan, elsewhere} {
		if err := r.c.podIndexer.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	names := func() []string {
		pods, err := r.c.candidatePods(rs)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range pods {
			out = append(out, p.Namespace+"/"+p.Name)
		}
		slices.Sort(out)
		return out
	}
	if got, want := names(), []string{"default/mine-a", "default/mine-b", "default/orphan"}; !slices.Equal(got, want) {
		t.Fatalf("candidates %v, want %v", got, want)
	}
	adopted := orphan.DeepCopy()
	adopted.OwnerReferences = []metav1.OwnerReference{*ControllerRef(other)}
	released := theirs.DeepCopy()
	released.OwnerReferences = nil
	for _, p := range []*corev1.Pod{adopted, released} {
		if err := r.c.podIndexer.Update(p); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := names(), []string{"default/mine-a", "default/mine-b", "default/other-a"}; !slices.Equal(got, want) {
		t.Fatalf("after adoption and release: candidates %v, want %v", got, want)
	}
}

// TestReplicaSetStatusWriteBatched: the controller's own status write,
// seen back, waits like a pod status change; a spec change or a resync
// queues at once.
func TestReplicaSetStatusWriteBatched(t *testing.T) {
	old := bigRS("big", 4000)
	old.ResourceVersion, old.Generation = "1", 1
	statusWrite := old.DeepCopy()
	statusWrite.ResourceVersion, statusWrite.Status.ReadyReplicas = "2", 2000
	scaled := old.DeepCopy()
	scaled.ResourceVersion, scaled.Generation, *scaled.Spec.Replicas = "2", 2, 8000

	r := newHandlerRig(t, old)
	r.c.updateRS(old, statusWrite)
	if got := r.ready(t, 0); len(got) != 0 {
		t.Fatalf("status write synced at once: %v", got)
	}
	r.clk.Step(time.Second)
	if got := r.ready(t, 1); !slices.Equal(got, []string{"default/big"}) {
		t.Fatalf("1s after the status write: ready %v, want default/big", got)
	}
	for name, cur := range map[string]*appsv1.ReplicaSet{"spec": scaled, "resync": old} {
		r.c.updateRS(old, cur)
		if got := r.ready(t, 1); !slices.Equal(got, []string{"default/big"}) {
			t.Fatalf("%s: ready %v at once, want default/big", name, got)
		}
	}
}

// TestObservedCreationsBatchedUntilTheLast: while a ReplicaSet still waits
// for pods it created, each one seen is a status change (batched); the
// last one it waited for lets the next batch go at once.
func TestObservedCreationsBatchedUntilTheLast(t *testing.T) {
	rs := bigRS("big", 10000)
	r := newHandlerRig(t, rs)
	r.c.expectations.ExpectCreations("default/big", 2)
	r.c.addPod(podOf(rs, "big-a", "1"))
	if n := r.c.queue.Len(); n != 0 {
		t.Fatalf("queue length %d after the first of two expected pods, want 0 (batched)", n)
	}
	r.c.addPod(podOf(rs, "big-b", "2"))
	if n := r.c.queue.Len(); n != 1 {
		t.Fatalf("queue length %d after the last expected pod, want 1 at once", n)
	}
	if k, _ := r.c.queue.Get(); k != "default/big" {
		t.Fatalf("queued %q, want default/big", k)
	}
}
