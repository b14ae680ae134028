package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/runtime"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func runningInst(id string, attempt uint32) *runtime.ContainerStatus {
	return &runtime.ContainerStatus{Container: runtime.Container{ID: runtime.ContainerID(id), Attempt: attempt, State: runtime.ContainerRunning, ImageRef: "sha256:abc"}, StartedAt: t0}
}

func exitedInst(id string, attempt uint32, code int32) *runtime.ContainerStatus {
	return &runtime.ContainerStatus{Container: runtime.Container{ID: runtime.ContainerID(id), Attempt: attempt, State: runtime.ContainerExited}, StartedAt: t0, FinishedAt: t0.Add(time.Second), ExitCode: code}
}

func podWith(policy corev1.RestartPolicy, inits []string, apps ...string) *corev1.Pod {
	p := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy}}
	p.Name, p.Namespace, p.UID = "p", "default", "uid-1"
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n, Image: "img"})
	}
	for _, n := range apps {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "img"})
	}
	return p
}

func condition(st corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func TestComputeStatus(t *testing.T) {
	crashWait := &corev1.ContainerStateWaiting{Reason: ReasonCrashLoopBackOff, Message: "back-off 10s"}
	tests := []struct {
		name       string
		pod        *corev1.Pod
		views      map[string]containerView
		phase      corev1.PodPhase
		ready      corev1.ConditionStatus
		readyWhy   string
		initalized corev1.ConditionStatus
		check      func(t *testing.T, st corev1.PodStatus)
	}{
		{
			name: "nothing started yet", pod: podWith(corev1.RestartPolicyAlways, nil, "app"),
			phase: corev1.PodPending, ready: corev1.ConditionFalse, readyWhy: ReasonContainersNotReady, initalized: corev1.ConditionTrue,
			check: func(t *testing.T, st corev1.PodStatus) {
				if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != ReasonContainerCreating {
					t.Errorf("state %+v, want waiting ContainerCreating", st.ContainerStatuses[0].State)
				}
			},
		},
		{
			name: "running and ready", pod: podWith(corev1.RestartPolicyAlways, nil, "app"),
			views: map[string]containerView{"app": {Current: runningInst("c1", 0), Ready: true, Started: true}},
			phase: corev1.PodRunning, ready: corev1.ConditionTrue, initalized: corev1.ConditionTrue,
			check: func(t *testing.T, st corev1.PodStatus) {
				cs := st.ContainerStatuses[0]
				if cs.ContainerID != "containerd://c1" || cs.ImageID != "sha256:abc" || !cs.Ready || !*cs.Started || cs.State.Running == nil {
					t.Errorf("container status %+v", cs)
				}
			},
		},
		{
			name: "running, not ready", pod: podWith(corev1.RestartPolicyAlways, nil, "a", "b"),
			views: map[string]containerView{"a": {Current: runningInst("c1", 0), Ready: true}, "b": {Current: runningInst("c2", 0)}},
			phase: corev1.PodRunning, ready: corev1.ConditionFalse, readyWhy: ReasonContainersNotReady, initalized: corev1.ConditionTrue,
			check: func(t *testing.T, st corev1.PodStatus) {
				if m := condition(st, corev1.PodReady).Message; m != "containers with unready status: [b]" {
					t.Errorf("Ready message %q", m)
				}
			},
		},
		{
			name: "crash loop", pod: podWith(corev1.RestartPolicyAlways, nil, "app"),
			views: map[string]containerView{"app": {Current: exitedInst("c3", 2, 1), Previous: exitedInst("c2", 1, 1), Waiting: crashWait}},
			phase: corev1.PodRunning, ready: corev1.ConditionFalse, readyWhy: ReasonContainersNotReady, initalized: corev1.ConditionTrue,
			check: func(t *testing.T, st corev1.PodStatus) {
				cs := st.ContainerStatuses[0]
				if cs.State.Waiting == nil || cs.State.Waiting.Reason != ReasonCrashLoopBackOff || cs.RestartCount != 2 {
					t.Errorf("state %+v restarts %d", cs.State, cs.RestartCount)
				}
				if term := cs.LastTerminationState.Terminated; term == nil || term.ContainerID != "containerd://c3" || term.Reason != "Error" || term.ExitCode != 1 {
					t.Errorf("lastState %+v, want the instance waiting for its restart", cs.LastTerminationState)
				}
			},
		},
		{
			name: "init container running", pod: podWith(corev1.RestartPolicyAlways, []string{"i1", "i2"}, "app"),
			views: map[string]containerView{"i1": {Current: exitedInst("c1", 0, 0)}, "i2": {Current: runningInst("c2", 0)}},
			phase: corev1.PodPending, ready: corev1.ConditionFalse, readyWhy: ReasonContainersNotReady, initalized: corev1.ConditionFalse,
			check: func(t *testing.T, st corev1.PodStatus) {
				if m := condition(st, corev1.PodInitialized).Message; m != "containers with incomplete status: [i2]" {
					t.Errorf("Initialized message %q", m)
				}
				if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != ReasonPodInitializing {
					t.Errorf("app state %+v, want waiting PodInitializing", st.ContainerStatuses[0].State)
				}
				if term := st.InitContainerStatuses[0].State.Terminated; term == nil || term.Reason != "Completed" {
					t.Errorf("init state %+v", st.InitContainerStatuses[0].State)
				}
			},
		},
		{
			name: "init failed with restartPolicy Never", pod: podWith(corev1.RestartPolicyNever, []string{"i1"}, "app"),
			views: map[string]containerView{"i1": {Current: exitedInst("c1", 0, 2)}},
			phase: corev1.PodFailed, ready: corev1.ConditionFalse, readyWhy: ReasonContainersNotReady, initalized: corev1.ConditionFalse,
		},
		{
			name: "completed", pod: podWith(corev1.RestartPolicyNever, nil, "a", "b"),
			views: map[string]containerView{"a": {Current: exitedInst("c1", 0, 0)}, "b": {Current: exitedInst("c2", 0, 0)}},
			phase: corev1.PodSucceeded, ready: corev1.ConditionFalse, readyWhy: ReasonPodCompleted, initalized: corev1.ConditionTrue,
		},
		{
			name: "one failed, restartPolicy Never", pod: podWith(corev1.RestartPolicyNever, nil, "a", "b"),
			views: map[string]containerView{"a": {Current: exitedInst("c1", 0, 0)}, "b": {Current: exitedInst("c2", 0, 1)}},
			phase: corev1.PodFailed, ready: corev1.ConditionFalse, readyWhy: ReasonContainersNotReady, initalized: corev1.ConditionTrue,
		},
		{
			name: "OnFailure: succeeded container stays down, pod Succeeded", pod: podWith(corev1.RestartPolicyOnFailure, nil, "a"),
			views: map[string]containerView{"a": {Current: exitedInst("c1", 3, 0), Previous: exitedInst("c0", 2, 1)}},
			phase: corev1.PodSucceeded, ready: corev1.ConditionFalse, readyWhy: ReasonPodCompleted, initalized: corev1.ConditionTrue,
			check: func(t *testing.T, st corev1.PodStatus) {
				if cs := st.ContainerStatuses[0]; cs.RestartCount != 3 || cs.LastTerminationState.Terminated == nil {
					t.Errorf("container status %+v", cs)
				}
			},
		},
		{
			name: "config error", pod: podWith(corev1.RestartPolicyAlways, nil, "app"),
			views: map[string]containerView{"app": {Waiting: &corev1.ContainerStateWaiting{Reason: ReasonCreateContainerConfigError, Message: `configmap "x" not found`}}},
			phase: corev1.PodPending, ready: corev1.ConditionFalse, readyWhy: ReasonContainersNotReady, initalized: corev1.ConditionTrue,
			check: func(t *testing.T, st corev1.PodStatus) {
				if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != ReasonCreateContainerConfigError {
					t.Errorf("state %+v", st.ContainerStatuses[0].State)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			views := tt.views
			if views == nil {
				views = map[string]containerView{}
			}
			st := computeStatus(tt.pod, podView{SandboxReady: true, PodIPs: []string{"10.0.0.5"}, HostIP: "192.168.1.2", RuntimeName: "containerd", Containers: views, Now: t0})
			if st.Phase != tt.phase {
				t.Errorf("phase %s, want %s", st.Phase, tt.phase)
			}
			ready := condition(st, corev1.PodReady)
			if ready.Status != tt.ready || ready.Reason != tt.readyWhy {
				t.Errorf("Ready %s/%s, want %s/%s", ready.Status, ready.Reason, tt.ready, tt.readyWhy)
			}
			if cr := condition(st, corev1.ContainersReady); cr.Status != ready.Status || cr.Reason != ready.Reason {
				t.Errorf("ContainersReady %+v differs from Ready %+v", cr, ready)
			}
			if c := condition(st, corev1.PodInitialized); c.Status != tt.initalized {
				t.Errorf("Initialized %s, want %s", c.Status, tt.initalized)
			}
			if st.PodIP != "10.0.0.5" || st.HostIP != "192.168.1.2" || st.StartTime == nil || !st.StartTime.Time.Equal(t0) {
				t.Errorf("podIP %s hostIP %s startTime %v", st.PodIP, st.HostIP, st.StartTime)
			}
			if len(st.ContainerStatuses) != len(tt.pod.Spec.Containers) || len(st.InitContainerStatuses) != len(tt.pod.Spec.InitContainers) {
				t.Errorf("statuses %d/%d", len(st.ContainerStatuses), len(st.InitContainerStatuses))
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

// Recomputing with the same observations changes nothing, and transition
// times move only when a condition's status changes: what lets the agent
// write a status only when something changed.
func TestComputeStatusStable(t *testing.T) {
	pod := podWith(corev1.RestartPolicyAlways, nil, "app")
	notReady := podView{SandboxReady: true, Containers: map[string]containerView{"app": {Current: runningInst("c1", 0)}}, Now: t0}
	pod.Status = computeStatus(pod, notReady)
	later := notReady
	later.Now = t0.Add(time.Minute)
	again := computeStatus(pod, later)
	if c := condition(again, corev1.PodReady); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("unchanged Ready moved its transition time to %v", c.LastTransitionTime)
	}
	if !again.StartTime.Time.Equal(t0) {
		t.Errorf("startTime moved to %v", again.StartTime)
	}
	ready := later
	ready.Containers = map[string]containerView{"app": {Current: runningInst("c1", 0), Ready: true, Started: true}}
	flipped := computeStatus(pod, ready)
	if c := condition(flipped, corev1.PodReady); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("Ready after the flip %+v, want True since t0+1m", c)
	}
	if c := condition(flipped, corev1.PodScheduled); c.Status != corev1.ConditionTrue {
		t.Errorf("PodScheduled %+v", c)
	}
}

func TestSameStatus(t *testing.T) {
	at := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	stored := corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}},
		StartTime:  &metav1.Time{Time: at},
	}
	tests := []struct {
		name string
		edit func(*corev1.PodStatus)
		want bool
	}{
		{"unchanged", func(*corev1.PodStatus) {}, true},
		// The server keeps whole seconds: a fresh time within the same
		// second is what is stored already.
		{"time within the second", func(s *corev1.PodStatus) {
			s.Conditions[0].LastTransitionTime = metav1.NewTime(at.Add(300 * time.Millisecond))
		}, true},
		{"time a second later", func(s *corev1.PodStatus) {
			s.Conditions[0].LastTransitionTime = metav1.NewTime(at.Add(time.Second))
		}, false},
		{"condition status", func(s *corev1.PodStatus) { s.Conditions[0].Status = corev1.ConditionFalse }, false},
		{"phase", func(s *corev1.PodStatus) { s.Phase = corev1.PodFailed }, false},
		{"empty and nil lists", func(s *corev1.PodStatus) { s.ContainerStatuses = []corev1.ContainerStatus{} }, true},
		{"pod IP", func(s *corev1.PodStatus) { s.PodIP = "10.0.0.1" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := *stored.DeepCopy()
			tt.edit(&next)
			enc, err := next.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if got := sameStatus(enc, &stored); got != tt.want {
				t.Errorf("sameStatus = %v, want %v", got, tt.want)
			}
		})
	}
}
