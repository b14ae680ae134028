package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/drover/drover/internal/gctune"
)

// maxDefaultHeapTarget is the heap a control plane process grows to by
// default before collecting garbage as often as controlPlaneGCPercent has
// it: with that percent, what keeps the 500-node bench's control plane
// (live heap 140-150 MiB at the end) under a quarter of the memory of
// Kubernetes' on the same workload (396-420 MiB peak RSS against ~1.9 GB).
const maxDefaultHeapTarget = 256 << 20

// controlPlaneGCPercent is a control plane's GOGC, the tuner's floor, unless
// the environment sets one: past the target a collection starts when the
// heap has grown by half of what the last one found live, not by all of it
// as at Go's default of 100. Peak memory is then 1.5 times the largest live
// heap instead of twice it, for about twice the collections once the live
// heap is past two thirds of the target (500/10,000: peak RSS 553-575 ->
// 429-435 MiB, collections 8 -> 16-17, workload CPU +1.2 s of 9.2, with the
// target down from 384Mi).
const controlPlaneGCPercent = 50

// heapTargetFor is the default heap target on a machine with totalRAM
// bytes of memory (0: unknown): maxDefaultHeapTarget, or an eighth of the
// memory if that is less, so that a small machine does not lend the
// collector what it has not got.
func heapTargetFor(totalRAM uint64) int64 {
	if totalRAM > 0 && totalRAM/8 < maxDefaultHeapTarget {
		return int64(totalRAM / 8)
	}
	return maxDefaultHeapTarget
}

// totalRAM is the memory this process may use in bytes: the machine's, or
// its cgroup's limit if lower (a container's); 0 if unknown.
func totalRAM() uint64 {
	var total uint64
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil {
		total = uint64(si.Totalram) * uint64(si.Unit)
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if limit, ok := cgroupMemoryLimit(path); ok && (total == 0 || limit < total) {
			total = limit
		}
	}
	return total
}

// cgroupMemoryLimit reads a cgroup memory limit file (v2 memory.max or v1
// memory.limit_in_bytes): false if it is missing or sets no limit.
func cgroupMemoryLimit(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	limit, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || limit == 0 || limit >= 1<<62 { // "max", or v1's "no limit" (near 2^63)
		return 0, false
	}
	return limit, true
}

// defaultHeapTarget is --heap-target's default on this machine.
var defaultHeapTarget = *resource.NewQuantity(heapTargetFor(totalRAM()), resource.BinarySI)

// addHeapTargetFlag adds --heap-target, bound to target.
func addHeapTargetFlag(f *pflag.FlagSet, target *resource.Quantity) {
	*target = defaultHeapTarget.DeepCopy()
	f.Var(heapTargetValue{target}, "heap-target", "heap size the process grows to before collecting garbage each time the heap grows by half of what is live (GOGC 50, or $GOGC if set): fewer collections while the heap is small, a peak of 1.5 times the live heap once it is larger (0: Go's default throughout; the default is an eighth of the memory, the machine's or its cgroup's limit, where that is under 256Mi)")
}

// startHeapTarget starts collecting garbage by target, and past it at
// controlPlaneGCPercent unless GOGC is set; the caller stops the returned
// tuner (nil for a zero target, which leaves Go's default throughout).
func startHeapTarget(target resource.Quantity) *gctune.Tuner {
	if !target.IsZero() && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(controlPlaneGCPercent)
	}
	return gctune.Start(uint64(target.Value()))
}

// heapTargetValue reads a byte quantity (e.g. 384Mi, 1Gi) into a
// resource.Quantity.
type heapTargetValue struct{ q *resource.Quantity }

func (v heapTargetValue) String() string {
	if v.q == nil {
		return defaultHeapTarget.String()
	}
	return v.q.String()
}

func (v heapTargetValue) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("not a byte quantity such as 384Mi: %w", err)
	}
	if q.Sign() < 0 {
		return fmt.Errorf("%s is negative", s)
	}
	*v.q = q
	return nil
}

func (v heapTargetValue) Type() string { return "quantity" }
