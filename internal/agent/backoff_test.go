package agent

import (
	"testing"
	"time"
)

func TestBackoffRestartAt(t *testing.T) {
	b := Backoff{Base: 10 * time.Second, Cap: 40 * time.Second, Reset: 10 * time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// A container that crashes 1s after each start, restarted as soon as
	// allowed: delays 0, 10s, 20s, 40s, 40s (cap).
	var e BackoffEntry
	start := t0
	for i, want := range []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second} {
		finish := start.Add(time.Second)
		at, d, next := b.RestartAt(e, start, finish)
		if d != want || !at.Equal(finish.Add(want)) {
			t.Fatalf("exit %d: delay %v restart at %v, want %v", i+1, d, at.Sub(t0), want)
		}
		// Asking again about the same exit changes nothing.
		if at2, d2, again := b.RestartAt(next, start, finish); again != next || d2 != d || !at2.Equal(at) {
			t.Fatalf("exit %d: second call gave %v %v, want %v %v", i+1, again, d2, next, d)
		}
		e, start = next, at
	}
	// A stable run resets the sequence.
	finish := start.Add(11 * time.Minute)
	if _, d, next := b.RestartAt(e, start, finish); d != 0 || next.Crashes != 1 {
		t.Fatalf("after a stable run: delay %v crashes %d, want 0 and 1", d, next.Crashes)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: 5 * time.Second}
	for n, want := range map[int]time.Duration{0: 0, 1: 0, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second, 5: 5 * time.Second, 60: 5 * time.Second} {
		if got := b.delay(n); got != want {
			t.Errorf("delay(%d) = %v, want %v", n, got, want)
		}
	}
}
