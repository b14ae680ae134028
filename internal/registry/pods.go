package registry

import (
	"fmt"
	"reflect"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubectl/pkg/util/qos"
)

// nodeUnreachablePodReason is the status reason the node lifecycle
// controller sets on pods of an unreachable node.
const nodeUnreachablePodReason = "NodeLost"

// podUpdatableFields names what a pod update may change, for the error.
const podUpdatableFields = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.schedulingGates` (only removals)"

var supportedPodPhases = []corev1.PodPhase{corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown}

// Pods is core/v1 pods. The server serves pods/binding itself.
func Pods() *Resource {
	return &Resource{
		GroupVersion:      corev1.SchemeGroupVersion,
		Kind:              "Pod",
		Plural:            "pods",
		Singular:          "pod",
		ShortNames:        []string{"po"},
		Categories:        []string{"all"},
		Namespaced:        true,
		New:               func() runtime.Object { return &corev1.Pod{} },
		NewList:           func() runtime.Object { return &corev1.PodList{} },
		StatusSubresource: true,
		Default:           func(obj runtime.Object) { defaultPod(obj.(*corev1.Pod)) },
		PrepareForCreate:  preparePodForCreate,
		PrepareForUpdate: func(obj, old runtime.Object) {
			p, o := obj.(*corev1.Pod), old.(*corev1.Pod)
			bumpGeneration(&p.ObjectMeta, &o.ObjectMeta, &p.Spec, &o.Spec)
		},
		Validate:       func(obj runtime.Object) field.ErrorList { return validatePod(obj.(*corev1.Pod)) },
		ValidateUpdate: validatePodUpdate,
		ValidateStatus: validatePodStatusUpdate,
		TableColumns: []metav1.TableColumnDefinition{
			col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
			col("Status", "The aggregate status of the containers in this pod."),
			col("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
			ageColumn,
			wide(col("IP", "IP address allocated to the pod. Routable at least within the cluster.")),
			wide(col("Node", "NodeName indicates in which node this pod is scheduled.")),
			wide(col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node.")),
			wide(col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.")),
		},
		TableRow:         func(obj runtime.Object) []interface{} { return podRow(obj.(*corev1.Pod)) },
		SelectableFields: podFields,
		FieldValue:       podFieldValue,
	}
}

// preparePodForCreate starts the status over: Pending, with the QoS class.
func preparePodForCreate(obj runtime.Object) {
	pod := obj.(*corev1.Pod)
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending}
	pod.Status.QOSClass = qos.ComputePodQOS(pod)
	pod.Generation = 1
	AddDefaultTolerations(pod, DefaultTolerationSeconds)
}

// DefaultTolerationSeconds is how long a pod stays on a node that went
// not-ready or unreachable before it is evicted, unless the pod says
// otherwise. Upstream's DefaultTolerationSeconds admission uses 300s;
// Drover moves pods off a dead node in seconds.
var DefaultTolerationSeconds int64 = 5

// AddDefaultTolerations adds NoExecute tolerations of the not-ready and
// unreachable taints for seconds, unless the pod already tolerates them,
// as upstream's DefaultTolerationSeconds admission plugin does on pod
// creation. It reports whether it added any.
func AddDefaultTolerations(pod *corev1.Pod, seconds int64) bool {
	notReady, unreachable := false, false
	for _, t := range pod.Spec.Tolerations {
		noExecute := t.Effect == corev1.TaintEffectNoExecute || t.Effect == ""
		if noExecute && (t.Key == corev1.TaintNodeNotReady || t.Key == "") {
			notReady = true
		}
		if noExecute && (t.Key == corev1.TaintNodeUnreachable || t.Key == "") {
			unreachable = true
		}
	}
	add := func(key string) {
		s := seconds
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
			Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s,
		})
	}
	if !notReady {
		add(corev1.TaintNodeNotReady)
	}
	if !unreachable {
		add(corev1.TaintNodeUnreachable)
	}
	return !notReady || !unreachable
}

// validatePod validates a pod's spec.
func validatePod(pod *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := validatePodSpec(&pod.Spec, specPath)
	if pod.Spec.HostNetwork {
		for i, c := range pod.Spec.Containers {
			for j, port := range c.Ports {
				if port.HostPort != port.ContainerPort {
					errs = append(errs, field.Invalid(specPath.Child("containers").Index(i).Child("ports").Index(j).Child("hostPort"), port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
				}
			}
		}
	}
	return errs
}

// validatePodUpdate allows only image, activeDeadlineSeconds, added
// tolerations and removed scheduling gates to change.
func validatePodUpdate(obj, oldObj runtime.Object) field.ErrorList {
	pod, old := obj.(*corev1.Pod), oldObj.(*corev1.Pod)
	specPath := field.NewPath("spec")
	errs := validatePod(pod)
	if len(pod.Spec.Containers) != len(old.Spec.Containers) {
		return append(errs, field.Forbidden(specPath.Child("containers"), "pod updates may not add or remove containers"))
	}
	if len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		return append(errs, field.Forbidden(specPath.Child("initContainers"), "pod updates may not add or remove containers"))
	}
	if d := pod.Spec.ActiveDeadlineSeconds; old.Spec.ActiveDeadlineSeconds != nil {
		o := *old.Spec.ActiveDeadlineSeconds
		if d == nil || *d > o {
			errs = append(errs, field.Invalid(specPath.Child("activeDeadlineSeconds"), d, fmt.Sprintf("must be less than or equal to previous value %d", o)))
		}
	}
	errs = append(errs, validateOnlyAddedTolerations(pod.Spec.Tolerations, old.Spec.Tolerations, specPath.Child("tolerations"))...)
	for i, g := range pod.Spec.SchedulingGates {
		if !contains(old.Spec.SchedulingGates, g) {
			errs = append(errs, field.Forbidden(specPath.Child("schedulingGates").Index(i), "only deletion is allowed, but found new scheduling gate '"+g.Name+"'"))
		}
	}

	munged := pod.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	munged.Tolerations = old.Spec.Tolerations
	munged.SchedulingGates = old.Spec.SchedulingGates
	if !semanticEqual(munged, &old.Spec) {
		errs = append(errs, field.Forbidden(specPath, "pod updates may not change fields other than "+podUpdatableFields))
	}
	return errs
}

// validateOnlyAddedTolerations forbids changing or removing tolerations.
func validateOnlyAddedTolerations(newT, oldT []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, o := range oldT {
		found := false
		for _, n := range newT {
			if reflect.DeepEqual(o, n) {
				found = true
				break
			}
		}
		if !found {
			errs = append(errs, field.Forbidden(fldPath, "existing toleration can not be modified except its tolerationSeconds"))
			break
		}
	}
	return append(errs, validateTolerations(newT, fldPath)...)
}

// validatePodStatusUpdate checks a status write: a known phase, no way
// back from a terminal phase, valid IPs.
func validatePodStatusUpdate(obj, oldObj runtime.Object) field.ErrorList {
	pod, old := obj.(*corev1.Pod), oldObj.(*corev1.Pod)
	var errs field.ErrorList
	p := field.NewPath("status")
	if ph := pod.Status.Phase; ph != "" && !contains(supportedPodPhases, ph) {
		errs = append(errs, field.NotSupported(p.Child("phase"), ph, supportedPodPhases))
	}
	if isTerminal(old.Status.Phase) && pod.Status.Phase != old.Status.Phase {
		errs = append(errs, field.Forbidden(p.Child("phase"), fmt.Sprintf("cannot transition from terminal phase %s to %s", old.Status.Phase, pod.Status.Phase)))
	}
	if pod.Status.PodIP != "" {
		errs = append(errs, validation.IsValidIP(p.Child("podIP"), pod.Status.PodIP)...)
	}
	for i, ip := range pod.Status.PodIPs {
		errs = append(errs, validation.IsValidIP(p.Child("podIPs").Index(i).Child("ip"), ip.IP)...)
	}
	if pod.Status.HostIP != "" {
		errs = append(errs, validation.IsValidIP(p.Child("hostIP"), pod.Status.HostIP)...)
	}
	if pod.Status.NominatedNodeName != "" {
		errs = append(errs, dnsSubdomain(pod.Status.NominatedNodeName, p.Child("nominatedNodeName"))...)
	}
	for i, cs := range pod.Status.ContainerStatuses {
		errs = append(errs, nonNegative(int64(cs.RestartCount), p.Child("containerStatuses").Index(i).Child("restartCount"))...)
	}
	return errs
}

// isTerminal reports Succeeded and Failed.
func isTerminal(ph corev1.PodPhase) bool {
	return ph == corev1.PodSucceeded || ph == corev1.PodFailed
}

// podFieldNames are the pod fields a field selector may use.
var podFieldNames = []string{
	"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
	"spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
}

// podFields returns the pod fields a field selector may use.
func podFields(obj runtime.Object) fields.Set {
	set := make(fields.Set, len(podFieldNames))
	for _, f := range podFieldNames {
		set[f], _ = podFieldValue(obj, f)
	}
	return set
}

// podFieldValue reads one of podFieldNames from the pod; false for any
// other field.
func podFieldValue(obj runtime.Object, field string) (string, bool) {
	pod := obj.(*corev1.Pod)
	switch field {
	case "spec.nodeName":
		return pod.Spec.NodeName, true
	case "spec.restartPolicy":
		return string(pod.Spec.RestartPolicy), true
	case "spec.schedulerName":
		return pod.Spec.SchedulerName, true
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, true
	case "spec.hostNetwork":
		return strconv.FormatBool(pod.Spec.HostNetwork), true
	case "status.phase":
		return string(pod.Status.Phase), true
	case "status.podIP":
		return pod.Status.PodIP, true
	case "status.nominatedNodeName":
		return pod.Status.NominatedNodeName, true
	}
	return "", false
}

// podRow renders a pod as kubectl get pods does (after NAME): READY STATUS
// RESTARTS AGE | IP NODE NOMINATED NODE READINESS GATES.
func podRow(pod *corev1.Pod) []interface{} {
	ready, total, reason, restarts := podStatusCells(pod)

	ip := "<none>"
	if len(pod.Status.PodIPs) > 0 {
		ip = pod.Status.PodIPs[0].IP
	} else if pod.Status.PodIP != "" {
		ip = pod.Status.PodIP
	}
	nodeName := orNone(pod.Spec.NodeName)
	nominated := orNone(pod.Status.NominatedNodeName)
	gates := "<none>"
	if len(pod.Spec.ReadinessGates) > 0 {
		trueConditions := 0
		for _, g := range pod.Spec.ReadinessGates {
			for _, c := range pod.Status.Conditions {
				if c.Type == g.ConditionType {
					if c.Status == corev1.ConditionTrue {
						trueConditions++
					}
					break
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", trueConditions, len(pod.Spec.ReadinessGates))
	}
	return []interface{}{fmt.Sprintf("%d/%d", ready, total), reason, restarts, age(pod.CreationTimestamp), ip, nodeName, nominated, gates}
}

// orNone returns s, or "<none>" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// podStatusCells computes READY, STATUS and RESTARTS like kubectl's pod
// printer: the pod's reason, init container progress, a waiting or
// terminated reason, Terminating and Completed.
func podStatusCells(pod *corev1.Pod) (ready, total int, reason, restartsCell string) {
	restarts, sidecarRestarts := 0, 0
	total = len(pod.Spec.Containers)
	var lastRestart, lastSidecarRestart metav1.Time

	reason = string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}

	inits := map[string]*corev1.Container{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		inits[c.Name] = c
		if isSidecar(c) {
			total++
		}
	}

	later := func(last *metav1.Time, cs corev1.ContainerStatus) {
		if t := cs.LastTerminationState.Terminated; t != nil && last.Before(&t.FinishedAt) {
			*last = t.FinishedAt
		}
	}

	initializing := false
	for i, cs := range pod.Status.InitContainerStatuses {
		restarts += int(cs.RestartCount)
		later(&lastRestart, cs)
		sidecar := isSidecar(inits[cs.Name])
		if sidecar {
			sidecarRestarts += int(cs.RestartCount)
			later(&lastSidecarRestart, cs)
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case sidecar && cs.Started != nil && *cs.Started:
			if cs.Ready {
				ready++
			}
			continue
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			switch {
			case t.Reason != "":
				reason = "Init:" + t.Reason
			case t.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", t.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
			}
			initializing = true
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
			initializing = true
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
			initializing = true
		}
		break
	}

	if !initializing || podConditionTrue(pod, corev1.PodInitialized) {
		restarts = sidecarRestarts
		lastRestart = lastSidecarRestart
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := pod.Status.ContainerStatuses[i]
			restarts += int(cs.RestartCount)
			later(&lastRestart, cs)
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			if podConditionTrue(pod, corev1.PodReady) {
				reason = "Running"
			} else {
				reason = "NotReady"
			}
		}
	}

	switch {
	case pod.DeletionTimestamp != nil && pod.Status.Reason == nodeUnreachablePodReason:
		reason = "Unknown"
	case pod.DeletionTimestamp != nil && !isTerminal(pod.Status.Phase):
		reason = "Terminating"
	}

	restartsCell = strconv.Itoa(restarts)
	if restarts != 0 && !lastRestart.IsZero() {
		restartsCell = fmt.Sprintf("%d (%s ago)", restarts, age(lastRestart))
	}
	return ready, total, reason, restartsCell
}

// isSidecar reports an init container with restartPolicy Always.
func isSidecar(c *corev1.Container) bool {
	return c != nil && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// podConditionTrue reports whether the pod has condition t with status True.
func podConditionTrue(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
