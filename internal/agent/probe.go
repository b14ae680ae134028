package agent

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/drover/drover/internal/runtime"
)

// ProbeKind says which of a container's probes a state belongs to.
type ProbeKind string

// The three probe kinds, named as the sim runtime's ProbeResult expects.
const (
	Readiness ProbeKind = "readiness"
	Liveness  ProbeKind = "liveness"
	Startup   ProbeKind = "startup"
)

// Probe timing defaults, as the API server defaults them (for probes that
// reach the agent without defaults).
const (
	defaultPeriod    = 10 * time.Second
	defaultTimeout   = time.Second
	defaultFailures  = 3
	defaultSuccesses = 1
)

// ProbeTiming is a probe's timing fields with defaults applied.
type ProbeTiming struct {
	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
}

// TimingOf reads a probe's timing fields, applying the API defaults to
// zero values.
func TimingOf(p *corev1.Probe) ProbeTiming {
	t := ProbeTiming{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:          time.Duration(p.TimeoutSeconds) * time.Second,
		SuccessThreshold: int(p.SuccessThreshold),
		FailureThreshold: int(p.FailureThreshold),
	}
	if t.Period <= 0 {
		t.Period = defaultPeriod
	}
	if t.Timeout <= 0 {
		t.Timeout = defaultTimeout
	}
	if t.SuccessThreshold <= 0 {
		t.SuccessThreshold = defaultSuccesses
	}
	if t.FailureThreshold <= 0 {
		t.FailureThreshold = defaultFailures
	}
	return t
}

// ProbeState is the verdict of one probe of one container instance and the
// streak that led to it.
type ProbeState struct {
	// Container is the instance probed; a new instance starts over.
	Container runtime.ContainerID
	// OK is the current verdict: ready, alive or started.
	OK bool
	// Successes and Failures count the current streak of outcomes.
	Successes, Failures int
	// LastRun is when the probe last ran, zero before the first run.
	LastRun time.Time
}

// NewProbeState is the state of a probe of a new container instance:
// readiness and startup start failed (not yet ready, not yet started),
// liveness starts alive.
func NewProbeState(kind ProbeKind, id runtime.ContainerID) ProbeState {
	return ProbeState{Container: id, OK: kind == Liveness}
}

// NextRun returns when the probe should next run for a container that
// started at started: InitialDelay after the start for the first run, then
// every Period.
func (s ProbeState) NextRun(t ProbeTiming, started time.Time) time.Time {
	if s.LastRun.IsZero() {
		return started.Add(t.InitialDelay)
	}
	return s.LastRun.Add(t.Period)
}

// Observe folds one outcome, observed at now, into the state: the verdict
// turns good after SuccessThreshold successes in a row and bad after
// FailureThreshold failures in a row.
func (s ProbeState) Observe(t ProbeTiming, ok bool, now time.Time) ProbeState {
	s.LastRun = now
	if ok {
		s.Successes++
		s.Failures = 0
		if s.Successes >= t.SuccessThreshold {
			s.OK = true
		}
		return s
	}
	s.Failures++
	s.Successes = 0
	if s.Failures >= t.FailureThreshold {
		s.OK = false
	}
	return s
}
