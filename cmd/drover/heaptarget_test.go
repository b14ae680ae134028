package main

import (
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
		{0, 384 << 20},        // unknown: the default
		{24 * gib, 384 << 20}, // a big machine: the default
		{3 * gib, 384 << 20},  // an eighth is exactly the default
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
