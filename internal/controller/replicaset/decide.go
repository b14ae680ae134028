package replicaset

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Reasons of the ReplicaFailure condition and of events, as upstream.
const (
	ReasonFailedCreate     = "FailedCreate"
	ReasonFailedDelete     = "FailedDelete"
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
)

// IsPodActive reports whether a pod counts towards its ReplicaSet: not
// finished and not being deleted.
func IsPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// IsPodTerminating reports whether a pod is being deleted and has not
// finished (upstream's terminatingReplicas).
func IsPodTerminating(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// AvailableIn says whether a pod is available at now, that is ready for at
// least minReadySeconds, and if it is ready but not yet available, how
// long until it is.
func AvailableIn(p *corev1.Pod, minReadySeconds int32, now time.Time) (available bool, wait time.Duration) {
	c := readyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false, 0
	}
	if minReadySeconds == 0 {
		return true, 0
	}
	if c.LastTransitionTime.IsZero() {
		return false, 0
	}
	at := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second)
	if at.Before(now) {
		return true, 0
	}
	// Available once strictly after at; the extra millisecond gets past it.
	return false, at.Sub(now) + time.Millisecond
}

// Plan is what a ReplicaSet's sync does to its pods.
type Plan struct {
	// Create is how many pods to create (at most the burst).
	Create int
	// Delete lists the pods to delete, cheapest first.
	Delete []*corev1.Pod
}

// Decide compares the ReplicaSet's wanted replicas with its active pods
// and returns how many pods to create, at most burst, or which to delete,
// at most burst, chosen with PodsToDelete. related are the active pods of
// the ReplicaSet and its siblings, for the co-location rank.
func Decide(rs *appsv1.ReplicaSet, active, related []*corev1.Pod, burst int, now metav1.Time) Plan {
	want := int(replicas(rs))
	diff := len(active) - want
	switch {
	case diff < 0:
		return Plan{Create: min(-diff, burst)}
	case diff > 0:
		return Plan{Delete: PodsToDelete(active, related, min(diff, burst), now)}
	}
	return Plan{}
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

// ComputeStatus returns the ReplicaSet's status given its active pods,
// its terminating pods and the error, if any, of this sync's creations
// or deletions; and, when some ready pod is not yet available because of
// minReadySeconds, how long until the first becomes so (0 otherwise).
// observedGeneration is set to the ReplicaSet's generation.
func ComputeStatus(rs *appsv1.ReplicaSet, active, terminating []*corev1.Pod, manageErr error, now metav1.Time) (appsv1.ReplicaSetStatus, time.Duration) {
	return computeStatus(rs, active, terminating, manageErr, now, nil)
}

// computeStatus is ComputeStatus. If selected is not nil, all the active
// pods are known to match it (a sync's claimed pods match the
// ReplicaSet's selector): when it requires all the template's labels,
// every pod is fully labeled without looking at its labels.
func computeStatus(rs *appsv1.ReplicaSet, active, terminating []*corev1.Pod, manageErr error, now metav1.Time, selected *Matcher) (appsv1.ReplicaSetStatus, time.Duration) {
	st := *rs.Status.DeepCopy()
	var labeled, ready, available int32
	var next time.Duration
	if selected != nil && selected.Requires(rs.Spec.Template.Labels) {
		labeled = int32(len(active))
	} else {
		template := NewMatcher(labels.SelectorFromValidatedSet(rs.Spec.Template.Labels))
		for _, p := range active {
			if template.Matches(p.Labels) {
				labeled++
			}
		}
	}
	for _, p := range active {
		if !IsPodReady(p) {
			continue
		}
		ready++
		ok, wait := AvailableIn(p, rs.Spec.MinReadySeconds, now.Time)
		if ok {
			available++
		} else if wait > 0 && (next == 0 || wait < next) {
			next = wait
		}
	}
	failure := condition(st.Conditions, appsv1.ReplicaSetReplicaFailure)
	switch {
	case manageErr != nil && failure == nil:
		reason := ""
		if diff := len(active) - int(replicas(rs)); diff < 0 {
			reason = ReasonFailedCreate
		} else if diff > 0 {
			reason = ReasonFailedDelete
		}
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
			Reason: reason, Message: manageErr.Error(), LastTransitionTime: now,
		})
	case manageErr == nil && failure != nil:
		st.Conditions = removeCondition(st.Conditions, appsv1.ReplicaSetReplicaFailure)
	}
	st.Replicas = int32(len(active))
	st.FullyLabeledReplicas = labeled
	st.ReadyReplicas = ready
	st.AvailableReplicas = available
	n := int32(len(terminating))
	st.TerminatingReplicas = &n
	st.ObservedGeneration = rs.Generation
	return st, next
}

// StatusChanged reports whether status differs from what the ReplicaSet
// has, so an update is needed.
func StatusChanged(rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) bool {
	return !apiequality.Semantic.DeepEqual(rs.Status, status)
}

func condition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) *appsv1.ReplicaSetCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func removeCondition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) []appsv1.ReplicaSetCondition {
	var out []appsv1.ReplicaSetCondition
	for _, c := range conds {
		if c.Type != t {
			out = append(out, c)
		}
	}
	return out
}

// NewPod is the pod the ReplicaSet creates from its template: the
// template's labels, annotations, finalizers and spec, a generated name
// "<rs-name>-", and a controller owner reference to the ReplicaSet.
func NewPod(rs *appsv1.ReplicaSet) (*corev1.Pod, error) {
	t := rs.Spec.Template.DeepCopy()
	if len(t.Labels) == 0 {
		return nil, fmt.Errorf("unable to create pods, no labels")
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    rs.Name + "-",
			Namespace:       rs.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*ControllerRef(rs)},
		},
		Spec: t.Spec,
	}, nil
}

// ControllerRef is the owner reference a ReplicaSet puts on its pods:
// controller and blocking its owner's foreground deletion.
func ControllerRef(rs *appsv1.ReplicaSet) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{
		APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "ReplicaSet",
		Name: rs.Name, UID: rs.UID, Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

// Claim is what a ReplicaSet does about a pod in its namespace.
type Claim int

const (
	// Ignore: not the ReplicaSet's business (another controller's, or an
	// orphan it does not select or may not adopt).
	Ignore Claim = iota
	// Keep: the ReplicaSet's and selected.
	Keep
	// Adopt: an orphan the ReplicaSet selects; it becomes its controller.
	Adopt
	// Release: the ReplicaSet's but no longer selected; drop the reference.
	Release
)

func (c Claim) String() string {
	return [...]string{"Ignore", "Keep", "Adopt", "Release"}[c]
}

// ClaimPod decides, as upstream's controller reference manager, whether
// the ReplicaSet keeps, adopts, releases or ignores a pod. A ReplicaSet
// being deleted neither adopts nor releases.
func ClaimPod(rs *appsv1.ReplicaSet, selector labels.Selector, p *corev1.Pod) Claim {
	return claimPod(rs, NewMatcher(selector), p)
}

// claimPod is ClaimPod with the selector compiled; it matches the pod's
// labels only if the answer depends on them.
func claimPod(rs *appsv1.ReplicaSet, selector Matcher, p *corev1.Pod) Claim {
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		switch {
		case ref.UID != rs.UID:
			return Ignore
		case selector.Matches(p.Labels):
			return Keep
		case rs.DeletionTimestamp != nil:
			return Ignore
		}
		return Release
	}
	if rs.DeletionTimestamp != nil || p.DeletionTimestamp != nil || p.Namespace != rs.Namespace || !selector.Matches(p.Labels) {
		return Ignore
	}
	return Adopt
}

// AdoptPatch is the strategic merge patch that makes the ReplicaSet the
// pod's controller (ownerReferences merge by uid).
func AdoptPatch(rs *appsv1.ReplicaSet, p *corev1.Pod) []byte {
	ref := ControllerRef(rs)
	return fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"apiVersion":%q,"kind":%q,"name":%q,"uid":%q,"controller":true,"blockOwnerDeletion":true}],"uid":%q}}`,
		ref.APIVersion, ref.Kind, ref.Name, ref.UID, p.UID)
}

// ReleasePatch is the strategic merge patch that removes the ReplicaSet's
// reference from the pod.
func ReleasePatch(rs *appsv1.ReplicaSet, p *corev1.Pod) []byte {
	return fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, rs.UID, p.UID)
}

// SlowStart runs fn count times in batches of 1, 2, 4, ... (each batch
// concurrently), stopping after the first batch with a failure, so a
// systematic error (quota, validation) costs a few calls, not count. It
// returns how many calls succeeded and the first error.
func SlowStart(count, initial int, fn func() error) (int, error) {
	done := 0
	for batch := min(count, initial); batch > 0; batch = min(2*batch, count-done) {
		errs := make(chan error, batch)
		for range batch {
			go func() { errs <- fn() }()
		}
		var first error
		ok := 0
		for range batch {
			if err := <-errs; err != nil {
				if first == nil {
					first = err
				}
			} else {
				ok++
			}
		}
		done += ok
		if first != nil {
			return done, first
		}
	}
	return done, nil
}
