package apiserver

import "testing"

func TestFlushDue(t *testing.T) {
	for _, c := range []struct {
		unflushed, held, pending int
		want                     bool
	}{
		{0, 0, 0, false},       // nothing written
		{0, 40, 5, false},      // others' events filtered out, nothing written
		{1, 1, 0, true},        // a lull: send what there is
		{3, 3, 10, false},      // a burst: more are ready
		{1, maxHeld, 10, true}, // a steady stream of others' events: do not hold ours
		{maxHeld, maxHeld, 1, true},
	} {
		if got := flushDue(c.unflushed, c.held, c.pending); got != c.want {
			t.Errorf("flushDue(%d, %d, %d) = %v, want %v", c.unflushed, c.held, c.pending, got, c.want)
		}
	}
}
