package apiserver

// waiter is a request waiting for a slot: granted receives the slot it is
// given (buffered, so that granting never blocks).
type waiter struct {
	flow    string
	granted chan slot
}

// fairQueue holds waiting requests by flow (the identity that sent them)
// and hands them out one flow at a time, in turn, each flow's own in the
// order they came: a flow with a thousand requests waiting delays
// another's next request by at most one of its own. Not safe for
// concurrent use.
type fairQueue struct {
	flows map[string]*flowQueue
	ring  []*flowQueue // the flows with requests waiting, in turn order
	next  int          // index in ring of the flow served next
	n     int          // requests waiting
}

// flowQueue is one flow's waiting requests, oldest first.
type flowQueue struct {
	name    string
	waiting []*waiter
}

func (q *fairQueue) len() int { return q.n }

// push adds w behind the other requests of its flow.
func (q *fairQueue) push(w *waiter) {
	f := q.flows[w.flow]
	if f == nil {
		if q.flows == nil {
			q.flows = map[string]*flowQueue{}
		}
		f = &flowQueue{name: w.flow}
		q.flows[w.flow] = f
		// A new flow is served last in the current turn.
		q.ring = append(q.ring, nil)
		copy(q.ring[q.next+1:], q.ring[q.next:])
		q.ring[q.next] = f
		q.next++
		if q.next == len(q.ring) {
			q.next = 0
		}
	}
	f.waiting = append(f.waiting, w)
	q.n++
}

// pop removes and returns the oldest request of the flow whose turn it is,
// nil when none waits.
func (q *fairQueue) pop() *waiter {
	if q.n == 0 {
		return nil
	}
	f := q.ring[q.next]
	w := f.waiting[0]
	f.waiting[0] = nil
	f.waiting = f.waiting[1:]
	q.n--
	if len(f.waiting) == 0 {
		q.dropFlow(q.next)
	} else {
		q.next = (q.next + 1) % len(q.ring)
	}
	return w
}

// remove takes w out of the queue (it stopped waiting), reporting whether
// it was there: false means it was popped, and so granted a slot.
func (q *fairQueue) remove(w *waiter) bool {
	f := q.flows[w.flow]
	if f == nil {
		return false
	}
	i := -1
	for j, o := range f.waiting {
		if o == w {
			i = j
			break
		}
	}
	if i < 0 {
		return false
	}
	f.waiting = append(f.waiting[:i], f.waiting[i+1:]...)
	q.n--
	if len(f.waiting) == 0 {
		for j, o := range q.ring {
			if o == f {
				q.dropFlow(j)
				break
			}
		}
	}
	return true
}

// dropFlow removes the empty flow at ring index i; the flow after it keeps
// its turn.
func (q *fairQueue) dropFlow(i int) {
	delete(q.flows, q.ring[i].name)
	q.ring = append(q.ring[:i], q.ring[i+1:]...)
	if i < q.next {
		q.next--
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
}
