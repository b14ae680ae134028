package runtime

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestMilliCPUToShares(t *testing.T) {
	for _, tc := range []struct {
		milli, want int64
	}{
		{0, MinCPUShares},
		{-5, MinCPUShares},
		{1, MinCPUShares}, // 1.024 rounds down below the floor
		{2, MinCPUShares},
		{10, 10},
		{250, 256},
		{1000, 1024},
		{1500, 1536},
		{256000, MaxCPUShares},
		{1000000, MaxCPUShares},
	} {
		if got := MilliCPUToShares(tc.milli); got != tc.want {
			t.Errorf("MilliCPUToShares(%d) = %d, want %d", tc.milli, got, tc.want)
		}
	}
}

func TestMilliCPUToQuota(t *testing.T) {
	for _, tc := range []struct {
		milli, period, want int64
	}{
		{0, CPUPeriod, 0},
		{-1, CPUPeriod, 0},
		{1, CPUPeriod, MinCPUQuota}, // 100us is below the kernel's floor
		{10, CPUPeriod, 1000},
		{500, CPUPeriod, 50000},
		{1000, CPUPeriod, 100000},
		{2500, CPUPeriod, 250000},
		{500, 50000, 25000},
	} {
		if got := MilliCPUToQuota(tc.milli, tc.period); got != tc.want {
			t.Errorf("MilliCPUToQuota(%d, %d) = %d, want %d", tc.milli, tc.period, got, tc.want)
		}
	}
}

func TestResourcesFor(t *testing.T) {
	list := func(kv ...string) corev1.ResourceList {
		l := corev1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		return l
	}
	for _, tc := range []struct {
		name string
		req  corev1.ResourceRequirements
		want Resources
	}{
		{"best effort", corev1.ResourceRequirements{}, Resources{CPUShares: MinCPUShares}},
		{"request only", corev1.ResourceRequirements{Requests: list("cpu", "250m", "memory", "64Mi")},
			Resources{CPUShares: 256}},
		{"limit only sets shares from the limit", corev1.ResourceRequirements{Limits: list("cpu", "500m", "memory", "128Mi")},
			Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: CPUPeriod, MemoryLimitBytes: 128 << 20}},
		{"request and limit", corev1.ResourceRequirements{
			Requests: list("cpu", "100m"), Limits: list("cpu", "2", "memory", "1Gi")},
			Resources{CPUShares: 102, CPUQuota: 200000, CPUPeriod: CPUPeriod, MemoryLimitBytes: 1 << 30}},
		{"memory limit only", corev1.ResourceRequirements{Limits: list("memory", "100M")},
			Resources{CPUShares: MinCPUShares, MemoryLimitBytes: 100_000_000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResourcesFor(tc.req); got != tc.want {
				t.Errorf("ResourcesFor = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLogPaths(t *testing.T) {
	if got, want := PodLogDirectory("/var/log/pods", "default", "web-1", "abc-123"), "/var/log/pods/default_web-1_abc-123"; got != want {
		t.Errorf("PodLogDirectory = %q, want %q", got, want)
	}
	if got, want := ContainerLogPath("web", 3), "web/3.log"; got != want {
		t.Errorf("ContainerLogPath = %q, want %q", got, want)
	}
}
