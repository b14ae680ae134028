package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestHeapTargetFor(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		ram  uint64
		want int64
	}{
		{0, 256 << 20},        // unknown: the default
		{24 * gib, 256 << 20}, // a big machine: the default
		{2 * gib, 256 << 20},  // an eighth is exactly the default
		{1 * gib, 128 << 20},  // a small one: an eighth of it
	} {
		if got := heapTargetFor(c.ram); got != c.want {
			t.Errorf("heapTargetFor(%d) = %d, want %d", c.ram, got, c.want)
		}
	}
}

func TestHeapTargetFlag(t *testing.T) {
	var target resource.Quantity
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addHeapTargetFlag(f, &target)
	if target.Value() != heapTargetFor(totalRAM()) || target.Value() <= 0 {
		t.Fatalf("default %s, want %d", target.String(), heapTargetFor(totalRAM()))
	}
	if err := f.Parse([]string{"--heap-target", "1Gi"}); err != nil || target.Value() != 1<<30 {
		t.Fatalf("--heap-target 1Gi: %v, target %s", err, target.String())
	}
	if err := f.Parse([]string{"--heap-target", "0"}); err != nil || !target.IsZero() {
		t.Fatalf("--heap-target 0: %v, target %s", err, target.String())
	}
	for _, bad := range []string{"-1Mi", "lots"} {
		if err := f.Parse([]string{"--heap-target", bad}); err == nil {
			t.Errorf("--heap-target %s accepted", bad)
		}
	}
}

// TestStartHeapTargetGCPercent checks the collector's percent past the
// target: controlPlaneGCPercent unless GOGC is set, and Go's own without a
// target.
func TestStartHeapTargetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	percent := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	for _, c := range []struct {
		gogc   string
		target string
		want   int
	}{
		{"", "256Mi", controlPlaneGCPercent},
		{"200", "256Mi", 100}, // the environment's GOGC (set by the runtime at start; 100 here) stays
		{"", "0", 100},
	} {
		t.Setenv("GOGC", c.gogc)
		debug.SetGCPercent(100)
		tuner := startHeapTarget(resource.MustParse(c.target))
		// The tuner raises GOGC while the heap is under the target; its
		// floor is what Stop restores.
		tuner.Stop()
		if got := percent(); got != c.want {
			t.Errorf("GOGC=%q, target %s: percent %d after the tuner, want %d", c.gogc, c.target, got, c.want)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		content string
		want    uint64
		ok      bool
	}{
		{"536870912\n", 512 << 20, true},
		{"max\n", 0, false},                 // v2: no limit
		{"9223372036854771712\n", 0, false}, // v1: no limit
		{"0\n", 0, false},
	} {
		path := filepath.Join(dir, "limit")
		if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, ok := cgroupMemoryLimit(path); got != c.want || ok != c.ok {
			t.Errorf("%q: %d, %v; want %d, %v", c.content, got, ok, c.want, c.ok)
		}
	}
	if _, ok := cgroupMemoryLimit(filepath.Join(dir, "missing")); ok {
		t.Error("a missing file gave a limit")
	}
}
