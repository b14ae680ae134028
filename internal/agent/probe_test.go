package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/drover/drover/internal/runtime"
)

func TestProbeObserve(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		kind     ProbeKind
		probe    corev1.Probe
		outcomes []bool
		want     []bool // verdict after each outcome
	}{
		{"readiness needs successThreshold successes", Readiness,
			corev1.Probe{SuccessThreshold: 2, FailureThreshold: 1},
			[]bool{true, true, false, true, true}, []bool{false, true, false, false, true}},
		{"readiness defaults: one success, three failures", Readiness, corev1.Probe{},
			[]bool{true, false, false, true, false, false, false}, []bool{true, true, true, true, true, true, false}},
		{"liveness starts alive and dies after failureThreshold", Liveness,
			corev1.Probe{FailureThreshold: 2},
			[]bool{false, true, false, false}, []bool{true, true, true, false}},
		{"startup flips once", Startup, corev1.Probe{FailureThreshold: 5},
			[]bool{false, false, true}, []bool{false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timing := TimingOf(&tt.probe)
			s := NewProbeState(tt.kind, "c1")
			now := t0
			for i, ok := range tt.outcomes {
				now = now.Add(time.Second)
				s = s.Observe(timing, ok, now)
				if s.OK != tt.want[i] {
					t.Fatalf("after outcome %d (%v): verdict %v, want %v (state %+v)", i, ok, s.OK, tt.want[i], s)
				}
				if !s.LastRun.Equal(now) {
					t.Fatalf("LastRun %v, want %v", s.LastRun, now)
				}
			}
		})
	}
}

func TestProbeNextRun(t *testing.T) {
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	timing := TimingOf(&corev1.Probe{InitialDelaySeconds: 5, PeriodSeconds: 3})
	s := NewProbeState(Readiness, "c1")
	if got := s.NextRun(timing, started); !got.Equal(started.Add(5 * time.Second)) {
		t.Fatalf("first run at %v, want initial delay 5s", got.Sub(started))
	}
	s = s.Observe(timing, true, started.Add(6*time.Second))
	if got := s.NextRun(timing, started); !got.Equal(started.Add(9 * time.Second)) {
		t.Fatalf("second run at %v, want 9s (last run + period)", got.Sub(started))
	}
}

func TestTimingDefaults(t *testing.T) {
	got := TimingOf(&corev1.Probe{})
	want := ProbeTiming{Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	if got != want {
		t.Fatalf("TimingOf(zero) = %+v, want %+v", got, want)
	}
}

func TestReadyForGood(t *testing.T) {
	running := func(id string) containerView {
		return containerView{Current: &runtime.ContainerStatus{Container: runtime.Container{ID: runtime.ContainerID(id), State: runtime.ContainerRunning}}}
	}
	withState := func(ok bool, id string) *podState {
		return &podState{probes: map[probeKey]ProbeState{{"app", Readiness}: {Container: runtime.ContainerID(id), OK: ok}}}
	}
	noProbe := &corev1.Container{Name: "app"}
	probed := &corev1.Container{Name: "app", ReadinessProbe: &corev1.Probe{PeriodSeconds: 1}}
	tests := []struct {
		name string
		c    *corev1.Container
		st   *podState
		v    containerView
		want bool
	}{
		{"implicit, found ready", noProbe, withState(true, "c1"), running("c1"), true},
		{"implicit, not ready yet", noProbe, withState(false, "c1"), running("c1"), false},
		{"implicit, never asked", noProbe, &podState{probes: map[probeKey]ProbeState{}}, running("c1"), false},
		{"implicit, a new instance", noProbe, withState(true, "c1"), running("c2"), false},
		{"the pod's own probe runs every period", probed, withState(true, "c1"), running("c1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &podRun{st: tt.st}
			if got := r.readyForGood(tt.c, tt.v); got != tt.want {
				t.Errorf("readyForGood = %v, want %v", got, tt.want)
			}
		})
	}
}
