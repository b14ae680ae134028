package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                string
		live, roots, target uint64
		floor, want         int
	}{
		{"no collection yet", 0, 0, 400 * mib, 100, 100},
		{"small heap grows to the target", 100 * mib, 0, 400 * mib, 100, 300},
		{"roots count in the goal", 100 * mib, 100 * mib, 400 * mib, 100, 150},
		{"past half the target: the floor", 250 * mib, 0, 400 * mib, 100, 100},
		{"past the target: the floor", 500 * mib, 0, 400 * mib, 100, 100},
		{"a higher floor holds", 100 * mib, 0, 400 * mib, 400, 400},
	} {
		if got := Percent(c.live, c.roots, c.target, c.floor); got != c.want {
			t.Errorf("%s: Percent(%d, %d, %d, %d) = %d, want %d", c.name, c.live, c.roots, c.target, c.floor, got, c.want)
		}
	}
}

// gogc reads the collector's current GOGC.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestTunerFollowsCollections checks that the tuner raises GOGC after a
// collection of a heap far below its target, and that Stop restores it.
func TestTunerFollowsCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tuner := Start(1 << 40) // 1 TiB: any test heap is far below it
	deadline := time.Now().Add(10 * time.Second)
	for gogc() <= 100 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d after collections", gogc())
		}
		runtime.GC()
		runtime.Gosched()
	}
	tuner.Stop()
	if got := gogc(); got != 100 {
		t.Errorf("after Stop GOGC = %d, want 100", got)
	}
}

func TestStartOffOrZero(t *testing.T) {
	if Start(0) != nil {
		t.Error("Start(0) returned a tuner")
	}
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	if Start(1<<30) != nil {
		t.Error("Start with GOGC=off returned a tuner")
	}
	var nilTuner *Tuner
	nilTuner.Stop() // must not panic
}
