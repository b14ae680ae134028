package deployment

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/davecgh/go-spew/spew"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// Annotations the controller keeps, as upstream (kubectl reads them).
const (
	// RevisionAnnotation is a ReplicaSet's (and its Deployment's) revision.
	RevisionAnnotation = "deployment.kubernetes.io/revision"
	// RevisionHistoryAnnotation lists the earlier revisions a ReplicaSet
	// served (it gets a new revision each time it is rolled back to).
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	// DesiredReplicasAnnotation is the Deployment size a ReplicaSet was last
	// sized for.
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	// MaxReplicasAnnotation is replicas+maxSurge when a ReplicaSet was last
	// sized: the base of proportional scaling.
	MaxReplicasAnnotation = "deployment.kubernetes.io/max-replicas"

	// MaxRevisionHistoryChars bounds the revision-history annotation.
	MaxRevisionHistoryChars = 2000
)

// annotationsNotCopied are the Deployment annotations not copied to its
// new ReplicaSet: upstream's list plus Drover's own bookkeeping (which
// describes the Deployment, not a revision, and must not come back from a
// ReplicaSet on `kubectl rollout undo`).
var annotationsNotCopied = map[string]bool{
	corev1.LastAppliedConfigAnnotation: true,
	RevisionAnnotation:                 true,
	RevisionHistoryAnnotation:          true,
	DesiredReplicasAnnotation:          true,
	MaxReplicasAnnotation:              true,
	appsv1.DeprecatedRollbackTo:        true,
	LastGoodRevisionAnnotation:         true,
	FailedRevisionHashAnnotation:       true,
}

// ComputeHash is upstream's pod-template-hash: FNV-32a over the template
// printed by spew (sorted keys, no methods), then the collision count as
// 8 little-endian bytes if set, rendered with SafeEncodeString.
func ComputeHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	printer := spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}
	printer.Fprintf(h, "%#v", *template)
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// EqualIgnoreHash reports whether two pod templates are equal apart from
// the pod-template-hash label.
func EqualIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return apiequality.Semantic.DeepEqual(a, b)
}

// Split finds d's new ReplicaSet (the oldest whose template equals d's,
// nil if none) and the others, among the ReplicaSets d controls.
func Split(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) (newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) {
	for _, rs := range sortedByAge(rss) {
		if newRS == nil && EqualIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			newRS = rs
			continue
		}
		old = append(old, rs)
	}
	return newRS, old
}

// Revision is obj's revision annotation (0 if absent or unparsable).
func Revision(obj metav1.Object) int64 {
	n, err := strconv.ParseInt(obj.GetAnnotations()[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// MaxRevision is the highest revision among rss.
func MaxRevision(rss []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range rss {
		m = max(m, Revision(rs))
	}
	return m
}

// HasRevision reports whether rs is or was revision rev (its revision or
// its revision history).
func HasRevision(rs *appsv1.ReplicaSet, rev int64) bool {
	if Revision(rs) == rev {
		return true
	}
	want := strconv.FormatInt(rev, 10)
	return slices.Contains(strings.Split(rs.Annotations[RevisionHistoryAnnotation], ","), want)
}

// SyncNewRSAnnotations brings the new ReplicaSet rs's annotations up to
// date in place, as upstream's SetNewReplicaSetAnnotations: d's
// annotations copied (except the bookkeeping ones), the revision raised to
// newRevision if lower (the old one appended to revision-history, bounded
// to MaxRevisionHistoryChars), and, for a ReplicaSet about to be created
// (!exists), the desired- and max-replicas annotations. It reports whether
// anything changed.
func SyncNewRSAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision int64, exists bool) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	changed := false
	for k, v := range d.Annotations {
		if annotationsNotCopied[k] || rs.Annotations[k] == v {
			continue
		}
		rs.Annotations[k] = v
		changed = true
	}
	oldText, had := rs.Annotations[RevisionAnnotation]
	oldRev, err := strconv.ParseInt(oldText, 10, 64)
	if err != nil {
		if oldText != "" {
			return changed // not ours to fix
		}
		oldRev = 0
	}
	if oldRev < newRevision {
		rs.Annotations[RevisionAnnotation] = strconv.FormatInt(newRevision, 10)
		changed = true
		if had {
			rs.Annotations[RevisionHistoryAnnotation] = appendHistory(rs.Annotations[RevisionHistoryAnnotation], oldText)
		}
	}
	if !exists && setReplicasAnnotations(rs, replicas(d), replicas(d)+MaxSurge(d)) {
		changed = true
	}
	return changed
}

// appendHistory appends rev to a comma-separated history, dropping the
// oldest entries to stay within MaxRevisionHistoryChars.
func appendHistory(history, rev string) string {
	if history == "" {
		return rev
	}
	revs := append(strings.Split(history, ","), rev)
	total := len(history) + 1 + len(rev)
	for total > MaxRevisionHistoryChars && len(revs) > 1 {
		total -= len(revs[0]) + 1
		revs = revs[1:]
	}
	return strings.Join(revs, ",")
}

// setReplicasAnnotations records the size rs is made for; it reports
// whether anything changed.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	changed := false
	for k, v := range map[string]string{
		DesiredReplicasAnnotation: strconv.Itoa(int(desired)),
		MaxReplicasAnnotation:     strconv.Itoa(int(maxReplicas)),
	} {
		if rs.Annotations[k] != v {
			rs.Annotations[k] = v
			changed = true
		}
	}
	return changed
}

// ReplicasAnnotationsNeedUpdate reports whether rs's desired- and
// max-replicas annotations differ from d's current size.
func ReplicasAnnotationsNeedUpdate(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	return rs.Annotations[DesiredReplicasAnnotation] != strconv.Itoa(int(replicas(d))) ||
		rs.Annotations[MaxReplicasAnnotation] != strconv.Itoa(int(replicas(d)+MaxSurge(d)))
}

// NewReplicaSet builds the ReplicaSet to create for d's current template:
// named "<deployment>-<hash>", the pod-template-hash label on its labels,
// selector and template, controlled by d, sized by NewRSReplicas given the
// old ReplicaSets, with revision max(old)+1.
func NewReplicaSet(d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	hash := ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels = withLabel(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	sel := d.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	sel.MatchLabels = withLabel(sel.MatchLabels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			Labels:          tmpl.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &zero,
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        sel,
			Template:        tmpl,
		},
	}
	n := NewRSReplicas(d, append(slices.Clip(oldRSs), rs), rs)
	rs.Spec.Replicas = &n
	SyncNewRSAnnotations(d, rs, MaxRevision(oldRSs)+1, false)
	return rs
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out[k] = v
	return out
}

// TemplateHash is the pod-template-hash d's current template gets: the
// new ReplicaSet's label if there is one, else computed.
func TemplateHash(d *appsv1.Deployment, newRS *appsv1.ReplicaSet) string {
	if newRS != nil {
		if h := newRS.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" {
			return h
		}
	}
	return ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
}

// ToDelete returns the old ReplicaSets beyond d's revisionHistoryLimit
// (lowest revisions first) that may be deleted: those empty (size and
// status zero, status observed) among them. Nothing when no limit is set.
func ToDelete(d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var clean []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs.DeletionTimestamp == nil {
			clean = append(clean, rs)
		}
	}
	excess := len(clean) - int(*d.Spec.RevisionHistoryLimit)
	if excess <= 0 {
		return nil
	}
	// Oldest revision first, as upstream (ReplicaSetsByRevision).
	slices.SortStableFunc(clean, func(a, b *appsv1.ReplicaSet) int {
		ra, rb := Revision(a), Revision(b)
		if ra != rb {
			if ra < rb {
				return -1
			}
			return 1
		}
		return olderFirst(a, b)
	})
	var out []*appsv1.ReplicaSet
	for _, rs := range clean[:excess] {
		if rs.Status.Replicas == 0 && size(rs) == 0 && rs.Generation <= rs.Status.ObservedGeneration {
			out = append(out, rs)
		}
	}
	return out
}
