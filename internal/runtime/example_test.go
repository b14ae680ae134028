package runtime_test

import (
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/drover/drover/internal/runtime"
)

// A container asking for a quarter core and allowed half a core and 128 MiB.
func ExampleResourcesFor() {
	r := runtime.ResourcesFor(corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("500m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
	})
	fmt.Printf("shares=%d quota=%d/%d memory=%d\n", r.CPUShares, r.CPUQuota, r.CPUPeriod, r.MemoryLimitBytes)
	// Output: shares=256 quota=50000/100000 memory=134217728
}

// A process's output framed as CRI log entries.
func ExampleLogWriter() {
	clock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	w := runtime.NewLogWriter(os.Stdout, runtime.Stdout, clock)
	fmt.Fprint(w, "hello\npartial ")
	fmt.Fprint(w, "line")
	w.Close()
	// Output:
	// 2026-01-02T03:04:05.000000000Z stdout F hello
	// 2026-01-02T03:04:05.000000000Z stdout F partial line
}
