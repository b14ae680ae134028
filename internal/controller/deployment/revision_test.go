package deployment

import (
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestComputeHash(t *testing.T) {
	d := dep(3, "1", "1").obj()
	h := ComputeHash(&d.Spec.Template, nil)
	if h != ComputeHash(d.Spec.Template.DeepCopy(), nil) {
		t.Fatal("hash is not deterministic")
	}
	if errs := validation.IsValidLabelValue(h); len(errs) > 0 || h == "" {
		t.Fatalf("hash %q is not a label value: %v", h, errs)
	}
	for _, c := range h {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", c) {
			t.Fatalf("hash %q has %q outside SafeEncodeString's alphabet", h, c)
		}
	}
	seen := map[string]bool{h: true}
	for _, other := range []string{
		ComputeHash(&d.Spec.Template, ptr(int32(0))),
		ComputeHash(&d.Spec.Template, ptr(int32(1))),
		ComputeHash(&dep(3, "1", "1").image("img:2").obj().Spec.Template, nil),
	} {
		if seen[other] {
			t.Fatalf("hash %q repeats", other)
		}
		seen[other] = true
	}
	// Map order does not matter (spew sorts keys).
	a := d.Spec.Template.DeepCopy()
	a.Annotations = map[string]string{"x": "1", "y": "2", "z": "3"}
	b := d.Spec.Template.DeepCopy()
	b.Annotations = map[string]string{"z": "3", "y": "2", "x": "1"}
	if ComputeHash(a, nil) != ComputeHash(b, nil) {
		t.Fatal("hash depends on map order")
	}
}

func TestSplitAndEqualIgnoreHash(t *testing.T) {
	d := dep(3, "1", "1").image("v2").obj()
	v1 := rs("v1", 1, 3, 3).obj()
	v2a := rs("v2a", 2, 0, 0).obj()
	v2a.Spec.Template = *d.Spec.Template.DeepCopy()
	v2a.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "aaa"
	v2b := v2a.DeepCopy()
	v2b.Name = "v2b"
	v2b.CreationTimestamp = metav1.NewTime(epoch.Add(5e9))
	newRS, old := Split(d, []*appsv1.ReplicaSet{v2b, v1, v2a})
	if newRS != v2a {
		t.Fatalf("want the oldest matching RS as new, got %v", newRS)
	}
	if len(old) != 2 || old[0] != v1 || old[1] != v2b {
		t.Fatalf("old: %v", old)
	}
	if newRS, _ := Split(dep(3, "1", "1").image("v3").obj(), []*appsv1.ReplicaSet{v1, v2a}); newRS != nil {
		t.Fatal("no RS has this template")
	}
}

func TestSyncNewRSAnnotations(t *testing.T) {
	d := dep(4, "25%", "25%").ann("kubernetes.io/change-cause", "v2").
		ann(RevisionAnnotation, "7").ann(LastGoodRevisionAnnotation, "1").ann(FailedRevisionHashAnnotation, "x").obj()

	// Creating: revision, copied annotations, replicas annotations.
	r := rs("new", 1, 0, 0).obj()
	if !SyncNewRSAnnotations(d, r, 3, false) {
		t.Fatal("want changed")
	}
	want := map[string]string{
		RevisionAnnotation: "3", "kubernetes.io/change-cause": "v2",
		DesiredReplicasAnnotation: "4", MaxReplicasAnnotation: "5",
	}
	for k, v := range want {
		if r.Annotations[k] != v {
			t.Errorf("%s = %q, want %q", k, r.Annotations[k], v)
		}
	}
	for _, k := range []string{LastGoodRevisionAnnotation, FailedRevisionHashAnnotation, RevisionHistoryAnnotation} {
		if _, ok := r.Annotations[k]; ok {
			t.Errorf("%s copied", k)
		}
	}
	if SyncNewRSAnnotations(d, r, 3, true) {
		t.Fatal("second sync changed something")
	}
	// Rolled back to: new revision, old one in history.
	if !SyncNewRSAnnotations(d, r, 5, true) || r.Annotations[RevisionAnnotation] != "5" || r.Annotations[RevisionHistoryAnnotation] != "3" {
		t.Fatalf("rollback: %v", r.Annotations)
	}
	SyncNewRSAnnotations(d, r, 8, true)
	if r.Annotations[RevisionHistoryAnnotation] != "3,5" {
		t.Fatalf("history %q", r.Annotations[RevisionHistoryAnnotation])
	}
	// Never lowered.
	if SyncNewRSAnnotations(d, r, 2, true) || r.Annotations[RevisionAnnotation] != "8" {
		t.Fatal("revision lowered")
	}
	if !HasRevision(r, 3) || !HasRevision(r, 8) || HasRevision(r, 4) {
		t.Fatal("HasRevision")
	}
}

func TestRevisionHistoryIsBounded(t *testing.T) {
	var revs []string
	for i := 1; i <= 600; i++ {
		revs = append(revs, strconv.Itoa(i))
	}
	h := strings.Join(revs, ",")
	out := appendHistory(h, "601")
	if len(out) > MaxRevisionHistoryChars || !strings.HasSuffix(out, ",600,601") {
		t.Fatalf("len %d, tail %q", len(out), out[len(out)-12:])
	}
}

func TestNewReplicaSet(t *testing.T) {
	d := dep(10, "1", "1").obj()
	d.Spec.MinReadySeconds = 5
	old := rsList(rs("old", 1, 10, 10).rev(4))
	r := NewReplicaSet(d, old)
	hash := ComputeHash(&d.Spec.Template, nil)
	if r.Name != "web-"+hash {
		t.Fatalf("name %s", r.Name)
	}
	for what, m := range map[string]map[string]string{"labels": r.Labels, "selector": r.Spec.Selector.MatchLabels, "template": r.Spec.Template.Labels} {
		if m[appsv1.DefaultDeploymentUniqueLabelKey] != hash || m["app"] != "web" {
			t.Errorf("%s: %v", what, m)
		}
	}
	if d.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != "" || d.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != "" {
		t.Fatal("deployment mutated")
	}
	if ref := metav1.GetControllerOf(r); ref == nil || ref.UID != d.UID || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
		t.Fatalf("controller ref %v", ref)
	}
	if size(r) != 1 || r.Spec.MinReadySeconds != 5 || Revision(r) != 5 {
		t.Fatalf("size %d minReady %d revision %d", size(r), r.Spec.MinReadySeconds, Revision(r))
	}
	d.Status.CollisionCount = ptr(int32(1))
	if NewReplicaSet(d, old).Name == r.Name {
		t.Fatal("collision count does not change the name")
	}
}

func TestToDelete(t *testing.T) {
	d := dep(3, "1", "1").obj()
	d.Spec.RevisionHistoryLimit = ptr(int32(2))
	mk := func(name string, rev int, sz int32) *appsv1.ReplicaSet { return rs(name, rev, sz, sz).rev(rev).obj() }
	old := []*appsv1.ReplicaSet{mk("r4", 4, 0), mk("r1", 1, 0), mk("r3", 3, 0), mk("r2", 2, 1)}
	got := ToDelete(d, old)
	// 4 alive, limit 2: the two lowest revisions are candidates; r2 still has a pod.
	if len(got) != 1 || got[0].Name != "r1" {
		t.Fatalf("got %v", names(got))
	}
	d.Spec.RevisionHistoryLimit = ptr(int32(0))
	if got := ToDelete(d, old); len(got) != 3 {
		t.Fatalf("limit 0: got %v", names(got))
	}
	d.Spec.RevisionHistoryLimit = nil
	if got := ToDelete(d, old); got != nil {
		t.Fatalf("no limit: got %v", names(got))
	}
}

func names(rss []*appsv1.ReplicaSet) []string {
	var out []string
	for _, r := range rss {
		out = append(out, r.Name)
	}
	return out
}

func TestClaim(t *testing.T) {
	d := dep(3, "1", "1").obj()
	ctrl := *metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))
	other := ctrl
	other.UID = "other"
	mine := rs("mine", 1, 1, 1).obj()
	mine.OwnerReferences = []metav1.OwnerReference{ctrl}
	orphan := rs("orphan", 1, 1, 1).obj()
	theirs := rs("theirs", 1, 1, 1).obj()
	theirs.OwnerReferences = []metav1.OwnerReference{other}
	strayed := rs("strayed", 1, 1, 1).obj()
	strayed.OwnerReferences = []metav1.OwnerReference{ctrl}
	strayed.Labels = map[string]string{"app": "db"}
	unrelated := rs("unrelated", 1, 1, 1).obj()
	unrelated.Labels = map[string]string{"app": "db"}
	elsewhere := rs("elsewhere", 1, 1, 1).obj()
	elsewhere.Namespace = "other"

	c, err := Claim(d, []*appsv1.ReplicaSet{mine, orphan, theirs, strayed, unrelated, elsewhere})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(c.Owned); len(got) != 1 || got[0] != "mine" {
		t.Fatalf("owned %v", got)
	}
	if got := names(c.Adopt); len(got) != 1 || got[0] != "orphan" {
		t.Fatalf("adopt %v", got)
	}
	if got := names(c.Release); len(got) != 1 || got[0] != "strayed" {
		t.Fatalf("release %v", got)
	}
	if a := Adopted(d, orphan); metav1.GetControllerOf(a).UID != d.UID || len(orphan.OwnerReferences) != 0 {
		t.Fatal("Adopted")
	}
	if r := Released(d, strayed); len(r.OwnerReferences) != 0 || len(strayed.OwnerReferences) != 1 {
		t.Fatal("Released")
	}

	d.DeletionTimestamp = ptr(metav1.Now())
	c, _ = Claim(d, []*appsv1.ReplicaSet{mine, orphan, strayed})
	if len(c.Adopt) != 0 || len(c.Release) != 0 || len(c.Owned) != 2 {
		t.Fatalf("deleting: %+v", c)
	}
	if _, err := Claim(&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bad"}}}}}, nil); err == nil {
		t.Fatal("want a selector error")
	}
}

func TestOldPodsRunning(t *testing.T) {
	pod := func(phase corev1.PodPhase) *corev1.Pod { return &corev1.Pod{Status: corev1.PodStatus{Phase: phase}} }
	old := rsList(rs("old", 1, 0, 0))
	old[0].Status.Replicas = 0
	if OldPodsRunning("new", old, map[string][]*corev1.Pod{"new": {pod(corev1.PodRunning)}, "old": {pod(corev1.PodSucceeded), pod(corev1.PodFailed)}}) {
		t.Fatal("only new and finished pods")
	}
	if !OldPodsRunning("new", old, map[string][]*corev1.Pod{"old": {pod(corev1.PodPending)}}) {
		t.Fatal("a pending old pod runs")
	}
	old[0].Status.Replicas = 1
	if !OldPodsRunning("new", old, nil) {
		t.Fatal("status replicas count")
	}
}
