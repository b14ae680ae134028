// Package stats is the wire shape of kubelet's Summary API
// (k8s.io/kubelet/pkg/apis/stats/v1alpha1), the part Drover uses: CPU and
// memory per node, pod and container. The agent serves it at
// /stats/summary and the metrics API reads it, so both share these types.
package stats

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Summary is the /stats/summary document.
type Summary struct {
	Node NodeStats  `json:"node"`
	Pods []PodStats `json:"pods"`
}

// NodeStats is usage of the node (here the sum of its pods).
type NodeStats struct {
	NodeName  string       `json:"nodeName"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
}

// PodReference names a pod.
type PodReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

// PodStats is usage of one pod and its containers.
type PodStats struct {
	PodRef     PodReference     `json:"podRef"`
	StartTime  metav1.Time      `json:"startTime"`
	Containers []ContainerStats `json:"containers"`
	CPU        *CPUStats        `json:"cpu,omitempty"`
	Memory     *MemoryStats     `json:"memory,omitempty"`
}

// ContainerStats is usage of one container.
type ContainerStats struct {
	Name      string       `json:"name"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
}

// CPUStats is CPU usage: the rate in nanocores and the cumulative time.
//
// Time is sent to the microsecond (kubelet's metav1.Time has whole
// seconds): the metrics API divides the difference of two cumulative
// readings by the difference of their times, a window of a few seconds
// or less, which whole seconds would get wrong by up to one second.
type CPUStats struct {
	Time                 SampleTime `json:"time"`
	UsageNanoCores       *uint64    `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64    `json:"usageCoreNanoSeconds,omitempty"`
}

// MemoryStats is memory usage.
type MemoryStats struct {
	Time            SampleTime `json:"time"`
	WorkingSetBytes *uint64    `json:"workingSetBytes,omitempty"`
}

// SampleTime is when a sample was taken. It is written to the microsecond
// (metav1.MicroTime's form) and read in any RFC 3339 form, whole seconds
// too, as kubelets and earlier agents write it (metav1.Time), which
// MicroTime alone would refuse.
type SampleTime struct{ metav1.MicroTime }

// NewSampleTime returns t as a SampleTime.
func NewSampleTime(t time.Time) SampleTime { return SampleTime{metav1.NewMicroTime(t)} }

// UnmarshalJSON reads an RFC 3339 time of any precision, or null.
func (t *SampleTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.MicroTime = metav1.MicroTime{}
		return nil
	}
	var parsed time.Time
	if err := parsed.UnmarshalJSON(b); err != nil {
		return err
	}
	t.MicroTime = metav1.NewMicroTime(parsed.Local())
	return nil
}
