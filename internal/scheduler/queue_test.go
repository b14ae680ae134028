package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock            { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func lens(q *Queue) [4]int                { a, b, u, f := q.Len(); return [4]int{a, b, u, f} }

func TestQueueBackoff(t *testing.T) {
	q := NewQueue(time.Second, 10*time.Second, nil)
	for attempts, want := range []time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 9: 10 * time.Second} {
		if want == 0 {
			continue
		}
		if got := q.Backoff(attempts); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempts, got, want)
		}
	}
}

func TestQueueOrder(t *testing.T) {
	clk := newFakeClock()
	q := NewQueue(time.Second, 10*time.Second, clk.now)
	high := int32(100)
	q.Add("ns/a", mkPod("a").obj())
	clk.step(time.Millisecond)
	q.Add("ns/b", mkPod("b").obj())
	p := mkPod("c").obj()
	p.Spec.Priority = &high
	clk.step(time.Millisecond)
	q.Add("ns/c", p)
	for _, want := range []string{"ns/c", "ns/a", "ns/b"} {
		got, ok := q.Pop()
		if !ok || got.Key != want {
			t.Fatalf("Pop = %v, want %s", got, want)
		}
	}
}

func TestQueueUnschedulableWaitsForAnEvent(t *testing.T) {
	clk := newFakeClock()
	q := NewQueue(time.Second, 10*time.Second, clk.now)
	q.Add("ns/a", mkPod("a").obj())
	p, _ := q.Pop()
	q.Requeue(p, true)
	if got := lens(q); got != [4]int{0, 0, 1, 0} {
		t.Fatalf("after failing: %v, want unschedulable", got)
	}
	clk.step(time.Minute)
	q.Flush()
	if got := lens(q); got != [4]int{0, 0, 1, 0} {
		t.Fatalf("a minute later without an event: %v, want still unschedulable", got)
	}
	q.MoveAll()
	if got := lens(q); got != [4]int{1, 0, 0, 0} {
		t.Fatalf("after an event, backoff over: %v, want active", got)
	}
	// Second failure: two seconds of backoff; an event moves it to backoff, not active.
	p, _ = q.Pop()
	q.Requeue(p, true)
	q.MoveAll()
	if got := lens(q); got != [4]int{0, 1, 0, 0} {
		t.Fatalf("event during backoff: %v, want backoff", got)
	}
	clk.step(1999 * time.Millisecond)
	q.Flush()
	if got := lens(q); got != [4]int{0, 1, 0, 0} {
		t.Fatalf("before the 2s backoff ends: %v", got)
	}
	clk.step(time.Millisecond)
	if next := q.Flush(); !next.IsZero() {
		t.Fatalf("Flush reports a next backoff %v with none left", next)
	}
	if got := lens(q); got != [4]int{1, 0, 0, 0} {
		t.Fatalf("after the backoff: %v, want active", got)
	}
}

func TestQueueUnschedulableRetriedAfterMaxDuration(t *testing.T) {
	clk := newFakeClock()
	q := NewQueue(time.Second, 10*time.Second, clk.now)
	q.Add("ns/a", mkPod("a").obj())
	p, _ := q.Pop()
	q.Requeue(p, true)
	clk.step(MaxUnschedulableDuration)
	q.Flush()
	if got := lens(q); got != [4]int{1, 0, 0, 0} {
		t.Fatalf("after %v: %v, want active", MaxUnschedulableDuration, got)
	}
}

func TestQueueEventDuringFlight(t *testing.T) {
	clk := newFakeClock()
	q := NewQueue(time.Second, 10*time.Second, clk.now)
	q.Add("ns/a", mkPod("a").obj())
	p, _ := q.Pop()
	q.MoveAll() // a node came while the pod was being tried
	q.Requeue(p, true)
	if got := lens(q); got != [4]int{0, 1, 0, 0} {
		t.Fatalf("%v, want backoff (not unschedulable): the event may have helped", got)
	}
}

func TestQueueUpdates(t *testing.T) {
	clk := newFakeClock()
	q := NewQueue(time.Second, 10*time.Second, clk.now)
	pod := mkPod("a").obj()
	q.Add("ns/a", pod)
	p, _ := q.Pop()
	q.Requeue(p, true)
	// A status-only update (our own PodScheduled condition) does not retry.
	st := pod.DeepCopy()
	st.Status.Message = "x"
	q.Add("ns/a", st)
	if got := lens(q); got != [4]int{0, 0, 1, 0} {
		t.Fatalf("after a status update: %v, want still unschedulable", got)
	}
	// A spec change does.
	sp := st.DeepCopy()
	sp.Spec.NodeSelector = map[string]string{"a": "b"}
	q.Add("ns/a", sp)
	if got := lens(q); got != [4]int{0, 1, 0, 0} {
		t.Fatalf("after a spec update: %v, want backoff", got)
	}
	clk.step(time.Second)
	q.Flush()
	p, _ = q.Pop()
	if p.Pod != sp {
		t.Fatal("Pop did not return the latest version")
	}
	// Deleted in flight: the requeue is dropped.
	q.Delete("ns/a")
	q.Requeue(p, false)
	if got := lens(q); got != [4]int{0, 0, 0, 0} {
		t.Fatalf("requeue after delete: %v, want empty", got)
	}
	// Delete from the active queue.
	q.Add("ns/b", mkPod("b").obj())
	q.Add("ns/c", mkPod("c").obj())
	q.Delete("ns/b")
	if p, _ := q.Pop(); p.Key != "ns/c" {
		t.Fatalf("Pop = %s after deleting ns/b", p.Key)
	}
	q.Done("ns/c")
	if got := lens(q); got != [4]int{0, 0, 0, 0} {
		t.Fatalf("after Done: %v", got)
	}
}

func TestQueueDoneAfterAnUpdateInFlight(t *testing.T) {
	q := NewQueue(time.Second, 10*time.Second, nil)
	pod := mkPod("a").obj()
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wait"}}
	q.Add("ns/a", pod)
	p, _ := q.Pop()
	open := pod.DeepCopy()
	open.Spec.SchedulingGates = nil
	q.Add("ns/a", open) // the gate is lifted while the gated pod is handled
	q.Done(p.Key)
	if got := lens(q); got != [4]int{1, 0, 0, 0} {
		t.Fatalf("%v, want the changed pod active again", got)
	}
	if p, _ := q.Pop(); len(p.Pod.Spec.SchedulingGates) != 0 {
		t.Fatal("Pop returned the stale version")
	}
}

func TestQueueCloseWakesPop(t *testing.T) {
	q := NewQueue(time.Second, 10*time.Second, nil)
	done := make(chan bool)
	go func() {
		_, ok := q.Pop()
		done <- ok
	}()
	q.Close()
	if ok := <-done; ok {
		t.Fatal("Pop returned a pod from a closed empty queue")
	}
}
