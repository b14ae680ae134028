package runtime

import (
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// Bounds of the cgroup CPU settings, as the kubelet uses them.
const (
	// MinCPUShares is the smallest cpu.shares value, given to containers
	// that request no CPU.
	MinCPUShares = 2
	// MaxCPUShares is the largest cpu.shares value.
	MaxCPUShares = 262144
	// CPUPeriod is the CFS period (microseconds) that CPU limits are
	// expressed in: 100ms.
	CPUPeriod = 100000
	// MinCPUQuota is the smallest CFS quota the kernel accepts (1ms).
	MinCPUQuota = 1000
)

// MilliCPUToShares converts a CPU request in millicores to cgroup cpu.shares,
// where 1024 shares is one core: 250m gives 256. Zero gives MinCPUShares;
// the result is clamped to [MinCPUShares, MaxCPUShares].
func MilliCPUToShares(milliCPU int64) int64 {
	if milliCPU <= 0 {
		return MinCPUShares
	}
	shares := milliCPU * 1024 / 1000
	switch {
	case shares < MinCPUShares:
		return MinCPUShares
	case shares > MaxCPUShares:
		return MaxCPUShares
	}
	return shares
}

// MilliCPUToQuota converts a CPU limit in millicores to a CFS quota for the
// given period (microseconds): 500m over 100000 gives 50000. Zero (no limit)
// gives 0; a positive result is at least MinCPUQuota.
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU <= 0 {
		return 0
	}
	quota := milliCPU * period / 1000
	if quota < MinCPUQuota {
		return MinCPUQuota
	}
	return quota
}

// ResourcesFor turns a Kubernetes container's resource requests and limits
// into cgroup settings the way the kubelet does: shares from the CPU request
// (or the limit when only a limit is set), a CFS quota over CPUPeriod from
// the CPU limit, and the memory limit in bytes.
func ResourcesFor(req corev1.ResourceRequirements) Resources {
	cpuRequest := req.Requests.Cpu().MilliValue()
	cpuLimit := req.Limits.Cpu().MilliValue()
	shareBase := cpuRequest
	if cpuRequest == 0 && cpuLimit > 0 {
		shareBase = cpuLimit
	}
	r := Resources{
		CPUShares:        MilliCPUToShares(shareBase),
		MemoryLimitBytes: req.Limits.Memory().Value(),
	}
	if q := MilliCPUToQuota(cpuLimit, CPUPeriod); q > 0 {
		r.CPUQuota, r.CPUPeriod = q, CPUPeriod
	}
	return r
}

// PodLogDirectory is the directory under root that holds a pod's container
// logs, named like the kubelet's /var/log/pods/<namespace>_<name>_<uid>.
func PodLogDirectory(root, namespace, name, uid string) string {
	return filepath.Join(root, namespace+"_"+name+"_"+uid)
}

// ContainerLogPath is a container's log file relative to its pod's log
// directory: <container>/<attempt>.log, as the kubelet names it, so each
// restart gets a new file and the previous one stays for `logs --previous`.
func ContainerLogPath(container string, attempt uint32) string {
	return filepath.Join(container, fmt.Sprintf("%d.log", attempt))
}
