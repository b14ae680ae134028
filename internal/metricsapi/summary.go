package metricsapi

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/drover/drover/internal/stats"
)

// The Summary API as agents serve it (package stats).
type (
	summary        = stats.Summary
	nodeStats      = stats.NodeStats
	podRef         = stats.PodReference
	podStats       = stats.PodStats
	containerStats = stats.ContainerStats
	cpuStats       = stats.CPUStats
	memoryStats    = stats.MemoryStats
)

// maxSummaryBytes bounds a summary read from an agent.
const maxSummaryBytes = 64 << 20

func readSummary(r io.Reader) (*summary, error) {
	var s summary
	if err := json.NewDecoder(io.LimitReader(r, maxSummaryBytes)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding stats summary: %w", err)
	}
	return &s, nil
}

// podKey names a pod.
type podKey struct{ Namespace, Name string }

// nodePoint is a node's latest usage.
type nodePoint struct {
	Timestamp time.Time
	Window    time.Duration
	CPUNano   uint64 // nanocores
	Memory    uint64 // working set bytes
}

// podPoint is a pod's latest usage, per container.
type podPoint struct {
	UID        string
	Timestamp  time.Time
	Window     time.Duration
	Containers []containerPoint
}

// containerPoint is a container's latest usage.
type containerPoint struct {
	Name    string
	CPUNano uint64
	Memory  uint64
}

// cpuKey names a CPU counter on a node: the node itself (zero key) or a
// container of a pod.
type cpuKey struct{ PodUID, Container string }

// cpuSample is a cumulative CPU reading, kept to compute the next rate.
type cpuSample struct {
	Start      time.Time // of the node or container; a restart resets the counter
	At         time.Time
	Cumulative uint64 // core-nanoseconds
}

// batch is what one summary yields.
type batch struct {
	node    *nodePoint
	pods    map[podKey]podPoint
	samples map[cpuKey]cpuSample
}

// decodeSummary turns a summary into points. CPU rates come from the
// cumulative counters of prev (the previous scrape of the same node) when
// they continue; otherwise from the agent's own rate, with fallbackWindow
// as the window. A pod is reported only when every container it lists
// has CPU and memory, as metrics-server does.
func decodeSummary(s *summary, prev map[cpuKey]cpuSample, fallbackWindow time.Duration) batch {
	b := batch{pods: map[podKey]podPoint{}, samples: map[cpuKey]cpuSample{}}
	if cpu, win, at, ok := rate(cpuKey{}, s.Node.StartTime.Time, s.Node.CPU, prev, b.samples, fallbackWindow); ok && s.Node.Memory != nil && s.Node.Memory.WorkingSetBytes != nil {
		b.node = &nodePoint{Timestamp: at, Window: win, CPUNano: cpu, Memory: *s.Node.Memory.WorkingSetBytes}
	}
	for _, p := range s.Pods {
		if len(p.Containers) == 0 {
			continue
		}
		pt := podPoint{UID: p.PodRef.UID}
		complete := true
		for _, c := range p.Containers {
			cpu, win, at, ok := rate(cpuKey{p.PodRef.UID, c.Name}, c.StartTime.Time, c.CPU, prev, b.samples, fallbackWindow)
			if !ok || c.Memory == nil || c.Memory.WorkingSetBytes == nil {
				complete = false
				continue
			}
			pt.Containers = append(pt.Containers, containerPoint{Name: c.Name, CPUNano: cpu, Memory: *c.Memory.WorkingSetBytes})
			if at.After(pt.Timestamp) {
				pt.Timestamp = at
			}
			pt.Window = max(pt.Window, win)
		}
		if complete {
			b.pods[podKey{p.PodRef.Namespace, p.PodRef.Name}] = pt
		}
	}
	return b
}

// rate is the CPU usage of one counter in nanocores, the window it was
// measured over and when; it records the counter's sample in next.
func rate(k cpuKey, start time.Time, c *cpuStats, prev, next map[cpuKey]cpuSample, fallbackWindow time.Duration) (nano uint64, window time.Duration, at time.Time, ok bool) {
	if c == nil {
		return 0, 0, time.Time{}, false
	}
	at = c.Time.Time
	if c.UsageCoreNanoSeconds != nil {
		cur := cpuSample{Start: start, At: at, Cumulative: *c.UsageCoreNanoSeconds}
		next[k] = cur
		if p, seen := prev[k]; seen && p.Start.Equal(start) && cur.At.After(p.At) && cur.Cumulative >= p.Cumulative {
			window = cur.At.Sub(p.At)
			used := float64(cur.Cumulative - p.Cumulative)
			return uint64(used * 1e9 / float64(window.Nanoseconds())), window, at, true
		}
	}
	if c.UsageNanoCores != nil {
		return *c.UsageNanoCores, fallbackWindow, at, true
	}
	return 0, 0, time.Time{}, false
}
