package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// podTimes are when the watch first saw a pod created, bound and Ready.
// The API's timestamps have whole seconds only, so the bench's own clock,
// at the moment each event arrives, is the measure (as upstream's density
// test does).
type podTimes struct {
	created, scheduled, ready time.Time
}

// tracker watches the workload's pods until want of them are Ready.
type tracker struct {
	want int
	done chan struct{}

	mu      sync.Mutex
	pods    map[string]*podTimes
	nReady  int
	nSched  int
	failure error
}

type trackerSummary struct{ ready, scheduled int }

func startTracker(ctx context.Context, client kubernetes.Interface, ns string, want int) (*tracker, error) {
	t := &tracker{want: want, done: make(chan struct{}), pods: map[string]*podTimes{}}
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("bench: list pods: %w", err)
	}
	if len(list.Items) > 0 {
		return nil, fmt.Errorf("bench: namespace %s already has %d pods", ns, len(list.Items))
	}
	rv := list.ResourceVersion
	w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		return nil, fmt.Errorf("bench: watch pods: %w", err)
	}
	go func() {
		for {
			rv = t.consume(w, rv)
			select {
			case <-t.done:
				return
			case <-ctx.Done():
				return
			default:
			}
			// The watch ended early (server timeout): resume where it was.
			w, err = client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if ctx.Err() == nil {
					t.fail(fmt.Errorf("bench: watch pods again: %w", err))
				}
				return
			}
		}
	}()
	return t, nil
}

// consume reads w until it closes or every pod is Ready, and returns the
// last resourceVersion seen.
func (t *tracker) consume(w watch.Interface, rv string) string {
	defer w.Stop()
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			if st, ok := ev.Object.(*metav1.Status); ok {
				t.fail(fmt.Errorf("bench: pod watch: %w", apierrors.FromObject(st)))
			}
			return rv
		case watch.Bookmark:
			if p, ok := ev.Object.(*corev1.Pod); ok {
				rv = p.ResourceVersion
			}
			continue
		}
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		rv = p.ResourceVersion
		if t.observe(p, ev.Type, time.Now()) {
			return rv
		}
	}
	return rv
}

// observe records what p shows; true once every pod is Ready.
func (t *tracker) observe(p *corev1.Pod, typ watch.EventType, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nReady >= t.want {
		return true
	}
	pt := t.pods[p.Name]
	if pt == nil {
		if typ == watch.Deleted {
			return false
		}
		pt = &podTimes{created: now}
		t.pods[p.Name] = pt
	}
	if pt.scheduled.IsZero() && p.Spec.NodeName != "" {
		pt.scheduled = now
		t.nSched++
	}
	if pt.ready.IsZero() && p.Status.Phase == corev1.PodRunning && podReady(p) {
		pt.ready = now
		t.nReady++
		if t.nReady == t.want {
			close(t.done)
			return true
		}
	}
	return false
}

func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failure == nil {
		t.failure = err
		if t.nReady < t.want {
			t.nReady = t.want // stop observing
			close(t.done)
		}
	}
}

func (t *tracker) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failure
}

func (t *tracker) summary() trackerSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	return trackerSummary{ready: t.nReady, scheduled: t.nSched}
}

// fill computes the run's throughput and latency figures from the pods'
// times; start is when the first Deployment was created.
func (t *tracker) fill(r *Result, start time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var (
		startup               []float64
		lastReady             = start
		firstSched, lastSched time.Time
	)
	for _, pt := range t.pods {
		if pt.ready.IsZero() {
			continue
		}
		startup = append(startup, pt.ready.Sub(pt.created).Seconds())
		if pt.ready.After(lastReady) {
			lastReady = pt.ready
		}
		if !pt.scheduled.IsZero() {
			if firstSched.IsZero() || pt.scheduled.Before(firstSched) {
				firstSched = pt.scheduled
			}
			if pt.scheduled.After(lastSched) {
				lastSched = pt.scheduled
			}
		}
	}
	r.Seconds = lastReady.Sub(start).Seconds()
	if r.Seconds > 0 {
		r.PodsPerSec = float64(len(startup)) / r.Seconds
	}
	r.SecondsToAllScheduled = lastSched.Sub(start).Seconds()
	if span := lastSched.Sub(firstSched).Seconds(); span > 0 {
		r.SchedulerPodsPerSec = float64(t.nSched) / span
	}
	r.Startup = percentiles(startup)
}

// percentiles of xs (nearest rank); zero for none.
func percentiles(xs []float64) Percentiles {
	if len(xs) == 0 {
		return Percentiles{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: s[len(s)-1]}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
