package agent

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/runtime"
)

// Reasons the agent puts in container and pod statuses, as the kubelet
// spells them.
const (
	ReasonContainerCreating          = "ContainerCreating"
	ReasonPodInitializing            = "PodInitializing"
	ReasonCrashLoopBackOff           = "CrashLoopBackOff"
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
	ReasonCreateContainerError       = "CreateContainerError"
	ReasonErrImagePull               = "ErrImagePull"
	ReasonContainersNotReady         = "ContainersNotReady"
	ReasonContainersNotInitialized   = "ContainersNotInitialized"
	ReasonPodCompleted               = "PodCompleted"
)

// containerView is what the agent knows about one container of a pod.
type containerView struct {
	// Current is the latest instance and Previous the one before it; nil
	// when there is none.
	Current, Previous *runtime.ContainerStatus
	// Ready and Started are the probe verdicts for Current.
	Ready, Started bool
	// Waiting says why a container that does not run is not running
	// (CrashLoopBackOff, CreateContainerConfigError, ...); nil for the
	// default reason.
	Waiting *corev1.ContainerStateWaiting
}

// podView is what the agent knows about a pod from its runtime and probes.
type podView struct {
	SandboxReady bool
	PodIPs       []string
	HostIP       string
	// RuntimeName prefixes container IDs: "<RuntimeName>://<id>".
	RuntimeName string
	// Containers holds init and app containers by name.
	Containers map[string]containerView
	Now        time.Time
}

// apiTime converts a time to the API's one-second resolution, so that
// statuses compare equal to what the API server returns.
func apiTime(t time.Time) metav1.Time {
	if t.IsZero() {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(t.Unix(), 0))
}

// terminated describes an exited container instance.
func terminated(c *runtime.ContainerStatus, runtimeName string) *corev1.ContainerStateTerminated {
	reason := c.Reason
	if reason == "" {
		reason = runtime.ReasonCompleted
		if c.ExitCode != 0 {
			reason = runtime.ReasonError
		}
	}
	return &corev1.ContainerStateTerminated{
		ExitCode:    c.ExitCode,
		Reason:      reason,
		Message:     c.Message,
		StartedAt:   apiTime(c.StartedAt),
		FinishedAt:  apiTime(c.FinishedAt),
		ContainerID: runtimeName + "://" + string(c.ID),
	}
}

// containerStatus computes one container's status.
func containerStatus(spec *corev1.Container, v containerView, runtimeName, defaultWaiting string) corev1.ContainerStatus {
	s := corev1.ContainerStatus{Name: spec.Name, Image: spec.Image}
	cur := v.Current
	running := cur != nil && cur.State == runtime.ContainerRunning
	if cur != nil {
		s.ContainerID = runtimeName + "://" + string(cur.ID)
		s.RestartCount = int32(cur.Attempt)
		s.ImageID = cur.ImageRef
	}
	prev := v.Previous
	switch {
	case running:
		s.State.Running = &corev1.ContainerStateRunning{StartedAt: apiTime(cur.StartedAt)}
	case v.Waiting != nil:
		w := *v.Waiting
		s.State.Waiting = &w
		if cur != nil && cur.State == runtime.ContainerExited {
			prev = cur // the exited instance waits for its restart
		}
	case cur == nil || cur.State != runtime.ContainerExited:
		s.State.Waiting = &corev1.ContainerStateWaiting{Reason: defaultWaiting}
	default:
		s.State.Terminated = terminated(cur, runtimeName)
	}
	if prev != nil && prev.State == runtime.ContainerExited {
		s.LastTerminationState.Terminated = terminated(prev, runtimeName)
	}
	s.Ready = running && v.Ready
	started := running && v.Started
	s.Started = &started
	return s
}

// initDone reports whether every init container has completed.
func initDone(pod *corev1.Pod, containers map[string]containerView) bool {
	for _, c := range pod.Spec.InitContainers {
		if !succeeded(containers[c.Name].Current) {
			return false
		}
	}
	return true
}

func succeeded(c *runtime.ContainerStatus) bool {
	return c != nil && c.State == runtime.ContainerExited && c.ExitCode == 0
}

// computeStatus computes a pod's status from what the agent observed,
// keeping what others own (PodScheduled, QoS class, nominated node) and
// the start time and transition times that have not changed.
func computeStatus(pod *corev1.Pod, v podView) corev1.PodStatus {
	old := pod.Status
	st := *old.DeepCopy()
	inited := initDone(pod, v.Containers)

	st.InitContainerStatuses = nil
	var incompleteInit []string
	initFailed := false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cv := v.Containers[c.Name]
		cs := containerStatus(c, cv, v.RuntimeName, ReasonPodInitializing)
		if succeeded(cv.Current) {
			// A completed init container is not running and not ready.
		} else {
			incompleteInit = append(incompleteInit, c.Name)
			if pod.Spec.RestartPolicy == corev1.RestartPolicyNever && cv.Current != nil && cv.Current.State == runtime.ContainerExited {
				initFailed = true
			}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}

	st.ContainerStatuses = nil
	var unready []string
	appWaiting := ReasonContainerCreating
	if !inited {
		appWaiting = ReasonPodInitializing
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := containerStatus(c, v.Containers[c.Name], v.RuntimeName, appWaiting)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}

	st.Phase = podPhase(pod, st.ContainerStatuses, inited, initFailed)
	st.HostIP = v.HostIP
	st.HostIPs = nil
	if v.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: v.HostIP}}
	}
	st.PodIP, st.PodIPs = "", nil
	if len(v.PodIPs) > 0 {
		st.PodIP = v.PodIPs[0]
		for _, ip := range v.PodIPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	if st.StartTime == nil {
		t := apiTime(v.Now)
		st.StartTime = &t
	}

	now := apiTime(v.Now)
	set := func(c corev1.PodCondition) corev1.PodCondition {
		c.LastTransitionTime = now
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	cond := func(ok bool) corev1.ConditionStatus {
		if ok {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	sandbox := set(corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: cond(v.SandboxReady)})
	initialized := corev1.PodCondition{Type: corev1.PodInitialized, Status: cond(inited)}
	if !inited {
		initialized.Reason = ReasonContainersNotInitialized
		initialized.Message = fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incompleteInit, " "))
	}
	ready := corev1.PodCondition{Type: corev1.ContainersReady, Status: cond(len(unready) == 0)}
	switch {
	case st.Phase == corev1.PodSucceeded:
		ready.Status, ready.Reason = corev1.ConditionFalse, ReasonPodCompleted
	case len(unready) > 0:
		ready.Reason = ReasonContainersNotReady
		ready.Message = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	}
	podReady := ready
	podReady.Type = corev1.PodReady
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}
	for _, o := range old.Conditions {
		if o.Type == corev1.PodScheduled {
			scheduled = o
		}
	}
	st.Conditions = []corev1.PodCondition{sandbox, set(initialized), set(podReady), set(ready), set(scheduled)}
	// Conditions others added (readiness gates, disruption targets) stay.
	for _, o := range old.Conditions {
		switch o.Type {
		case corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled:
		default:
			st.Conditions = append(st.Conditions, o)
		}
	}
	return st
}

// podPhase is the kubelet's phase rule over the app container statuses.
func podPhase(pod *corev1.Pod, statuses []corev1.ContainerStatus, inited, initFailed bool) corev1.PodPhase {
	if initFailed {
		return corev1.PodFailed
	}
	if !inited {
		return corev1.PodPending
	}
	var running, waiting, stopped, succeededN int
	for _, s := range statuses {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeededN++
			}
		case s.LastTerminationState.Terminated != nil:
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch pod.Spec.RestartPolicy {
		case corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case corev1.RestartPolicyNever:
			if stopped == succeededN {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
		// OnFailure: done when every container succeeded.
		if stopped == succeededN && waiting == 0 {
			return corev1.PodSucceeded
		}
		return corev1.PodRunning
	}
	return corev1.PodPending
}
