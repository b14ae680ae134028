package scheduler

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Filter failure reasons, worded as upstream's plugins word them; the
// FitError message counts them over the nodes.
const (
	ReasonUnschedulable    = "node(s) were unschedulable"
	ReasonUntoleratedTaint = "node(s) had untolerated taint(s)"
	ReasonNodeAffinity     = "node(s) didn't match Pod's node affinity/selector"
	ReasonHostPorts        = "node(s) didn't have free ports for the requested pod ports"
	ReasonTooManyPods      = "Too many pods"
	ReasonInsufficientCPU  = "Insufficient cpu"
	ReasonInsufficientMem  = "Insufficient memory"
	ReasonInsufficientEph  = "Insufficient ephemeral-storage"
)

// Well-known taints the scheduler honours without their being on the node.
const (
	TaintNodeNotReady      = "node.kubernetes.io/not-ready"
	TaintNodeUnreachable   = "node.kubernetes.io/unreachable"
	TaintNodeUnschedulable = "node.kubernetes.io/unschedulable"
)

// podInfo is what the filters and scores need of a pod, computed once per
// scheduling attempt.
type podInfo struct {
	pod         *corev1.Pod
	req         Resources // for filtering
	scalar      []ScalarRequest
	score       Resources // for scoring (non-zero defaults)
	ports       []hostPort
	owner       types.UID // controller owner, "" if none
	required    []nodeSelectorTerm
	hasRequired bool
	nodeSel     map[string]string
	preferred   []weightedTerm
}

type hostPort struct {
	proto corev1.Protocol
	ip    string
	port  int32
}

type nodeSelectorTerm struct {
	labels []corev1.NodeSelectorRequirement
	fields []corev1.NodeSelectorRequirement
}

type weightedTerm struct {
	weight int64
	term   nodeSelectorTerm
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	pi := &podInfo{
		pod:     pod,
		req:     PodRequests(pod),
		scalar:  PodScalarRequests(pod),
		score:   PodScoringRequests(pod),
		nodeSel: pod.Spec.NodeSelector,
	}
	pi.owner = controllerUID(pod)
	pi.ports = podHostPorts(pod)
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		if r := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			pi.hasRequired = true
			for _, t := range r.NodeSelectorTerms {
				pi.required = append(pi.required, nodeSelectorTerm{labels: t.MatchExpressions, fields: t.MatchFields})
			}
		}
		for _, p := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if p.Weight == 0 {
				continue
			}
			pi.preferred = append(pi.preferred, weightedTerm{
				weight: int64(p.Weight),
				term:   nodeSelectorTerm{labels: p.Preference.MatchExpressions, fields: p.Preference.MatchFields},
			})
		}
	}
	return pi
}

// controllerUID is the UID of a pod's controller (the owner reference
// with controller: true), "" if it has none.
func controllerUID(pod *corev1.Pod) types.UID {
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		return ref.UID
	}
	return ""
}

// podHostPorts lists the host ports a pod's containers (and sidecars)
// publish, with upstream's defaults: TCP, on every address.
func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	add := func(cs []corev1.Container, sidecarsOnly bool) {
		for i := range cs {
			if sidecarsOnly && (cs[i].RestartPolicy == nil || *cs[i].RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, p := range cs[i].Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := hostPort{proto: p.Protocol, ip: p.HostIP, port: p.HostPort}
				if hp.proto == "" {
					hp.proto = corev1.ProtocolTCP
				}
				if hp.ip == "" {
					hp.ip = "0.0.0.0"
				}
				out = append(out, hp)
			}
		}
	}
	add(pod.Spec.InitContainers, true)
	add(pod.Spec.Containers, false)
	return out
}

// tolerates reports whether toleration t tolerates taint, as upstream's
// Toleration.ToleratesTaint.
func tolerates(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}

// Tolerated reports whether any of tolerations tolerates taint.
func Tolerated(tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tolerations {
		if tolerates(&tolerations[i], taint) {
			return true
		}
	}
	return false
}

// EffectiveTaints returns a node's taints plus the ones upstream's node
// lifecycle controller would have put on it: not-ready (Ready False or
// missing) or unreachable (Ready Unknown), NoSchedule, unless already
// there. So a node that is not Ready takes only pods that tolerate that,
// and the reason users see is upstream's.
func EffectiveTaints(n *corev1.Node) []corev1.Taint {
	key := ""
	ready := corev1.ConditionFalse
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status
		}
	}
	switch ready {
	case corev1.ConditionTrue:
		return n.Spec.Taints
	case corev1.ConditionUnknown:
		key = TaintNodeUnreachable
	default:
		key = TaintNodeNotReady
	}
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == corev1.TaintEffectNoSchedule {
			return n.Spec.Taints
		}
	}
	out := make([]corev1.Taint, 0, len(n.Spec.Taints)+1)
	out = append(out, n.Spec.Taints...)
	return append(out, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
}

// matchTerm reports whether a node selector term matches the node. A
// term with no requirements matches nothing, as upstream.
func matchTerm(t *nodeSelectorTerm, name string, labels map[string]string) bool {
	if len(t.labels) == 0 && len(t.fields) == 0 {
		return false
	}
	for i := range t.labels {
		if !matchRequirement(&t.labels[i], labels) {
			return false
		}
	}
	for i := range t.fields {
		r := &t.fields[i]
		if r.Key != metav1.ObjectNameField {
			return false
		}
		if !matchValue(r, name, true) {
			return false
		}
	}
	return true
}

func matchRequirement(r *corev1.NodeSelectorRequirement, labels map[string]string) bool {
	v, has := labels[r.Key]
	return matchValue(r, v, has)
}

// matchValue evaluates requirement r against the value v (has: whether the
// key is present at all).
func matchValue(r *corev1.NodeSelectorRequirement, v string, has bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		if !has {
			return false
		}
		for _, want := range r.Values {
			if v == want {
				return true
			}
		}
		return false
	case corev1.NodeSelectorOpNotIn:
		if !has {
			return true
		}
		for _, want := range r.Values {
			if v == want {
				return false
			}
		}
		return true
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(r.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}

// matchesNodeAffinity is upstream's NodeAffinity filter: every
// nodeSelector label, and one of the required terms if there are any.
func (pi *podInfo) matchesNodeAffinity(n *nodeInfo) bool {
	for k, v := range pi.nodeSel {
		if have, ok := n.labels[k]; !ok || have != v {
			return false
		}
	}
	if !pi.hasRequired {
		return true
	}
	for i := range pi.required {
		if matchTerm(&pi.required[i], n.name, n.labels) {
			return true
		}
	}
	return false
}

// filter runs upstream's filters in upstream's order on one node. It
// returns no reasons if the pod fits, else the first failing filter's
// reasons and whether evicting pods could change them (upstream's
// Unschedulable, as opposed to UnschedulableAndUnresolvable). scratch is
// space the reasons may use: consume them before the next call.
func (pi *podInfo) filter(n *nodeInfo, scratch []string) (reasons []string, resolvable bool) {
	pod := pi.pod
	if n.unschedulable && !Tolerated(pod.Spec.Tolerations, &unschedulableTaint) {
		return reasonsUnschedulable, false
	}
	for i := range n.taints {
		t := &n.taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !Tolerated(pod.Spec.Tolerations, t) {
			return reasonsTaint, false
		}
	}
	if !pi.matchesNodeAffinity(n) {
		return reasonsAffinity, false
	}
	if n.portsConflict(pi.ports) {
		return reasonsPorts, true
	}
	reasons = scratch[:0]
	if n.podCount+1 > n.allowedPods {
		reasons = append(reasons, ReasonTooManyPods)
	}
	if !pi.req.isZero() {
		free := n.allocatable
		free.sub(n.requested)
		if pi.req.MilliCPU > 0 && pi.req.MilliCPU > free.MilliCPU {
			reasons = append(reasons, ReasonInsufficientCPU)
		}
		if pi.req.Memory > 0 && pi.req.Memory > free.Memory {
			reasons = append(reasons, ReasonInsufficientMem)
		}
		if pi.req.EphemeralStorage > 0 && pi.req.EphemeralStorage > free.EphemeralStorage {
			reasons = append(reasons, ReasonInsufficientEph)
		}
	}
	for _, sr := range pi.scalar {
		if sr.Quantity > n.allocScalar[sr.Name]-n.reqScalar[sr.Name] {
			reasons = append(reasons, "Insufficient "+string(sr.Name))
		}
	}
	if len(reasons) > 0 {
		return reasons, true
	}
	return nil, false
}

var (
	reasonsUnschedulable = []string{ReasonUnschedulable}
	reasonsTaint         = []string{ReasonUntoleratedTaint}
	reasonsAffinity      = []string{ReasonNodeAffinity}
	reasonsPorts         = []string{ReasonHostPorts}
)

var unschedulableTaint = corev1.Taint{Key: TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
