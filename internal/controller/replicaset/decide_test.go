package replicaset

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// podBuilder makes test pods: pod("a").on("n1").running().ready(t).obj().
type podBuilder struct{ p *corev1.Pod }

func pod(name string) *podBuilder {
	return &podBuilder{p: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
		Labels:            map[string]string{"app": "web"},
		CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour)),
	}, Status: corev1.PodStatus{Phase: corev1.PodPending}}}
}

func (b *podBuilder) on(node string) *podBuilder { b.p.Spec.NodeName = node; return b }
func (b *podBuilder) running() *podBuilder       { b.p.Status.Phase = corev1.PodRunning; return b }
func (b *podBuilder) phase(p corev1.PodPhase) *podBuilder {
	b.p.Status.Phase = p
	return b
}
func (b *podBuilder) created(ago time.Duration) *podBuilder {
	b.p.CreationTimestamp = metav1.NewTime(t0.Add(-ago))
	return b
}
func (b *podBuilder) ready(ago time.Duration) *podBuilder {
	b.p.Status.Conditions = append(b.p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-ago)),
	})
	return b
}
func (b *podBuilder) restarts(n int32) *podBuilder {
	b.p.Status.ContainerStatuses = append(b.p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "c", RestartCount: n})
	return b
}
func (b *podBuilder) cost(c string) *podBuilder {
	b.p.Annotations = map[string]string{PodDeletionCostAnnotation: c}
	return b
}
func (b *podBuilder) labels(l map[string]string) *podBuilder { b.p.Labels = l; return b }
func (b *podBuilder) ownedBy(uid types.UID) *podBuilder {
	yes := true
	b.p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: uid, Controller: &yes}}
	return b
}
func (b *podBuilder) deleting() *podBuilder {
	ts := metav1.NewTime(t0)
	b.p.DeletionTimestamp = &ts
	return b
}
func (b *podBuilder) obj() *corev1.Pod { return b.p }

func replicaSet(n int32, minReady int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "ns", UID: "rs-uid", Generation: 3},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &n,
			MinReadySeconds: minReady,
			Selector:        &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
			},
		},
	}
}

func names(pods []*corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}

func TestPodsToDeleteOrder(t *testing.T) {
	now := metav1.NewTime(t0)
	tests := []struct {
		name    string
		pods    []*corev1.Pod
		related []*corev1.Pod // nil: the pods themselves
		want    []string      // full order, cheapest first
	}{
		{"unassigned before assigned", []*corev1.Pod{
			pod("assigned").on("n1").obj(), pod("unassigned").obj(),
		}, nil, []string{"unassigned", "assigned"}},
		{"pending before unknown before running", []*corev1.Pod{
			pod("running").on("n1").running().obj(), pod("unknown").on("n1").phase(corev1.PodUnknown).obj(), pod("pending").on("n1").obj(),
		}, nil, []string{"pending", "unknown", "running"}},
		{"not ready before ready", []*corev1.Pod{
			pod("ready").on("n1").running().ready(time.Hour).obj(), pod("unready").on("n1").running().obj(),
		}, nil, []string{"unready", "ready"}},
		{"lower deletion cost first", []*corev1.Pod{
			pod("expensive").on("n1").running().ready(time.Hour).cost("100").obj(),
			pod("cheap").on("n2").running().ready(time.Hour).cost("-5").obj(),
			pod("default").on("n3").running().ready(time.Hour).obj(),
		}, nil, []string{"cheap", "default", "expensive"}},
		{"doubled up before alone", []*corev1.Pod{
			pod("alone").on("n1").running().ready(time.Hour).obj(),
			pod("shared").on("n2").running().ready(time.Hour).obj(),
		}, []*corev1.Pod{
			pod("alone").on("n1").obj(), pod("shared").on("n2").obj(), pod("sibling").on("n2").obj(),
			pod("gone-sibling").on("n1").deleting().obj(), // not active: does not count
		}, []string{"shared", "alone"}},
		{"ready more recently first, by log buckets", []*corev1.Pod{
			pod("old").on("n1").running().ready(10 * time.Hour).obj(),
			pod("new").on("n2").running().ready(time.Minute).obj(),
		}, []*corev1.Pod{}, []string{"new", "old"}},
		{"more restarts first", []*corev1.Pod{
			pod("calm").on("n1").running().ready(time.Hour).restarts(0).obj(),
			pod("crashy").on("n2").running().ready(time.Hour).restarts(4).obj(),
		}, []*corev1.Pod{}, []string{"crashy", "calm"}},
		{"newer created first", []*corev1.Pod{
			pod("old").on("n1").running().created(48 * time.Hour).obj(),
			pod("new").on("n2").running().created(time.Minute).obj(),
		}, []*corev1.Pod{}, []string{"new", "old"}},
		{"same age bucket: by uid", []*corev1.Pod{
			pod("b").on("n1").running().created(61 * time.Minute).obj(),
			pod("a").on("n2").running().created(62 * time.Minute).obj(),
		}, []*corev1.Pod{}, []string{"a", "b"}},
		{"phase outranks readiness age and restarts", []*corev1.Pod{
			pod("running-crashy").on("n1").running().restarts(9).obj(),
			pod("pending-old").on("n1").created(72 * time.Hour).obj(),
		}, nil, []string{"pending-old", "running-crashy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			related := tt.related
			if related == nil {
				related = tt.pods
			}
			for n := 1; n <= len(tt.pods); n++ {
				got := names(PodsToDelete(tt.pods, related, n, now))
				if !slices.Equal(got, tt.want[:n]) && n < len(tt.pods) {
					t.Errorf("PodsToDelete(%d) = %v, want %v", n, got, tt.want[:n])
				}
			}
		})
	}
}

func TestPodsToDeleteDoesNotReorderInput(t *testing.T) {
	pods := []*corev1.Pod{pod("a").on("n1").running().obj(), pod("b").obj()}
	PodsToDelete(pods, pods, 1, metav1.NewTime(t0))
	if names(pods)[0] != "a" {
		t.Errorf("input reordered: %v", names(pods))
	}
}

func TestDecide(t *testing.T) {
	now := metav1.NewTime(t0)
	three := []*corev1.Pod{
		pod("ready").on("n1").running().ready(time.Hour).obj(),
		pod("unscheduled").obj(),
		pod("unready").on("n2").running().obj(),
	}
	tests := []struct {
		name       string
		replicas   int32
		pods       []*corev1.Pod
		burst      int
		wantCreate int
		wantDelete []string
	}{
		{"create the gap", 5, three, 500, 2, nil},
		{"creation capped by burst", 1000, nil, 500, 500, nil},
		{"in balance", 3, three, 500, 0, nil},
		{"delete cheapest first", 1, three, 500, 0, []string{"unscheduled", "unready"}},
		{"deletion capped by burst", 0, three, 1, 0, []string{"unscheduled"}},
		{"scale to zero", 0, three, 500, 0, []string{"ready", "unscheduled", "unready"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(replicaSet(tt.replicas, 0), tt.pods, tt.pods, tt.burst, now)
			if got.Create != tt.wantCreate {
				t.Errorf("Create = %d, want %d", got.Create, tt.wantCreate)
			}
			gotDel := names(got.Delete)
			slices.Sort(gotDel)
			want := slices.Clone(tt.wantDelete)
			slices.Sort(want)
			if !slices.Equal(gotDel, want) {
				t.Errorf("Delete = %v, want %v", gotDel, want)
			}
		})
	}
}

func TestComputeStatus(t *testing.T) {
	now := metav1.NewTime(t0)
	full := map[string]string{"app": "web", "tier": "front"}
	active := []*corev1.Pod{
		pod("available").labels(full).on("n1").running().ready(time.Minute).obj(),
		pod("ready-recently").labels(full).on("n1").running().ready(5 * time.Second).obj(),
		pod("unready").on("n2").running().obj(), // selector labels only
	}
	terminating := []*corev1.Pod{pod("going").deleting().obj()}

	st, next := ComputeStatus(replicaSet(3, 30), active, terminating, nil, now)
	if st.Replicas != 3 || st.FullyLabeledReplicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 {
		t.Errorf("counts = %d/%d/%d/%d, want replicas 3, fullyLabeled 2, ready 2, available 1",
			st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas)
	}
	if st.TerminatingReplicas == nil || *st.TerminatingReplicas != 1 {
		t.Errorf("terminatingReplicas = %v, want 1", st.TerminatingReplicas)
	}
	if st.ObservedGeneration != 3 {
		t.Errorf("observedGeneration = %d, want 3", st.ObservedGeneration)
	}
	if want := 25*time.Second + time.Millisecond; next != want {
		t.Errorf("next check in %v, want %v (when ready-recently passes minReadySeconds)", next, want)
	}

	st, next = ComputeStatus(replicaSet(3, 0), active, nil, nil, now)
	if st.AvailableReplicas != 2 || next != 0 {
		t.Errorf("minReadySeconds 0: available %d next %v, want 2 and 0", st.AvailableReplicas, next)
	}
}

func TestComputeStatusReplicaFailure(t *testing.T) {
	now := metav1.NewTime(t0)
	rs := replicaSet(3, 0)
	one := []*corev1.Pod{pod("a").obj()}

	st, _ := ComputeStatus(rs, one, nil, errors.New("pods \"x\" is forbidden: exceeded quota"), now)
	if len(st.Conditions) != 1 {
		t.Fatalf("conditions = %+v, want one ReplicaFailure", st.Conditions)
	}
	c := st.Conditions[0]
	if c.Type != appsv1.ReplicaSetReplicaFailure || c.Status != corev1.ConditionTrue || c.Reason != "FailedCreate" || c.Message != `pods "x" is forbidden: exceeded quota` {
		t.Errorf("condition = %+v", c)
	}

	rs.Status = st
	later := metav1.NewTime(t0.Add(time.Minute))
	st2, _ := ComputeStatus(rs, one, nil, errors.New("another error"), later)
	if len(st2.Conditions) != 1 || !st2.Conditions[0].LastTransitionTime.Equal(&now) {
		t.Errorf("an existing failure condition must be kept as is: %+v", st2.Conditions)
	}

	st3, _ := ComputeStatus(rs, one, nil, nil, later)
	if len(st3.Conditions) != 0 {
		t.Errorf("success must clear the failure condition: %+v", st3.Conditions)
	}

	rs = replicaSet(0, 0)
	st4, _ := ComputeStatus(rs, one, nil, errors.New("boom"), now)
	if st4.Conditions[0].Reason != "FailedDelete" {
		t.Errorf("too many pods: reason %q, want FailedDelete", st4.Conditions[0].Reason)
	}
}

func TestStatusChanged(t *testing.T) {
	rs := replicaSet(1, 0)
	st, _ := ComputeStatus(rs, nil, nil, nil, metav1.NewTime(t0))
	if !StatusChanged(rs, st) {
		t.Error("a new observedGeneration is a change")
	}
	rs.Status = st
	st2, _ := ComputeStatus(rs, nil, nil, nil, metav1.NewTime(t0.Add(time.Hour)))
	if StatusChanged(rs, st2) {
		t.Errorf("same counts at another time must not be a change: %+v vs %+v", rs.Status, st2)
	}
}

func TestNewPod(t *testing.T) {
	rs := replicaSet(1, 0)
	rs.Spec.Template.Annotations = map[string]string{"a": "b"}
	p, err := NewPod(rs)
	if err != nil {
		t.Fatal(err)
	}
	if p.GenerateName != "rs-" || p.Name != "" || p.Namespace != "ns" {
		t.Errorf("name = %q/%q/%q", p.Namespace, p.Name, p.GenerateName)
	}
	if p.Labels["tier"] != "front" || p.Annotations["a"] != "b" || p.Spec.Containers[0].Image != "img" {
		t.Errorf("template not copied: %+v", p)
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.UID != "rs-uid" || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" ||
		ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("controller ref = %+v", ref)
	}
	p.Labels["tier"] = "changed"
	if rs.Spec.Template.Labels["tier"] != "front" {
		t.Error("the pod shares maps with the template")
	}
	rs.Spec.Template.Labels = nil
	if _, err := NewPod(rs); err == nil {
		t.Error("a template without labels must be refused")
	}
}

func TestClaimPod(t *testing.T) {
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	deleting := replicaSet(1, 0)
	ts := metav1.NewTime(t0)
	deleting.DeletionTimestamp = &ts
	other := map[string]string{"app": "other"}
	tests := []struct {
		name string
		rs   *appsv1.ReplicaSet
		pod  *corev1.Pod
		want Claim
	}{
		{"ours and selected", replicaSet(1, 0), pod("a").ownedBy("rs-uid").obj(), Keep},
		{"ours, labels changed", replicaSet(1, 0), pod("a").ownedBy("rs-uid").labels(other).obj(), Release},
		{"ours, labels changed, rs deleting", deleting, pod("a").ownedBy("rs-uid").labels(other).obj(), Ignore},
		{"another controller's", replicaSet(1, 0), pod("a").ownedBy("x").obj(), Ignore},
		{"orphan selected", replicaSet(1, 0), pod("a").obj(), Adopt},
		{"orphan not selected", replicaSet(1, 0), pod("a").labels(other).obj(), Ignore},
		{"orphan being deleted", replicaSet(1, 0), pod("a").deleting().obj(), Ignore},
		{"orphan, rs deleting", deleting, pod("a").obj(), Ignore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClaimPod(tt.rs, sel, tt.pod); got != tt.want {
				t.Errorf("ClaimPod = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPatches(t *testing.T) {
	rs, p := replicaSet(1, 0), pod("a").obj()
	if got, want := string(AdoptPatch(rs, p)), `{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"rs-uid","controller":true,"blockOwnerDeletion":true}],"uid":"uid-a"}}`; got != want {
		t.Errorf("AdoptPatch = %s\nwant %s", got, want)
	}
	if got, want := string(ReleasePatch(rs, p)), `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"rs-uid"}],"uid":"uid-a"}}`; got != want {
		t.Errorf("ReleasePatch = %s\nwant %s", got, want)
	}
}

func TestSlowStart(t *testing.T) {
	tests := []struct {
		count, failAt     int // failAt: the call (1-based) that fails; 0 none
		wantOK, wantCalls int
	}{
		{count: 0, wantOK: 0, wantCalls: 0},
		{count: 1, wantOK: 1, wantCalls: 1},
		{count: 10, wantOK: 10, wantCalls: 10}, // 1 2 4 3
		{count: 10, failAt: 1, wantOK: 0, wantCalls: 1},
		{count: 10, failAt: 2, wantOK: 2, wantCalls: 3},  // batches 1, 2(one fails)
		{count: 100, failAt: 5, wantOK: 6, wantCalls: 7}, // batches 1, 2, 4(one fails)
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-fail%d", tt.count, tt.failAt), func(t *testing.T) {
			var calls atomic.Int32
			ok, err := SlowStart(tt.count, 1, func() error {
				if n := calls.Add(1); int(n) == tt.failAt {
					return errors.New("quota")
				}
				return nil
			})
			if ok != tt.wantOK || int(calls.Load()) != tt.wantCalls {
				t.Errorf("ok %d calls %d, want %d and %d", ok, calls.Load(), tt.wantOK, tt.wantCalls)
			}
			if (err != nil) != (tt.failAt > 0) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestExpectations(t *testing.T) {
	now := t0
	e := NewExpectations(func() time.Time { return now })
	if !e.Satisfied("ns/rs") {
		t.Fatal("no record must be satisfied")
	}
	e.ExpectCreations("ns/rs", 2)
	if e.Satisfied("ns/rs") {
		t.Fatal("pending creations must not be satisfied")
	}
	e.CreationObserved("ns/rs")
	if e.Satisfied("ns/rs") {
		t.Fatal("one creation still pending")
	}
	e.CreationObserved("ns/rs")
	e.CreationObserved("ns/rs") // extra observations must not go negative in a harmful way
	if !e.Satisfied("ns/rs") {
		t.Fatal("all creations observed")
	}

	e.ExpectDeletions("ns/rs", []string{"ns/a", "ns/b"})
	e.DeletionObserved("ns/rs", "ns/a")
	e.DeletionObserved("ns/rs", "ns/a") // seen twice (deletionTimestamp, then gone): counts once
	if e.Satisfied("ns/rs") {
		t.Fatal("ns/b still pending")
	}
	e.DeletionObserved("ns/rs", "ns/b")
	if !e.Satisfied("ns/rs") {
		t.Fatal("all deletions observed")
	}

	e.ExpectCreations("ns/rs", 1)
	now = now.Add(ExpectationsTimeout + time.Second)
	if !e.Satisfied("ns/rs") {
		t.Fatal("expired expectations must be satisfied")
	}
	e.ExpectCreations("ns/other", 1)
	e.Delete("ns/other")
	if !e.Satisfied("ns/other") {
		t.Fatal("deleted expectations must be satisfied")
	}
}

func TestAvailableIn(t *testing.T) {
	p := pod("a").running().ready(10 * time.Second).obj()
	if ok, _ := AvailableIn(p, 0, t0); !ok {
		t.Error("ready with minReadySeconds 0 is available")
	}
	if ok, wait := AvailableIn(p, 30, t0); ok || wait != 20*time.Second+time.Millisecond {
		t.Errorf("AvailableIn(30) = %v %v, want false 20.001s", ok, wait)
	}
	if ok, _ := AvailableIn(p, 5, t0); !ok {
		t.Error("ready for 10s with minReadySeconds 5 is available")
	}
	if ok, wait := AvailableIn(pod("b").running().obj(), 5, t0); ok || wait != 0 {
		t.Error("an unready pod is not available and has nothing to wait for")
	}
}
