package scheduler

import (
	"container/heap"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// MaxUnschedulableDuration is how long a pod waits as unschedulable
// without a cluster event before it is tried again anyway (upstream's
// podMaxInUnschedulablePodsDuration).
const MaxUnschedulableDuration = 5 * time.Minute

// Queue holds the pods waiting to be scheduled, as upstream's scheduling
// queue: an active queue (highest priority first, then oldest), a backoff
// queue of pods that failed and wait out their backoff (Initial doubling
// per attempt up to Max), and the unschedulable pods, which wait for a
// cluster event that may help them (MoveAll) or MaxUnschedulableDuration.
// A popped pod is "in flight" until Done or Requeue.
//
// All methods are safe for concurrent use; time comes from the now
// function, and Flush moves the pods whose wait is over (Run calls it when
// the earliest backoff ends).
type Queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	now     func() time.Time
	initial time.Duration
	max     time.Duration
	wake    chan struct{} // a pod entered backoff: the flusher re-plans

	active        podHeap
	backoff       podHeap
	queued        map[string]*QueuedPod // the pods in active or backoff
	unschedulable map[string]*QueuedPod
	inFlight      map[string]*QueuedPod
	cycle         int64 // incremented by each Pop
	moveCycle     int64 // the cycle of the last MoveAll
	closed        bool
}

// QueuedPod is a pod in the queue with its scheduling history.
type QueuedPod struct {
	// Key is namespace/name.
	Key string
	// Pod is the latest version seen.
	Pod *corev1.Pod
	// Attempts counts the times the pod was popped.
	Attempts int

	timestamp    time.Time // entered the active queue
	backoffUntil time.Time
	since        time.Time // became unschedulable
	cycle        int64     // the Pop that handed it out
	updated      bool      // changed while in flight
	inBackoff    bool      // which heap it is in
	index        int
}

// NewQueue returns an empty queue; now nil means time.Now.
func NewQueue(initial, max time.Duration, now func() time.Time) *Queue {
	if now == nil {
		now = time.Now
	}
	q := &Queue{
		now: now, initial: initial, max: max,
		wake:          make(chan struct{}, 1),
		unschedulable: map[string]*QueuedPod{},
		queued:        map[string]*QueuedPod{},
		inFlight:      map[string]*QueuedPod{},
	}
	q.active.less = func(a, b *QueuedPod) bool {
		pa, pb := priority(a.Pod), priority(b.Pod)
		if pa != pb {
			return pa > pb
		}
		return a.timestamp.Before(b.timestamp)
	}
	q.backoff.less = func(a, b *QueuedPod) bool { return a.backoffUntil.Before(b.backoffUntil) }
	q.cond = sync.NewCond(&q.mu)
	return q
}

func priority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// Backoff is the wait after a pod's attempts-th failed attempt.
func (q *Queue) Backoff(attempts int) time.Duration {
	d := q.initial
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= q.max {
			return q.max
		}
	}
	return min(d, q.max)
}

// Add adds a pod waiting to be scheduled, or updates it if queued. An
// unschedulable pod whose spec or metadata changed (not just its status)
// is tried again.
func (q *Queue) Add(key string, pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	if p := q.inFlight[key]; p != nil {
		p.updated = p.updated || specChanged(p.Pod, pod)
		p.Pod = pod
		return
	}
	if p := q.unschedulable[key]; p != nil {
		changed := specChanged(p.Pod, pod)
		p.Pod = pod
		if changed {
			delete(q.unschedulable, key)
			q.toBackoffOrActive(p, now)
		}
		return
	}
	if p := q.queued[key]; p != nil {
		p.Pod = pod
		if p.inBackoff {
			heap.Fix(&q.backoff, p.index)
		} else {
			heap.Fix(&q.active, p.index)
		}
		return
	}
	q.pushActive(&QueuedPod{Key: key, Pod: pod}, now)
}

// specChanged reports whether a pod changed in a way that may change
// where it fits: anything but its status and resourceVersion.
func specChanged(a, b *corev1.Pod) bool {
	return !equality.Semantic.DeepEqual(a.Spec, b.Spec) ||
		!equality.Semantic.DeepEqual(a.Labels, b.Labels) ||
		!equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences)
}

// Delete removes a pod (deleted, bound, or no longer ours) wherever it is.
// If it is in flight its later Requeue is ignored.
func (q *Queue) Delete(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, key)
	delete(q.unschedulable, key)
	if p := q.queued[key]; p != nil {
		delete(q.queued, key)
		if p.inBackoff {
			heap.Remove(&q.backoff, p.index)
		} else {
			heap.Remove(&q.active, p.index)
		}
	}
}

// Pop waits for a pod in the active queue and hands it out, in flight;
// false once the queue is closed.
func (q *Queue) Pop() (*QueuedPod, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	p := heap.Pop(&q.active).(*QueuedPod)
	delete(q.queued, p.Key)
	q.cycle++
	p.cycle = q.cycle
	p.Attempts++
	p.updated = false
	q.inFlight[p.Key] = p
	return p, true
}

// Done ends a pod's flight: it was bound or set aside. A pod that changed
// meanwhile (Add while in flight) goes back to the active queue, to be
// looked at again as it is now.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.inFlight[key]
	if p == nil {
		return
	}
	delete(q.inFlight, key)
	if p.updated {
		q.pushActive(p, q.now())
	}
}

// Requeue puts back a pod that failed to schedule. An unschedulable pod
// waits for a cluster event unless one came (or the pod changed) while it
// was in flight, in which case it only backs off, as does a pod that
// failed for another reason (an error). A pod deleted meanwhile is dropped.
func (q *Queue) Requeue(p *QueuedPod, unschedulable bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inFlight[p.Key] != p {
		return
	}
	delete(q.inFlight, p.Key)
	now := q.now()
	p.backoffUntil = now.Add(q.Backoff(p.Attempts))
	if unschedulable && q.moveCycle < p.cycle && !p.updated {
		p.since = now
		q.unschedulable[p.Key] = p
		return
	}
	q.toBackoffOrActive(p, now)
}

// MoveAll is a cluster event that may make unschedulable pods fit (a node
// added or changed, a pod deleted): they all go back to be tried once their
// backoff ends.
func (q *Queue) MoveAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for k, p := range q.unschedulable {
		delete(q.unschedulable, k)
		q.toBackoffOrActive(p, now)
	}
	q.moveCycle = q.cycle
}

// Flush moves the pods whose backoff is over to the active queue, and the
// pods unschedulable for longer than MaxUnschedulableDuration back to be
// tried; it returns when the next backoff ends (zero if none waits).
func (q *Queue) Flush() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for k, p := range q.unschedulable {
		if now.Sub(p.since) >= MaxUnschedulableDuration {
			delete(q.unschedulable, k)
			q.toBackoffOrActive(p, now)
		}
	}
	for q.backoff.Len() > 0 && !q.backoff.items[0].backoffUntil.After(now) {
		p := heap.Pop(&q.backoff).(*QueuedPod)
		delete(q.queued, p.Key)
		q.pushActive(p, now)
	}
	if q.backoff.Len() == 0 {
		return time.Time{}
	}
	return q.backoff.items[0].backoffUntil
}

// Len returns how many pods are active, backing off, unschedulable and in
// flight.
func (q *Queue) Len() (active, backoff, unschedulable, inFlight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable), len(q.inFlight)
}

// Close wakes every Pop, which then returns false.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// Run calls Flush whenever the earliest backoff ends and at least every
// interval (for MaxUnschedulableDuration), until stop is closed.
func (q *Queue) Run(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		next := q.Flush()
		d := interval
		if !next.IsZero() {
			d = min(d, max(time.Until(next), time.Millisecond))
		}
		t.Reset(d)
		select {
		case <-stop:
			return
		case <-q.wake:
		case <-t.C:
		}
	}
}

func (q *Queue) toBackoffOrActive(p *QueuedPod, now time.Time) {
	if p.backoffUntil.After(now) {
		p.inBackoff = true
		q.queued[p.Key] = p
		heap.Push(&q.backoff, p)
		select {
		case q.wake <- struct{}{}:
		default:
		}
		return
	}
	q.pushActive(p, now)
}

func (q *Queue) pushActive(p *QueuedPod, now time.Time) {
	p.inBackoff = false
	p.timestamp = now
	q.queued[p.Key] = p
	heap.Push(&q.active, p)
	q.cond.Signal()
}

// podHeap is a heap of queued pods ordered by less.
type podHeap struct {
	items []*QueuedPod
	less  func(a, b *QueuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index = i
	h.items[j].index = j
}
func (h *podHeap) Push(x any) {
	p := x.(*QueuedPod)
	p.index = len(h.items)
	h.items = append(h.items, p)
}
func (h *podHeap) Pop() any {
	old := h.items
	n := len(old)
	p := old[n-1]
	old[n-1] = nil
	h.items = old[:n-1]
	p.index = -1
	return p
}
