package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/auth"
)

// queuedLen is how many requests of class c wait in p.
func queuedLen(p *pool, c class) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queues[c].len()
}

// waitQueued polls until n requests of class c wait in p.
func waitQueued(t *testing.T, p *pool, c class, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for queuedLen(p, c) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests of class %d queued, want %d", queuedLen(p, c), c, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// acquireAsync starts acquire for r by u and sends its release (nil if
// rejected) on the returned channel.
func acquireAsync(l *inflightLimiter, r *http.Request, u *auth.User) <-chan func() {
	got := make(chan func(), 1)
	go func() {
		release, ok := l.acquire(r, u)
		if !ok {
			release = nil
		}
		got <- release
	}()
	return got
}

func get() *http.Request { return httptest.NewRequest("GET", "/api/v1/nodes", nil) }

// TestInflightQueueIsBounded fills a pool of one slot and its queue: the
// next request is rejected at once, not after the queue wait, and a
// waiter gets the slot when it is given back.
func TestInflightQueueIsBounded(t *testing.T) {
	obs := &recordingObserver{inflight: map[string]int{}, rejected: map[string]int{}, waited: map[string]int{}}
	l := &inflightLimiter{readOnly: newPool(1, kindReadOnly, obs), mutating: newPool(1, kindMutating, obs), wait: time.Hour}
	p := l.readOnly
	release, ok := l.acquire(get(), nil)
	if !ok {
		t.Fatal("first request rejected")
	}
	var waiters []<-chan func()
	for i := range p.queueLimit {
		waiters = append(waiters, acquireAsync(l, get(), nil))
		waitQueued(t, p, classWorkload, i+1)
	}
	// The queue wait is an hour: only a full queue rejects in time.
	select {
	case r := <-acquireAsync(l, get(), nil):
		if r != nil {
			t.Error("a request got a slot while the pool and its queue were full")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a request waited although the queue was full")
	}
	release()
	for _, w := range waiters {
		r := <-w
		if r == nil {
			t.Fatal("a queued request was rejected after a slot came back")
		}
		r()
	}
	if p.free[classWorkload] != 1 || queuedLen(p, classWorkload) != 0 {
		t.Errorf("free %d, waiting %d after all released", p.free[classWorkload], queuedLen(p, classWorkload))
	}
	// What the metrics saw: one rejection for a full queue, every queued
	// request executed after its wait, and no slot counted as held.
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.rejected["workload/queue-full"] != 1 || len(obs.rejected) != 1 {
		t.Errorf("rejections observed %v, want one workload/queue-full", obs.rejected)
	}
	if obs.waited["workload/true"] != p.queueLimit || len(obs.waited) != 1 {
		t.Errorf("waits observed %v, want %d workload/true", obs.waited, p.queueLimit)
	}
	if obs.inflight[kindReadOnly] != 0 || obs.maxInflight != 1 {
		t.Errorf("in flight %v at the end, at most %d, want 0 and 1", obs.inflight, obs.maxInflight)
	}
}

// recordingObserver counts what a limiter reports.
type recordingObserver struct {
	mu                         sync.Mutex
	inflight, rejected, waited map[string]int
	maxInflight                int
}

func (o *recordingObserver) InflightInc(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inflight[kind]++
	o.maxInflight = max(o.maxInflight, o.inflight[kind])
}

func (o *recordingObserver) InflightDec(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inflight[kind]--
}

func (o *recordingObserver) ObserveQueueWait(level string, executed bool, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waited[fmt.Sprint(level, "/", executed)]++
}

func (o *recordingObserver) ObserveRejected(level, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rejected[level+"/"+reason]++
}

// TestInflightQueueServesHigherClassesFirst queues a workload request, an
// admin's, a node's Lease renewal and the leader Lease's renewal while
// every slot is taken: freed shared slots go to them highest class first,
// whatever the order they came in.
func TestInflightQueueServesHigherClassesFirst(t *testing.T) {
	l := &inflightLimiter{readOnly: newPool(10, kindReadOnly, nil), mutating: newPool(10, kindReadOnly, nil), wait: time.Hour}
	p := l.mutating
	admin := &auth.User{Name: "admin", Groups: []string{mastersGroup}}
	put := func(path string) *http.Request { return httptest.NewRequest("PUT", path, nil) }
	workload := func() *http.Request { return put("/api/v1/namespaces/default/pods/p") }
	nodeLease := func() *http.Request {
		return put("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1")
	}
	leaderLease := func() *http.Request {
		return put("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/drover-controllers")
	}
	var shared []func()
	for range p.free[classWorkload] {
		r, ok := l.acquire(workload(), nil)
		if !ok {
			t.Fatal("rejected while the pool had room")
		}
		shared = append(shared, r)
	}
	for _, take := range []struct {
		r *http.Request
		u *auth.User
	}{{workload(), admin}, {nodeLease(), nil}, {leaderLease(), nil}} {
		if _, ok := l.acquire(take.r, take.u); !ok { // the reserves: never given back
			t.Fatalf("%s rejected with its reserve free", take.r.URL.Path)
		}
	}
	order := make(chan string, 4)
	queue := func(name string, c class, r *http.Request, u *auth.User) {
		n := queuedLen(p, c)
		got := acquireAsync(l, r, u)
		waitQueued(t, p, c, n+1)
		go func() {
			if release := <-got; release != nil {
				order <- name
			} else {
				order <- name + " rejected"
			}
		}()
	}
	queue("workload", classWorkload, workload(), nil)
	queue("admin", classMasters, workload(), admin)
	queue("node lease", classNodeHeartbeat, nodeLease(), nil)
	queue("leader lease", classControlPlane, leaderLease(), nil)
	for _, want := range []string{"leader lease", "node lease", "admin", "workload"} {
		shared[0]()
		shared = shared[1:]
		if got := <-order; got != want {
			t.Fatalf("a freed slot went to %s, want %s", got, want)
		}
	}
}

// TestInflightQueueTakesFlowsInTurn: with one identity's requests queued
// first and another's after, freed slots alternate between them.
func TestInflightQueueTakesFlowsInTurn(t *testing.T) {
	l := &inflightLimiter{readOnly: newPool(1, kindReadOnly, nil), mutating: newPool(1, kindReadOnly, nil), wait: time.Hour}
	p := l.readOnly
	release, ok := l.acquire(get(), nil)
	if !ok {
		t.Fatal("first request rejected")
	}
	order := make(chan string, 8)
	queue := func(user string) {
		n := queuedLen(p, classWorkload)
		got := acquireAsync(l, get(), &auth.User{Name: user})
		waitQueued(t, p, classWorkload, n+1)
		go func() {
			r := <-got
			order <- user
			r()
		}()
	}
	for range 3 {
		queue("flood")
	}
	queue("other")
	queue("other")
	// A slot freed passes from each request to the next queued one.
	release()
	var got []string
	for range 5 {
		got = append(got, <-order)
	}
	if want := "[flood other flood other flood]"; fmt.Sprint(got) != want {
		t.Errorf("served %v, want %s", got, want)
	}
}

// TestInflightQueueWaitEnds: a queued request is rejected when it has
// waited its limit or its client has gone, and leaves the queue.
func TestInflightQueueWaitEnds(t *testing.T) {
	obs := &recordingObserver{inflight: map[string]int{}, rejected: map[string]int{}, waited: map[string]int{}}
	l := &inflightLimiter{readOnly: newPool(1, kindReadOnly, obs), mutating: newPool(1, kindMutating, obs), wait: 50 * time.Millisecond}
	p := l.readOnly
	release, ok := l.acquire(get(), nil)
	if !ok {
		t.Fatal("first request rejected")
	}
	defer release()
	if r := <-acquireAsync(l, get(), nil); r != nil {
		t.Error("a request was admitted after its wait with the pool still full")
	}
	l.wait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	got := acquireAsync(l, get().WithContext(ctx), nil)
	waitQueued(t, p, classWorkload, 1)
	cancel()
	if r := <-got; r != nil {
		t.Error("a request was admitted after its client had gone")
	}
	if n := queuedLen(p, classWorkload); n != 0 {
		t.Errorf("%d requests still queued", n)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.rejected["workload/time-out"] != 1 || obs.rejected["workload/cancelled"] != 1 || obs.waited["workload/false"] != 2 {
		t.Errorf("rejections %v, waits %v: want one time-out and one cancelled, both waited", obs.rejected, obs.waited)
	}
}

// TestInflightQueueLosesNoSlot has many clients, some of whom give up
// while they wait, contend for a small pool: when all are done every slot
// is free again and nothing waits.
func TestInflightQueueLosesNoSlot(t *testing.T) {
	l := &inflightLimiter{readOnly: newPool(3, kindReadOnly, nil), mutating: newPool(3, kindReadOnly, nil), wait: time.Millisecond}
	p := l.readOnly
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			u := &auth.User{Name: fmt.Sprint("user", i%5)}
			for j := range 50 {
				ctx, cancel := context.WithCancel(context.Background())
				if j%7 == 0 {
					cancel()
				}
				if release, ok := l.acquire(get().WithContext(ctx), u); ok {
					release()
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if p.free[classWorkload] != 3 || p.free[classMasters] != 1 || queuedLen(p, classWorkload) != 0 {
		t.Errorf("free %v, waiting %d: slots lost", p.free, queuedLen(p, classWorkload))
	}
}

// TestFairQueue pops flows in turn, each flow's requests in order, a new
// flow last in the turn, and keeps the turn when a flow empties or a
// waiter is removed.
func TestFairQueue(t *testing.T) {
	var q fairQueue
	w := func(flow string) *waiter { return &waiter{flow: flow} }
	a1, a2, a3, b1, c1 := w("a"), w("a"), w("a"), w("b"), w("c")
	for _, x := range []*waiter{a1, a2, a3, b1} {
		q.push(x)
	}
	if got := q.pop(); got != a1 {
		t.Fatalf("first pop %v, want a1", got)
	}
	q.push(c1) // last in the turn: after b and a
	if !q.remove(a3) || q.remove(a3) {
		t.Fatal("remove a3: want true once, then false")
	}
	var got []*waiter
	for x := q.pop(); x != nil; x = q.pop() {
		got = append(got, x)
	}
	if len(got) != 3 || got[0] != b1 || got[1] != a2 || got[2] != c1 {
		t.Errorf("popped %v, want b1 a2 c1", got)
	}
	if q.len() != 0 || len(q.flows) != 0 || len(q.ring) != 0 {
		t.Errorf("queue not empty: len %d, flows %d, ring %d", q.len(), len(q.flows), len(q.ring))
	}
}

// TestInflightQueueStarvesNoClass: with node heartbeats always waiting
// for the one shared slot, a workload request waiting with them still
// gets it, at the fourth hand-over.
func TestInflightQueueStarvesNoClass(t *testing.T) {
	l := &inflightLimiter{readOnly: newPool(1, kindReadOnly, nil), mutating: newPool(1, kindMutating, nil), wait: time.Hour}
	p := l.mutating
	nodeLease := func() *http.Request {
		return httptest.NewRequest("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", nil)
	}
	workload := httptest.NewRequest("PUT", "/api/v1/namespaces/default/configmaps/c", nil)
	release, ok := l.acquire(workload, nil) // the shared slot
	if !ok {
		t.Fatal("first request rejected")
	}
	if _, ok := l.acquire(nodeLease(), nil); !ok { // the heartbeat reserve, kept
		t.Fatal("heartbeat rejected with its reserve free")
	}
	order := make(chan string, 16)
	queue := func(name string, c class, r *http.Request) {
		n := queuedLen(p, c)
		got := acquireAsync(l, r, nil)
		waitQueued(t, p, c, n+1)
		go func() {
			r := <-got
			order <- name
			if name != "workload" {
				r() // heartbeats hand the slot on at once
			}
		}()
	}
	queue("workload", classWorkload, workload)
	const heartbeats = 10
	for range heartbeats {
		queue("heartbeat", classNodeHeartbeat, nodeLease())
	}
	release()
	for i := 1; ; i++ {
		if got := <-order; got == "workload" {
			if i != lowFirstEvery {
				t.Errorf("the workload request got the slot at hand-over %d, want %d", i, lowFirstEvery)
			}
			break
		}
		if i > heartbeats {
			t.Fatal("the workload request never got the slot")
		}
	}
}
