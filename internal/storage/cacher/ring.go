package cacher

import (
	"sort"

	"github.com/drover/drover/internal/storage"
)

// ring is a fixed-size window of the most recent events, in revision order.
// It holds every event with a revision above start.
type ring struct {
	buf   []storage.Event
	first int // index of the oldest event
	n     int
	// start is the revision after which the window is complete: the
	// revision of the last event pushed out, or of the list the window
	// began at.
	start int64
}

func newRing(size int) ring { return ring{buf: make([]storage.Event, size)} }

// reset empties the window, which then begins at revision start.
func (r *ring) reset(start int64) {
	clear(r.buf)
	r.first, r.n, r.start = 0, 0, start
}

// push appends ev, pushing out the oldest event when the window is full.
func (r *ring) push(ev storage.Event) {
	if r.n == len(r.buf) {
		r.start = r.buf[r.first].Revision
		r.buf[r.first] = ev
		r.first = (r.first + 1) % len(r.buf)
		return
	}
	r.buf[(r.first+r.n)%len(r.buf)] = ev
	r.n++
}

func (r *ring) at(i int) storage.Event { return r.buf[(r.first+i)%len(r.buf)] }

// each calls f for every event with a revision above from, oldest first.
func (r *ring) each(from int64, f func(storage.Event)) {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).Revision > from })
	for ; i < r.n; i++ {
		f(r.at(i))
	}
}
