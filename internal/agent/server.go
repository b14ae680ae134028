package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/stats"
)

// The agent's HTTP endpoint serves, like the kubelet's:
//
//	GET /healthz
//	GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&timestamps=&sinceSeconds=&sinceTime=
//	GET /stats/summary
//	GET /metrics (work queue, pod start and Go runtime metrics, Prometheus text)
//
// It is plain HTTP without authentication for now.

func (a *agent) handler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", a.serveLogs)
	stats := &statsCollector{a: a, prev: map[runtime.ContainerID]runtime.ContainerStats{}}
	mux.HandleFunc("GET /stats/summary", stats.serve)
	return mux
}

// serveLogs streams a container's log, the newest instance or, with
// previous=true, the one before.
func (a *agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	opts := runtime.LogOptions{Follow: q.Get("follow") == "true", Timestamps: q.Get("timestamps") == "true"}
	previous := q.Get("previous") == "true"
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "tailLines must be a non-negative integer", http.StatusBadRequest)
			return
		}
		if n == 0 {
			return
		}
		opts.TailLines = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			http.Error(w, "sinceSeconds must be a positive integer", http.StatusBadRequest)
			return
		}
		opts.Since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(w, "sinceTime must be RFC 3339", http.StatusBadRequest)
			return
		}
		opts.Since = t
	}
	if a.pods == nil || !a.pods.synced.Load() {
		http.Error(w, "agent is starting", http.StatusServiceUnavailable)
		return
	}
	pod, err := a.pods.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		http.Error(w, fmt.Sprintf("pod %s/%s not found on node %s", ns, name, a.cfg.NodeName), http.StatusNotFound)
		return
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	cs, err := a.cfg.Runtime.ListContainers(r.Context(), runtime.ContainerFilter{Labels: map[string]string{
		runtime.LabelPodUID: string(pod.UID), runtime.LabelContainerName: container}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Attempt > cs[j].Attempt })
	idx := 0
	if previous {
		idx = 1
	}
	if idx >= len(cs) {
		msg := fmt.Sprintf("container %q in pod %q is waiting to start", container, name)
		if previous {
			msg = fmt.Sprintf("previous terminated container %q in pod %q not found", container, name)
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	rc, err := a.cfg.Runtime.ContainerLogs(r.Context(), cs[idx].ID, opts)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, runtime.ErrNotFound) {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain")
	fw := flushWriter{w: w}
	fw.f, _ = w.(http.Flusher)
	io.Copy(fw, rc)
}

type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

// The Summary API served at /stats/summary; the types live in package
// stats, shared with the metrics API that reads them.
type (
	Summary        = stats.Summary
	NodeStats      = stats.NodeStats
	PodReference   = stats.PodReference
	PodStats       = stats.PodStats
	ContainerStats = stats.ContainerStats
	CPUStats       = stats.CPUStats
	MemoryStats    = stats.MemoryStats
)

// statsCollector answers /stats/summary, computing CPU rates from the
// previous sample of each container (or, for the first, from its start).
type statsCollector struct {
	a    *agent
	mu   sync.Mutex
	prev map[runtime.ContainerID]runtime.ContainerStats
}

func (s *statsCollector) serve(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(sum)
}

func u64(v uint64) *uint64 { return &v }

func (s *statsCollector) summary(ctx context.Context) (*Summary, error) {
	a := s.a
	if a.pods == nil || !a.pods.synced.Load() {
		return nil, errors.New("agent is starting")
	}
	pods, err := a.pods.lister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	running := runtime.ContainerRunning
	cs, err := a.cfg.Runtime.ListContainers(ctx, runtime.ContainerFilter{State: &running, Labels: map[string]string{runtime.LabelManagedBy: managedBy}})
	if err != nil {
		return nil, err
	}
	byPod := map[string][]runtime.Container{}
	for _, c := range cs {
		byPod[c.Labels[runtime.LabelPodUID]] = append(byPod[c.Labels[runtime.LabelPodUID]], c)
	}
	now := time.Now()
	sum := &Summary{Node: NodeStats{NodeName: a.cfg.NodeName}, Pods: []PodStats{}}
	sum.Node.StartTime = a.nodeCreated
	var nodeCPU, nodeCPUTime, nodeMem uint64
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[runtime.ContainerID]bool{}
	for _, p := range pods {
		list := byPod[string(p.UID)]
		if len(list) == 0 {
			continue
		}
		ps := PodStats{PodRef: PodReference{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID)}, Containers: []ContainerStats{}}
		if p.Status.StartTime != nil {
			ps.StartTime = *p.Status.StartTime
		}
		var podCPU, podCPUTime, podMem uint64
		for _, c := range list {
			st, err := a.cfg.Runtime.ContainerStats(ctx, c.ID)
			if err != nil {
				continue
			}
			cst, err := a.cfg.Runtime.ContainerStatus(ctx, c.ID)
			if err != nil {
				continue
			}
			seen[c.ID] = true
			rate := uint64(0)
			if prev, ok := s.prev[c.ID]; ok && st.Timestamp.After(prev.Timestamp) && st.CPUUsageCoreNanoSeconds >= prev.CPUUsageCoreNanoSeconds {
				rate = (st.CPUUsageCoreNanoSeconds - prev.CPUUsageCoreNanoSeconds) * 1e9 / uint64(st.Timestamp.Sub(prev.Timestamp).Nanoseconds())
			} else if ran := st.Timestamp.Sub(cst.StartedAt); ran > 0 {
				rate = uint64(float64(st.CPUUsageCoreNanoSeconds) * 1e9 / float64(ran.Nanoseconds()))
			}
			if prev, ok := s.prev[c.ID]; !ok || st.Timestamp.Sub(prev.Timestamp) >= time.Second {
				s.prev[c.ID] = st
			}
			t := stats.NewSampleTime(st.Timestamp)
			ps.Containers = append(ps.Containers, ContainerStats{
				Name:      c.Labels[runtime.LabelContainerName],
				StartTime: metav1.NewTime(cst.StartedAt),
				CPU:       &CPUStats{Time: t, UsageNanoCores: u64(rate), UsageCoreNanoSeconds: u64(st.CPUUsageCoreNanoSeconds)},
				Memory:    &MemoryStats{Time: t, WorkingSetBytes: u64(st.MemoryWorkingSetBytes)},
			})
			podCPU += rate
			podCPUTime += st.CPUUsageCoreNanoSeconds
			podMem += st.MemoryWorkingSetBytes
		}
		t := stats.NewSampleTime(now)
		ps.CPU = &CPUStats{Time: t, UsageNanoCores: u64(podCPU), UsageCoreNanoSeconds: u64(podCPUTime)}
		ps.Memory = &MemoryStats{Time: t, WorkingSetBytes: u64(podMem)}
		sum.Pods = append(sum.Pods, ps)
		nodeCPU += podCPU
		nodeCPUTime += podCPUTime
		nodeMem += podMem
	}
	for id := range s.prev {
		if !seen[id] {
			delete(s.prev, id)
		}
	}
	t := stats.NewSampleTime(now)
	sum.Node.CPU = &CPUStats{Time: t, UsageNanoCores: u64(nodeCPU), UsageCoreNanoSeconds: u64(nodeCPUTime)}
	sum.Node.Memory = &MemoryStats{Time: t, WorkingSetBytes: u64(nodeMem)}
	return sum, nil
}
