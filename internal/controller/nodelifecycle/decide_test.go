package nodelifecycle

import (
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func node(name string, conds ...corev1.NodeCondition) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0)},
		Status: corev1.NodeStatus{Conditions: conds}}
}

func cond(t corev1.NodeConditionType, s corev1.ConditionStatus, heartbeat time.Time) corev1.NodeCondition {
	return corev1.NodeCondition{Type: t, Status: s, Reason: "KubeletReady", LastHeartbeatTime: metav1.NewTime(heartbeat), LastTransitionTime: metav1.NewTime(t0)}
}

func lease(renew time.Time) *coordinationv1.Lease {
	r := metav1.NewMicroTime(renew)
	return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: &r}}
}

// TestLiveness plays agents against the fake clock: at each step the node
// and its lease are observed, then silence is judged.
func TestLiveness(t *testing.T) {
	const grace, startup = 8 * time.Second, 30 * time.Second
	type step struct {
		now        time.Duration
		renew      time.Duration // lease renewTime; <0: no lease
		heartbeat  time.Duration // Ready heartbeat; <0: no Ready condition
		wantSilent bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"first sight gives a full grace even with an old lease", []step{
			{now: 100 * time.Second, renew: 0, heartbeat: 0},
			{now: 107 * time.Second, renew: 0, heartbeat: 0},
			{now: 108*time.Second + 1, renew: 0, heartbeat: 0, wantSilent: true},
		}},
		{"lease renewals keep a node alive without status updates", []step{
			{now: 0, renew: 0, heartbeat: 0},
			{now: 6 * time.Second, renew: 6 * time.Second, heartbeat: 0},
			{now: 13 * time.Second, renew: 13 * time.Second, heartbeat: 0},
			{now: 21 * time.Second, renew: 13 * time.Second, heartbeat: 0},
			{now: 21*time.Second + 1, renew: 13 * time.Second, heartbeat: 0, wantSilent: true},
		}},
		{"slow renewals just below the grace never alarm", []step{
			{now: 0, renew: 0, heartbeat: 0},
			{now: 7900 * time.Millisecond, renew: 7900 * time.Millisecond, heartbeat: 0},
			{now: 15800 * time.Millisecond, renew: 15800 * time.Millisecond, heartbeat: 0},
			{now: 23700 * time.Millisecond, renew: 23700 * time.Millisecond, heartbeat: 0},
		}},
		{"a Ready heartbeat counts too", []step{
			{now: 0, renew: -1, heartbeat: 0},
			{now: 7 * time.Second, renew: -1, heartbeat: 7 * time.Second},
			{now: 14 * time.Second, renew: -1, heartbeat: 7 * time.Second},
			{now: 16 * time.Second, renew: -1, heartbeat: 7 * time.Second, wantSilent: true},
		}},
		{"an agent's clock does not matter, only change", []step{
			{now: 0, renew: -time.Hour + 1, heartbeat: 0},
			{now: 5 * time.Second, renew: -time.Hour + 2, heartbeat: 0},
			{now: 12 * time.Second, renew: -time.Hour + 2, heartbeat: 0},
			{now: 13*time.Second + 1, renew: -time.Hour + 2, heartbeat: 0, wantSilent: true},
		}},
		{"a node that never posted Ready gets the startup grace", []step{
			{now: 0, renew: -1, heartbeat: -1},
			{now: 29 * time.Second, renew: -1, heartbeat: -1},
			{now: 31 * time.Second, renew: -1, heartbeat: -1, wantSilent: true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Probe
			for i, s := range c.steps {
				n := node("n")
				if s.heartbeat >= 0 {
					n = node("n", cond(corev1.NodeReady, corev1.ConditionTrue, at(s.heartbeat)))
				}
				var l *coordinationv1.Lease
				if s.renew != -1 {
					l = lease(at(s.renew))
				}
				p = Observe(p, n, l, at(s.now))
				if got := Silent(n, p, at(s.now), grace, startup); got != s.wantSilent {
					t.Fatalf("step %d (t=%v): silent = %v, want %v (probe %+v)", i, s.now, got, s.wantSilent, p)
				}
			}
		})
	}
}

func TestMarkUnknown(t *testing.T) {
	n := node("n",
		cond(corev1.NodeReady, corev1.ConditionTrue, t0),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, t0),
		cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, t0))
	st, changed := MarkUnknown(n, at(time.Minute))
	if !changed {
		t.Fatal("a Ready node's status did not change")
	}
	for _, c := range st.Conditions {
		switch c.Type {
		case corev1.NodeReady, corev1.NodeMemoryPressure:
			if c.Status != corev1.ConditionUnknown || c.Reason != ReasonStatusUnknown || c.Message != MessageStatusUnknown ||
				!c.LastTransitionTime.Time.Equal(at(time.Minute)) || !c.LastHeartbeatTime.Time.Equal(t0) {
				t.Errorf("%s = %+v, want Unknown/NodeStatusUnknown at +1m with heartbeat kept", c.Type, c)
			}
		case corev1.NodeNetworkUnavailable:
			if c.Status != corev1.ConditionFalse {
				t.Errorf("NetworkUnavailable changed to %s", c.Status)
			}
		}
	}
	if n.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Error("MarkUnknown changed its input")
	}
	n.Status = *st
	if _, changed := MarkUnknown(n, at(2*time.Minute)); changed {
		t.Error("an Unknown node changed again")
	}
	st, changed = MarkUnknown(node("new"), t0)
	if !changed || len(st.Conditions) != 1 || st.Conditions[0].Reason != ReasonNeverUpdated || st.Conditions[0].Status != corev1.ConditionUnknown {
		t.Errorf("node without Ready: %+v", st.Conditions)
	}
}

func keys(taints []corev1.Taint) []string {
	var out []string
	for _, t := range taints {
		out = append(out, t.Key+":"+string(t.Effect))
	}
	slices.Sort(out)
	return out
}

func TestTaintsForNode(t *testing.T) {
	cordoned := node("c", cond(corev1.NodeReady, corev1.ConditionTrue, t0))
	cordoned.Spec.Unschedulable = true
	cases := []struct {
		name       string
		node       *corev1.Node
		noSchedule []string
		noExecute  string
	}{
		{"ready", node("n", cond(corev1.NodeReady, corev1.ConditionTrue, t0)), nil, ""},
		{"not ready", node("n", cond(corev1.NodeReady, corev1.ConditionFalse, t0)), []string{"node.kubernetes.io/not-ready:NoSchedule"}, corev1.TaintNodeNotReady},
		{"unknown", node("n", cond(corev1.NodeReady, corev1.ConditionUnknown, t0)), []string{"node.kubernetes.io/unreachable:NoSchedule"}, corev1.TaintNodeUnreachable},
		{"no Ready yet", node("n"), nil, ""},
		{"cordoned", cordoned, []string{"node.kubernetes.io/unschedulable:NoSchedule"}, ""},
		{"pressure", node("n", cond(corev1.NodeReady, corev1.ConditionTrue, t0), cond(corev1.NodeMemoryPressure, corev1.ConditionTrue, t0),
			cond(corev1.NodeDiskPressure, corev1.ConditionTrue, t0), cond(corev1.NodePIDPressure, corev1.ConditionFalse, t0)),
			[]string{"node.kubernetes.io/disk-pressure:NoSchedule", "node.kubernetes.io/memory-pressure:NoSchedule"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := keys(NoScheduleTaints(c.node)); !slices.Equal(got, c.noSchedule) {
				t.Errorf("NoSchedule = %v, want %v", got, c.noSchedule)
			}
			got := ""
			if ne := NoExecuteTaint(c.node); ne != nil {
				got = ne.Key
				if ne.Effect != corev1.TaintEffectNoExecute {
					t.Errorf("effect %s", ne.Effect)
				}
			}
			if got != c.noExecute {
				t.Errorf("NoExecute = %q, want %q", got, c.noExecute)
			}
		})
	}
}

func TestSetTaints(t *testing.T) {
	earlier := metav1.NewTime(t0)
	user := corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	userNoExec := corev1.Taint{Key: "example.com/drain", Effect: corev1.TaintEffectNoExecute}
	unreachable := UnreachableNoExecute
	unreachable.TimeAdded = &earlier
	ns := func(key string) corev1.Taint { return corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule} }

	out, changed := SetTaints([]corev1.Taint{user, userNoExec, unreachable, ns(corev1.TaintNodeUnreachable)},
		[]corev1.Taint{ns(corev1.TaintNodeUnreachable)}, &UnreachableNoExecute, at(time.Minute))
	if changed || len(out) != 4 {
		t.Errorf("unchanged taints reported changed=%v: %v", changed, out)
	}
	if i := slices.IndexFunc(out, func(x corev1.Taint) bool { return x.Key == unreachable.Key && x.Effect == corev1.TaintEffectNoExecute }); !out[i].TimeAdded.Equal(&earlier) {
		t.Error("a kept NoExecute taint lost its TimeAdded")
	}

	// Healthy again: the controller's taints go, the users' stay.
	out, changed = SetTaints([]corev1.Taint{user, userNoExec, unreachable, ns(corev1.TaintNodeUnreachable)}, nil, nil, at(time.Minute))
	if !changed || !slices.Equal(keys(out), []string{"dedicated:NoSchedule", "example.com/drain:NoExecute"}) {
		t.Errorf("lifted taints = %v (changed %v)", keys(out), changed)
	}

	// Unknown → False swaps the NoExecute taint, with a fresh TimeAdded.
	out, changed = SetTaints([]corev1.Taint{unreachable}, []corev1.Taint{ns(corev1.TaintNodeNotReady)}, &NotReadyNoExecute, at(90*time.Second+300*time.Millisecond))
	if !changed || !slices.Equal(keys(out), []string{"node.kubernetes.io/not-ready:NoExecute", "node.kubernetes.io/not-ready:NoSchedule"}) {
		t.Fatalf("swapped taints = %v", keys(out))
	}
	for _, x := range out {
		if x.Effect == corev1.TaintEffectNoExecute && (x.TimeAdded == nil || !x.TimeAdded.Time.Equal(at(91*time.Second))) {
			t.Errorf("new NoExecute taint TimeAdded = %v, want +91s (rounded up)", x.TimeAdded)
		}
	}
	if UnreachableNoExecute.TimeAdded != nil || NotReadyNoExecute.TimeAdded != nil {
		t.Error("SetTaints changed the package's taint templates")
	}
}

func TestComputeZoneState(t *testing.T) {
	cases := []struct {
		ready, unhealthy int
		want             ZoneState
	}{
		{3, 0, ZoneNormal},
		{1, 2, ZoneNormal}, // two unhealthy are never a partial disruption
		{2, 3, ZonePartialDisruption},
		{9, 11, ZonePartialDisruption}, // 55%
		{10, 10, ZoneNormal},           // 50%
		{0, 1, ZoneFullDisruption},
		{0, 0, ZoneNormal},
	}
	for _, c := range cases {
		if got := ComputeZoneState(c.ready, c.unhealthy, 0.55); got != c.want {
			t.Errorf("ComputeZoneState(%d ready, %d unhealthy) = %s, want %s", c.ready, c.unhealthy, got, c.want)
		}
	}
}

func TestZoneRates(t *testing.T) {
	o := RateOptions{EvictionRate: 1, SecondaryEvictionRate: 0.1, LargeClusterSizeThreshold: 50}
	cases := []struct {
		name    string
		states  map[string]ZoneState
		sizes   map[string]int
		want    map[string]float64
		allDown bool
	}{
		{"normal", map[string]ZoneState{"a": ZoneNormal}, map[string]int{"a": 3}, map[string]float64{"a": 1}, false},
		{"small zone in partial disruption stops", map[string]ZoneState{"a": ZonePartialDisruption}, map[string]int{"a": 5}, map[string]float64{"a": 0}, false},
		{"large zone in partial disruption slows", map[string]ZoneState{"a": ZonePartialDisruption}, map[string]int{"a": 100}, map[string]float64{"a": 0.1}, false},
		{"every zone down: nothing", map[string]ZoneState{"a": ZoneFullDisruption, "b": ZoneFullDisruption}, map[string]int{"a": 3, "b": 3},
			map[string]float64{"a": 0, "b": 0}, true},
		{"one zone down among healthy ones evicts", map[string]ZoneState{"a": ZoneFullDisruption, "b": ZoneNormal}, map[string]int{"a": 3, "b": 3},
			map[string]float64{"a": 1, "b": 1}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, allDown := ZoneRates(c.states, c.sizes, o)
			if allDown != c.allDown {
				t.Errorf("allDown = %v, want %v", allDown, c.allDown)
			}
			for z, r := range c.want {
				if got[z] != r {
					t.Errorf("zone %s rate = %v, want %v", z, got[z], r)
				}
			}
		})
	}
}

func TestBucket(t *testing.T) {
	b := NewBucket(0.5, t0)
	takes := func(now time.Time) bool { return b.Take(now) }
	if !takes(t0) {
		t.Fatal("a new bucket admits one at once")
	}
	if takes(at(time.Second)) {
		t.Error("admitted a second node after 1s at 0.5/s")
	}
	if !takes(at(2 * time.Second)) {
		t.Error("did not admit after 2s at 0.5/s")
	}
	// Idle time does not build a burst beyond one.
	if !takes(at(time.Minute)) || takes(at(time.Minute)) {
		t.Error("burst is not 1")
	}
	b.SetRate(0, at(time.Minute+time.Second))
	if takes(at(time.Hour)) {
		t.Error("rate 0 admitted")
	}
	// Half a token was earned in the second before the stop, none during it.
	b.SetRate(1, at(time.Hour))
	if takes(at(time.Hour)) {
		t.Error("tokens were earned while stopped")
	}
	if !takes(at(time.Hour + 500*time.Millisecond)) {
		t.Error("the half token earned before the stop was lost")
	}
}

func tol(key string, seconds *int64) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
}

func secs(s int64) *int64 { return &s }

func TestEvictAt(t *testing.T) {
	added := metav1.NewTime(t0)
	unreachable := UnreachableNoExecute
	unreachable.TimeAdded = &added
	notReady := NotReadyNoExecute
	notReady.TimeAdded = &added
	other := corev1.Taint{Key: "example.com/broken", Effect: corev1.TaintEffectNoExecute}
	observed := at(time.Hour)
	cases := []struct {
		name   string
		tols   []corev1.Toleration
		taints []corev1.Taint
		want   time.Time
		ok     bool
	}{
		{"no taints", nil, nil, time.Time{}, false},
		{"untolerated: at once", nil, []corev1.Taint{unreachable}, time.Time{}, true},
		{"tolerated for 5s", []corev1.Toleration{tol(corev1.TaintNodeUnreachable, secs(5))}, []corev1.Taint{unreachable}, at(5 * time.Second), true},
		{"tolerated forever", []corev1.Toleration{tol(corev1.TaintNodeUnreachable, nil)}, []corev1.Taint{unreachable}, time.Time{}, false},
		{"wildcard toleration", []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, []corev1.Taint{unreachable, other}, time.Time{}, false},
		{"the shortest toleration wins", []corev1.Toleration{tol(corev1.TaintNodeUnreachable, secs(30)), tol(corev1.TaintNodeNotReady, secs(5))},
			[]corev1.Taint{unreachable, notReady}, at(5 * time.Second), true},
		{"one untolerated taint among tolerated", []corev1.Toleration{tol(corev1.TaintNodeUnreachable, nil)}, []corev1.Taint{unreachable, other}, time.Time{}, true},
		{"negative seconds: at once", []corev1.Toleration{tol(corev1.TaintNodeUnreachable, secs(-3))}, []corev1.Taint{unreachable}, time.Time{}, true},
		{"NoSchedule toleration does not count", []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			[]corev1.Taint{unreachable}, time.Time{}, true},
		{"taint without TimeAdded counts from its observation", []corev1.Toleration{tol("example.com/broken", secs(2))}, []corev1.Taint{other}, observed.Add(2 * time.Second), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: c.tols}}
			got, ok := EvictAt(pod, c.taints, observed)
			if ok != c.ok || !got.Equal(c.want) {
				t.Errorf("EvictAt = (%v, %v), want (%v, %v)", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestForceDeleteAt(t *testing.T) {
	deadline := metav1.NewTime(at(30 * time.Second))
	terminating := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &deadline}}
	running := &corev1.Pod{}
	unknown := node("n", cond(corev1.NodeReady, corev1.ConditionUnknown, t0))
	ready := node("n", cond(corev1.NodeReady, corev1.ConditionTrue, t0))
	if got, ok := ForceDeleteAt(terminating, unknown); !ok || !got.Equal(deadline.Time) {
		t.Errorf("terminating pod on Unknown node: (%v, %v), want its deletion deadline", got, ok)
	}
	if _, ok := ForceDeleteAt(terminating, ready); ok {
		t.Error("a Ready node's agent finishes its own deletions")
	}
	if _, ok := ForceDeleteAt(running, unknown); ok {
		t.Error("a pod not being deleted is not force-deleted")
	}
}
