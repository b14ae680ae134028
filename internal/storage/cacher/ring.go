package cacher

import (
	"sort"

	"github.com/drover/drover/internal/storage"
)

// ring is a fixed-size window of the most recent events, in revision order.
// It holds every event with a revision above start. Its buffer grows as
// events arrive, up to size: most resources see few events, and a full
// window of empty slots costs a quarter of a megabyte per resource.
type ring struct {
	buf   []storage.Event // the events; once size of them, a circle
	size  int
	first int // index of the oldest event
	// start is the revision after which the window is complete: the
	// revision of the last event pushed out, or of the list the window
	// began at.
	start int64
}

func newRing(size int) ring { return ring{size: size} }

// reset empties the window, which then begins at revision start.
func (r *ring) reset(start int64) {
	clear(r.buf)
	r.buf = r.buf[:0]
	r.first, r.start = 0, start
}

// push appends ev, pushing out the oldest event when the window is full.
func (r *ring) push(ev storage.Event) {
	if len(r.buf) < r.size {
		if len(r.buf) == cap(r.buf) {
			grown := make([]storage.Event, len(r.buf), min(max(2*cap(r.buf), 16), r.size))
			copy(grown, r.buf)
			r.buf = grown
		}
		r.buf = append(r.buf, ev)
		return
	}
	r.start = r.buf[r.first].Revision
	r.buf[r.first] = ev
	r.first = (r.first + 1) % len(r.buf)
}

func (r *ring) at(i int) storage.Event { return r.buf[(r.first+i)%len(r.buf)] }

// each calls f for every event with a revision above from, oldest first.
func (r *ring) each(from int64, f func(storage.Event)) {
	n := len(r.buf)
	i := sort.Search(n, func(i int) bool { return r.at(i).Revision > from })
	for ; i < n; i++ {
		f(r.at(i))
	}
}
