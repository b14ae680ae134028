// Package gctune lets a process's heap grow to a target size before the
// garbage collector runs more often than Go's default would.
//
// Go's collector starts a cycle when the heap has grown by GOGC percent
// (100 by default) of what the last cycle found live, so a server whose
// live heap is 100 MiB collects every 100 MiB it allocates even when it
// is allowed, and will later need, several times that: its peak memory is
// set by its largest live heap, while most of its collections happen while
// the heap is still small. A Tuner sets GOGC after every cycle so that the
// next one starts when the heap reaches the target, and never lower than
// the GOGC the process started with, so that a heap whose live part is
// past half the target is collected exactly as without the Tuner. Peak
// memory stays that of the largest live heap (or the target, whichever is
// more), and the collections before it are fewer.
//
// This is the inverse of GOMEMLIMIT, which makes collections more frequent
// as the heap nears a limit; a limit set by the environment still applies.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent returns the GOGC whose next heap goal is target for a heap whose
// last collection found live bytes live and roots bytes of stacks and
// globals to scan (the goal is live + (live+roots)×GOGC/100), and never
// less than floor.
func Percent(live, roots, target uint64, floor int) int {
	if live == 0 || target <= live {
		return floor
	}
	p := float64(target-live) * 100 / float64(live+roots)
	if p > math.MaxInt32 {
		p = math.MaxInt32
	}
	if int(p) < floor {
		return floor
	}
	return int(p)
}

// Tuner sets GOGC after every garbage collection; see the package comment.
type Tuner struct {
	target uint64
	floor  int

	mu      sync.Mutex
	stopped bool
	samples []metrics.Sample
}

// Start returns a Tuner that keeps the heap goal at target bytes (or the
// process's GOGC, if that gives more) from the next collection on. It
// returns nil, and changes nothing, if target is 0 or the collector is off
// (GOGC=off).
func Start(target uint64) *Tuner {
	if target == 0 {
		return nil
	}
	floor := debug.SetGCPercent(100)
	debug.SetGCPercent(floor)
	if floor < 0 {
		return nil
	}
	t := &Tuner{target: target, floor: floor, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.tune()
	t.arm()
	return t
}

// Stop restores the GOGC the process started with; the Tuner changes it
// no more. Stop of a nil Tuner does nothing.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	debug.SetGCPercent(t.floor)
}

// sentinel is the garbage a Tuner watches for: it holds a pointer so that
// it is never batched with other small objects (whose cleanups then wait
// for all of them).
type sentinel struct{ _ *int }

// arm makes garbage whose cleanup, run after the next collection, tunes
// and arms again.
func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *Tuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC from the last collection's figures; false once stopped.
func (t *Tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.samples)
	live, stack, globals := t.samples[0].Value.Uint64(), t.samples[1].Value.Uint64(), t.samples[2].Value.Uint64()
	debug.SetGCPercent(Percent(live, stack+globals, t.target, t.floor))
	return true
}
