package scheduler

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestScheduleFilters(t *testing.T) {
	tol := func(key, val string, op corev1.TolerationOperator, e corev1.TaintEffect) corev1.Toleration {
		return corev1.Toleration{Key: key, Value: val, Operator: op, Effect: e}
	}
	never := corev1.PreemptNever
	tests := []struct {
		name   string
		nodes  []*corev1.Node
		placed []*corev1.Pod
		pod    *corev1.Pod
		want   string // node, or "" for no fit
		msg    string // the FitError message when want is ""
	}{
		{
			name:  "fits the only node",
			nodes: []*corev1.Node{mkNode("a", "2", "4Gi").obj()},
			pod:   mkPod("p").req("1", "1Gi").obj(),
			want:  "a",
		},
		{
			name: "upstream's example: a taint and too little cpu",
			nodes: []*corev1.Node{
				mkNode("a", "1", "4Gi").obj(), mkNode("b", "1", "4Gi").obj(),
				mkNode("c", "8", "4Gi").taint("key", "value", corev1.TaintEffectNoSchedule).obj(),
			},
			pod: mkPod("p").req("2", "").obj(),
			msg: "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu. " +
				"preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
		},
		{
			name:  "every resource short is a reason of its own",
			nodes: []*corev1.Node{mkNode("a", "1", "1Gi").obj(), mkNode("b", "1", "1Gi").obj()},
			pod:   mkPod("p").req("2", "2Gi").obj(),
			msg: "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. " +
				"preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
		},
		{
			name:  "preemptionPolicy Never",
			nodes: []*corev1.Node{mkNode("a", "1", "1Gi").obj()},
			pod: func() *corev1.Pod {
				p := mkPod("p").req("2", "").obj()
				p.Spec.PreemptionPolicy = &never
				return p
			}(),
			msg: "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
		},
		{
			name:   "requests of placed pods count, assumed or bound",
			nodes:  []*corev1.Node{mkNode("a", "4", "4Gi").obj(), mkNode("b", "4", "4Gi").obj()},
			placed: []*corev1.Pod{mkPod("x").req("3", "").on("a").obj()},
			pod:    mkPod("p").req("2", "").obj(),
			want:   "b",
		},
		{
			name:   "pod count",
			nodes:  []*corev1.Node{mkNode("a", "4", "4Gi").maxPods("1").obj()},
			placed: []*corev1.Pod{mkPod("x").on("a").obj()},
			pod:    mkPod("p").obj(),
			msg:    "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
		},
		{
			name:  "finished pods hold nothing",
			nodes: []*corev1.Node{mkNode("a", "1", "4Gi").obj()},
			placed: []*corev1.Pod{func() *corev1.Pod {
				p := mkPod("x").req("1", "").on("a").obj()
				p.Status.Phase = corev1.PodSucceeded
				return p
			}()},
			pod:  mkPod("p").req("1", "").obj(),
			want: "a",
		},
		{
			name:  "cordoned node skipped",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").cordon().obj(), mkNode("b", "1", "1Gi").obj()},
			pod:   mkPod("p").obj(),
			want:  "b",
		},
		{
			name:  "cordoned: upstream's reason",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").cordon().obj()},
			pod:   mkPod("p").obj(),
			msg:   "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name:  "cordoned node takes a pod tolerating unschedulable",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").cordon().obj()},
			pod:   mkPod("p").tolerate(tol(TaintNodeUnschedulable, "", corev1.TolerationOpExists, corev1.TaintEffectNoSchedule)).obj(),
			want:  "a",
		},
		{
			name:  "not Ready is an implicit not-ready taint",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").ready(corev1.ConditionFalse).obj(), mkNode("b", "4", "4Gi").ready(corev1.ConditionUnknown).obj()},
			pod:   mkPod("p").obj(),
			msg:   "0/2 nodes are available: 2 node(s) had untolerated taint(s). preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
		},
		{
			name:  "a NoExecute toleration does not tolerate the NoSchedule not-ready taint",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").ready(corev1.ConditionFalse).obj()},
			pod:   mkPod("p").tolerate(tol(TaintNodeNotReady, "", corev1.TolerationOpExists, corev1.TaintEffectNoExecute)).obj(),
			msg:   "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name: "tolerations: Equal needs the value, Exists any, empty effect every effect",
			nodes: []*corev1.Node{
				mkNode("a", "4", "4Gi").taint("k", "v", corev1.TaintEffectNoExecute).obj(),
			},
			pod:  mkPod("p").tolerate(tol("k", "v", corev1.TolerationOpEqual, "")).obj(),
			want: "a",
		},
		{
			name:  "toleration with another value does not tolerate",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").taint("k", "v", corev1.TaintEffectNoSchedule).obj()},
			pod:   mkPod("p").tolerate(tol("k", "w", corev1.TolerationOpEqual, corev1.TaintEffectNoSchedule)).obj(),
			msg:   "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name:  "empty key with Exists tolerates everything",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").taint("k", "v", corev1.TaintEffectNoSchedule).taint("j", "", corev1.TaintEffectNoExecute).obj()},
			pod:   mkPod("p").tolerate(tol("", "", corev1.TolerationOpExists, "")).obj(),
			want:  "a",
		},
		{
			name:  "PreferNoSchedule does not filter",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").taint("k", "v", corev1.TaintEffectPreferNoSchedule).obj()},
			pod:   mkPod("p").obj(),
			want:  "a",
		},
		{
			name:  "PreferNoSchedule steers away",
			nodes: []*corev1.Node{mkNode("a", "4", "4Gi").taint("k", "v", corev1.TaintEffectPreferNoSchedule).obj(), mkNode("b", "4", "4Gi").obj()},
			pod:   mkPod("p").obj(),
			want:  "b",
		},
		{
			name:  "nodeSelector",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "1", "1Gi").label("disk", "ssd").obj()},
			pod:   mkPod("p").selector("disk", "ssd").obj(),
			want:  "b",
		},
		{
			name:  "nodeSelector unmatched",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").label("disk", "hdd").obj()},
			pod:   mkPod("p").selector("disk", "ssd").obj(),
			msg:   "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name:  "required affinity In",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").label("zone", "x").obj(), mkNode("b", "1", "1Gi").label("zone", "y").obj()},
			pod:   mkPod("p").required(expr("zone", corev1.NodeSelectorOpIn, "y", "z")).obj(),
			want:  "b",
		},
		{
			name:  "required affinity NotIn (absent label passes)",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").label("zone", "x").obj(), mkNode("b", "1", "1Gi").obj()},
			pod:   mkPod("p").required(expr("zone", corev1.NodeSelectorOpNotIn, "x")).obj(),
			want:  "b",
		},
		{
			name:  "required affinity Exists",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "1", "1Gi").label("gpu", "").obj()},
			pod:   mkPod("p").required(expr("gpu", corev1.NodeSelectorOpExists)).obj(),
			want:  "b",
		},
		{
			name:  "required affinity DoesNotExist",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").label("gpu", "").obj(), mkNode("b", "1", "1Gi").obj()},
			pod:   mkPod("p").required(expr("gpu", corev1.NodeSelectorOpDoesNotExist)).obj(),
			want:  "b",
		},
		{
			name:  "required affinity Gt and Lt compare integers",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").label("cores", "4").obj(), mkNode("b", "1", "1Gi").label("cores", "16").obj(), mkNode("c", "8", "8Gi").label("cores", "x").obj()},
			pod: mkPod("p").required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "cores", Operator: corev1.NodeSelectorOpGt, Values: []string{"8"}},
				{Key: "cores", Operator: corev1.NodeSelectorOpLt, Values: []string{"100"}},
			}}).obj(),
			want: "b",
		},
		{
			name:  "terms are ORed",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "1", "1Gi").label("x", "1").obj()},
			pod:   mkPod("p").required(expr("nope", corev1.NodeSelectorOpExists), expr("x", corev1.NodeSelectorOpIn, "1")).obj(),
			want:  "b",
		},
		{
			name:  "an empty term matches nothing",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").obj()},
			pod:   mkPod("p").required(corev1.NodeSelectorTerm{}).obj(),
			msg:   "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name:  "matchFields metadata.name",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "1", "1Gi").obj()},
			pod: mkPod("p").required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}}).obj(),
			want: "b",
		},
		{
			name:  "preferred affinity wins over more free resources",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "2", "2Gi").label("fast", "yes").obj()},
			pod:   mkPod("p").preferred(100, expr("fast", corev1.NodeSelectorOpIn, "yes")).obj(),
			want:  "b",
		},
		{
			name:   "host port taken",
			nodes:  []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "1", "1Gi").obj()},
			placed: []*corev1.Pod{mkPod("x").hostPort(80, "").on("a").obj()},
			pod:    mkPod("p").hostPort(80, "10.0.0.1").obj(),
			want:   "b",
		},
		{
			name:   "host port on another address is free",
			nodes:  []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "1", "1Gi").obj()},
			placed: []*corev1.Pod{mkPod("x").hostPort(80, "10.0.0.1").on("a").obj()},
			pod:    mkPod("p").hostPort(80, "10.0.0.2").obj(),
			want:   "a",
		},
		{
			name:   "host port conflict: upstream's reason",
			nodes:  []*corev1.Node{mkNode("a", "8", "8Gi").obj()},
			placed: []*corev1.Pod{mkPod("x").hostPort(80, "10.0.0.1").on("a").obj()},
			pod:    mkPod("p").hostPort(80, "").obj(),
			msg:    "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
		},
		{
			name: "extended resources: counted per node, upstream's reason",
			nodes: []*corev1.Node{
				mkNode("a", "8", "8Gi").scalar("example.com/gpu", "1").obj(),
				mkNode("b", "8", "8Gi").obj(),
			},
			placed: []*corev1.Pod{mkPod("x").scalar("example.com/gpu", "1").on("a").obj()},
			pod:    mkPod("p").scalar("example.com/gpu", "1").obj(),
			msg:    "0/2 nodes are available: 2 Insufficient example.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
		},
		{
			name:  "extended resources: fits where there are enough",
			nodes: []*corev1.Node{mkNode("a", "8", "8Gi").obj(), mkNode("b", "1", "1Gi").scalar("example.com/gpu", "2").obj()},
			pod:   mkPod("p").scalar("example.com/gpu", "2").obj(),
			want:  "b",
		},
		{
			name:   "least allocated",
			nodes:  []*corev1.Node{mkNode("a", "4", "4Gi").obj(), mkNode("b", "4", "4Gi").obj()},
			placed: []*corev1.Pod{mkPod("x").req("1", "1Gi").on("a").obj()},
			pod:    mkPod("p").req("1", "1Gi").obj(),
			want:   "b",
		},
		{
			name:  "replicas spread: fewer siblings wins over more free resources",
			nodes: []*corev1.Node{mkNode("a", "16", "16Gi").obj(), mkNode("b", "4", "4Gi").obj()},
			placed: []*corev1.Pod{
				mkPod("r1").req("100m", "100Mi").owner("rs1").on("a").obj(),
				mkPod("r2").req("100m", "100Mi").owner("rs1").on("a").obj(),
			},
			pod:  mkPod("p").req("100m", "100Mi").owner("rs1").obj(),
			want: "b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(Config{})
			for _, n := range tt.nodes {
				c.SetNode(n)
			}
			for _, p := range tt.placed {
				c.AddPod(p)
			}
			got, err := c.Schedule(tt.pod)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Schedule = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var fe *FitError
			if !errors.As(err, &fe) {
				t.Fatalf("Schedule = %q, %v; want a FitError", got, err)
			}
			if fe.Error() != tt.msg {
				t.Errorf("message\n got: %s\nwant: %s", fe.Error(), tt.msg)
			}
		})
	}
}

func TestScheduleNoNodes(t *testing.T) {
	c := NewCache(Config{})
	if _, err := c.Schedule(mkPod("p").obj()); !errors.Is(err, ErrNoNodesAvailable) {
		t.Fatalf("err = %v, want ErrNoNodesAvailable", err)
	}
	c.SetNode(mkNode("a", "1", "1Gi").obj())
	c.RemoveNode("a")
	if _, err := c.Schedule(mkPod("p").obj()); !errors.Is(err, ErrNoNodesAvailable) {
		t.Fatalf("after removing the node: err = %v, want ErrNoNodesAvailable", err)
	}
}

// Placing replicas one after another through Assume spreads them and never
// overcommits.
func TestAssumeSpreadsAndNeverOvercommits(t *testing.T) {
	c := NewCache(Config{})
	for _, n := range []string{"a", "b", "c"} {
		c.SetNode(mkNode(n, "4", "8Gi").obj())
	}
	per := map[string]int{}
	failed := 0
	for i := range 14 {
		p := mkPod("r").req("1", "").owner("rs").obj()
		p.Name = p.Name + string(rune('a'+i))
		node, err := c.Schedule(p)
		if err != nil {
			failed++
			continue
		}
		if err := c.Assume(p, node); err != nil {
			t.Fatal(err)
		}
		per[node]++
		// Spread: no node ever more than one replica ahead.
		lo, hi := 100, 0
		for _, n := range []string{"a", "b", "c"} {
			lo, hi = min(lo, per[n]), max(hi, per[n])
		}
		if hi-lo > 1 {
			t.Fatalf("after %d pods: uneven spread %v", i+1, per)
		}
	}
	if failed != 2 || per["a"] != 4 || per["b"] != 4 || per["c"] != 4 {
		t.Fatalf("placed %v with %d failures; want 4 per node and 2 failures", per, failed)
	}
}

func TestCachePodLifecycle(t *testing.T) {
	c := NewCache(Config{})
	c.SetNode(mkNode("a", "4", "4Gi").obj())
	p := mkPod("p").req("1", "1Gi").obj()
	if err := c.Assume(p, "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Assume(p, "a"); err == nil {
		t.Fatal("assuming a placed pod twice succeeded")
	}
	if !c.IsAssumed(p.UID) {
		t.Fatal("not assumed after Assume")
	}
	bound := p.DeepCopy()
	bound.Spec.NodeName = "a"
	c.AddPod(bound) // the watch shows it bound: confirmed
	if c.IsAssumed(p.UID) {
		t.Fatal("still assumed after the API showed it bound")
	}
	c.Forget(p) // a late binding failure must not drop a confirmed pod
	if req, n := c.NodeUsage("a"); n != 1 || req.MilliCPU != 1000 {
		t.Fatalf("usage after Forget of a confirmed pod = %+v, %d", req, n)
	}
	// Bound elsewhere by someone else: moves.
	c.SetNode(mkNode("b", "4", "4Gi").obj())
	moved := bound.DeepCopy()
	moved.Spec.NodeName = "b"
	c.AddPod(moved)
	if _, n := c.NodeUsage("a"); n != 0 {
		t.Fatalf("pod still counted on a after moving")
	}
	// Node removed while its pod remains, then back: still counted.
	c.RemoveNode("b")
	c.SetNode(mkNode("b", "4", "4Gi").obj())
	if req, n := c.NodeUsage("b"); n != 1 || req.Memory != 1<<30 {
		t.Fatalf("usage of b after it came back = %+v, %d", req, n)
	}
	c.RemovePod(moved)
	if req, n := c.NodeUsage("b"); n != 0 || !req.isZero() {
		t.Fatalf("usage after RemovePod = %+v, %d", req, n)
	}
	// Forget of an assumed pod frees the node.
	q := mkPod("q").req("4", "").obj()
	_ = c.Assume(q, "a")
	c.Forget(q)
	if _, err := c.Schedule(mkPod("r").req("4", "").obj()); err != nil {
		t.Fatalf("node not freed by Forget: %v", err)
	}
}

// With more than 100 nodes a placement stops after finding its share of
// feasible nodes, and the next one starts where it stopped.
func TestNumFeasibleNodesToFind(t *testing.T) {
	tests := []struct{ nodes, pct, want int }{
		{50, 0, 50},
		{1000, 0, 420},
		{5000, 0, 500},
		{200, 0, 100},
		{1000, 100, 1000},
		{1000, 30, 300},
		{100000, 0, 5000},
	}
	for _, tt := range tests {
		c := NewCache(Config{PercentageOfNodesToScore: tt.pct})
		if got := c.numFeasibleNodesToFind(tt.nodes); got != tt.want {
			t.Errorf("nodes %d pct %d: %d, want %d", tt.nodes, tt.pct, got, tt.want)
		}
	}
}

// The per-owner, per-node pod counts that spreading reads follow pods
// placed, moved and removed, and nothing is left once they are gone.
// Pods of another owner keep both nodes equally used, so that only the
// sibling counts decide.
func TestOwnerCountsFollowPods(t *testing.T) {
	c := NewCache(Config{})
	for _, n := range []string{"a", "b"} {
		c.SetNode(mkNode(n, "8", "8Gi").obj())
	}
	place := func(name, owner, node string) *corev1.Pod {
		p := mkPod(name).owner(owner).obj()
		p.Spec.NodeName = node
		c.AddPod(p)
		return p
	}
	r0, r1, r2 := place("r0", "rs", "a"), place("r1", "rs", "a"), place("r2", "rs", "b")
	place("x", "other", "b")
	next := mkPod("next").owner("rs").obj()
	if node, err := c.Schedule(next); err != nil || node != "b" {
		t.Fatalf("2 pods on each node, siblings 2 on a, 1 on b: placed on %q (%v), want b", node, err)
	}
	moved := r2.DeepCopy() // b -> a
	moved.Spec.NodeName = "a"
	c.AddPod(moved)
	c.RemovePod(r0)
	place("y", "other", "b")
	if node, err := c.Schedule(next); err != nil || node != "b" {
		t.Fatalf("2 pods on each node, siblings 2 on a, 0 on b: placed on %q (%v), want b", node, err)
	}
	c.RemovePod(r1)
	c.RemovePod(moved)
	if got := c.owners["rs"]; got != nil {
		t.Fatalf("owner counts left after all its pods went: %v", got)
	}
	if got := len(c.owners["other"]); got != 1 {
		t.Fatalf("other's pods counted on %d nodes, want 1", got)
	}
}
