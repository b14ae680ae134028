package deployment

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestResolveFenceposts(t *testing.T) {
	p := func(s string) *intstr.IntOrString {
		if s == "" {
			return nil
		}
		v := intstr.Parse(s)
		return &v
	}
	for _, tc := range []struct {
		surge, unavail      string
		desired             int32
		wantSurge, wantUnav int32
		err                 bool
	}{
		{"25%", "25%", 10, 3, 2, false}, // surge rounds up, unavailable down
		{"25%", "25%", 1, 1, 0, false},  // 0.25 → 1 and 0
		{"25%", "25%", 4, 1, 1, false},  // exact
		{"50%", "50%", 3, 2, 1, false},  // 1.5 → 2 and 1
		{"1", "1", 10, 1, 1, false},     // numbers
		{"0", "0", 5, 0, 1, false},      // both zero → unavailable 1
		{"0%", "1%", 2, 0, 1, false},    // 1% of 2 rounds to 0 → 1
		{"", "", 3, 0, 1, false},        // unset counts as zero
		{"100%", "0", 3, 3, 0, false},   // all surge
		{"0", "100%", 7, 0, 7, false},   // all unavailable
		{"1%", "25%", 1000, 10, 250, false},
		{"abc", "1", 3, 0, 0, true},
		{"1", "x%", 3, 0, 0, true},
	} {
		t.Run(fmt.Sprintf("%s/%s/%d", tc.surge, tc.unavail, tc.desired), func(t *testing.T) {
			s, u, err := ResolveFenceposts(p(tc.surge), p(tc.unavail), tc.desired)
			if tc.err {
				if err == nil {
					t.Fatalf("want an error, got %d, %d", s, u)
				}
				return
			}
			if err != nil || s != tc.wantSurge || u != tc.wantUnav {
				t.Fatalf("got %d, %d, %v; want %d, %d", s, u, err, tc.wantSurge, tc.wantUnav)
			}
		})
	}
}

func TestMaxSurgeMaxUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name           string
		d              *appsv1.Deployment
		surge, unavail int32
	}{
		{"rolling", dep(10, "25%", "25%").obj(), 3, 2},
		{"unavailable capped at replicas", dep(3, "0", "5").obj(), 0, 3},
		{"zero replicas", dep(0, "1", "1").obj(), 1, 0},
		{"recreate", dep(10, "1", "1").recreate().obj(), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, u := MaxSurge(tc.d), MaxUnavailable(tc.d); s != tc.surge || u != tc.unavail {
				t.Fatalf("got surge %d unavailable %d, want %d %d", s, u, tc.surge, tc.unavail)
			}
		})
	}
}

func TestRollingStep(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		new  rsB
		old  []rsB
		want []Scaling
	}{
		{
			name: "new RS grows by the surge",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 0, 0),
			old:  []rsB{rs("old", 1, 10, 10)},
			want: []Scaling{{"new", 0, 1}},
		},
		{
			name: "surge used up: old shrinks down to replicas-maxUnavailable available",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 1, 0),
			old:  []rsB{rs("old", 1, 10, 10)},
			want: []Scaling{{"old", 10, 9}},
		},
		{
			name: "new pods unavailable: nothing may move",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 2, 0),
			old:  []rsB{rs("old", 1, 9, 9)},
			want: nil,
		},
		{
			name: "new pods available: old shrinks by what became available",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 2, 2),
			old:  []rsB{rs("old", 1, 9, 9)},
			want: []Scaling{{"old", 9, 7}},
		},
		{
			name: "old pod not yet being removed: new RS does not grow, old may shrink",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 1, 1),
			old:  []rsB{rs("old", 1, 9, 9).status(10)},
			want: []Scaling{{"old", 9, 8}},
		},
		{
			name: "new RS never grows past replicas",
			d:    dep(10, "5", "0").obj(),
			new:  rs("new", 2, 8, 8),
			old:  []rsB{rs("old", 1, 0, 0)},
			want: []Scaling{{"new", 8, 10}},
		},
		{
			name: "new RS larger than replicas shrinks",
			d:    dep(3, "1", "1").obj(),
			new:  rs("new", 2, 5, 5),
			want: []Scaling{{"new", 5, 3}},
		},
		{
			name: "unhealthy old replicas go first, oldest RS first, then available ones",
			d:    dep(10, "0", "3").obj(),
			new:  rs("new", 3, 0, 0),
			old:  []rsB{rs("mid", 2, 5, 3), rs("oldest", 1, 5, 4)},
			// allPods 10, minAvailable 7, new unavailable 0 → 3 may go:
			// oldest's 1 unhealthy, mid's 2 unhealthy; then available 7-7=0.
			want: []Scaling{{"oldest", 5, 4}, {"mid", 5, 3}},
		},
		{
			name: "cleanup limited by maxScaledDown",
			d:    dep(10, "0", "1").obj(),
			new:  rs("new", 3, 0, 0),
			old:  []rsB{rs("old", 1, 10, 5)},
			want: []Scaling{{"old", 10, 9}},
		},
		{
			name: "stale status counting deleted pods is capped at the size",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 1, 1),
			// Just scaled 10→9; status still says 10 available.
			old:  []rsB{rs("old", 1, 9, 10)},
			want: []Scaling{{"new", 1, 2}},
		},
		{
			name: "stale status, surge used: only one more may go",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 2, 1),
			old:  []rsB{rs("old", 1, 9, 10)},
			// available counted 9+1=10, floor 9 → 1, not 2 as the raw 11 would allow.
			want: []Scaling{{"old", 9, 8}},
		},
		{
			name: "done: nothing to do",
			d:    dep(10, "1", "1").obj(),
			new:  rs("new", 2, 10, 10),
			old:  []rsB{rs("old", 1, 0, 0)},
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RollingStep(tc.d, tc.new.obj(), rsList(tc.old...))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// world is a model of ReplicaSets and their pods for simulated rollouts:
// pods of a ReplicaSet named in broken never become available; status
// catches up with the spec only every other round when lag is set.
type world struct {
	d       *appsv1.Deployment
	rss     []*appsv1.ReplicaSet
	broken  map[string]bool
	ready   map[string]int32 // actual available pods per RS
	lag     bool
	round   int
	created int
}

func (w *world) byName(n string) *appsv1.ReplicaSet {
	for _, rs := range w.rss {
		if rs.Name == n {
			return rs
		}
	}
	return nil
}

// settle plays the ReplicaSet controller and the nodes: pods are deleted
// at once on scale-down, new pods become available (unless broken).
func (w *world) settle() {
	w.round++
	for _, rs := range w.rss {
		sz := size(rs)
		if w.ready[rs.Name] > sz {
			w.ready[rs.Name] = sz
		} else if !w.broken[rs.Name] {
			w.ready[rs.Name] = sz
		}
		if !w.lag || w.round%2 == 0 {
			rs.Status.Replicas = sz
			rs.Status.AvailableReplicas = w.ready[rs.Name]
			rs.Status.ReadyReplicas = w.ready[rs.Name]
		}
	}
}

func (w *world) actualAvailable() int32 {
	var n int32
	for _, v := range w.ready {
		n += v
	}
	return n
}

// step runs one RollingStep and applies it; it reports whether anything
// changed.
func (w *world) step(t *testing.T, newRS *appsv1.ReplicaSet) bool {
	var old []*appsv1.ReplicaSet
	for _, rs := range w.rss {
		if rs != newRS {
			old = append(old, rs)
		}
	}
	steps := RollingStep(w.d, newRS, old)
	for _, s := range steps {
		rs := w.byName(s.Name)
		if size(rs) != s.From {
			t.Fatalf("step %v: RS is at %d", s, size(rs))
		}
		rs.Spec.Replicas = ptr(s.To)
	}
	return len(steps) > 0
}

func TestRollingUpdateSimulationKeepsInvariants(t *testing.T) {
	for _, replicas := range []int32{1, 2, 3, 5, 10, 17} {
		for _, fp := range [][2]string{{"1", "1"}, {"1", "0"}, {"0", "1"}, {"25%", "25%"}, {"50%", "0"}, {"0", "30%"}, {"100%", "100%"}, {"3", "2"}} {
			for _, lag := range []bool{false, true} {
				name := fmt.Sprintf("%d/%s/%s/lag=%v", replicas, fp[0], fp[1], lag)
				t.Run(name, func(t *testing.T) {
					d := dep(replicas, fp[0], fp[1]).obj()
					surge, unavail := MaxSurge(d), MaxUnavailable(d)
					w := &world{d: d, ready: map[string]int32{"old": replicas}, broken: map[string]bool{}, lag: lag}
					w.rss = rsList(rs("old", 1, replicas, replicas))
					newRS := rs("new", 2, 0, 0).obj()
					newRS.Spec.Replicas = ptr(NewRSReplicas(d, append(w.rss, newRS), newRS))
					w.rss = append(w.rss, newRS)
					for i := 0; ; i++ {
						if i > 1000 {
							t.Fatalf("rollout did not finish: %v", w.rss)
						}
						if total := totalSize(w.rss); total > replicas+surge {
							t.Fatalf("round %d: %d pods > %d", i, total, replicas+surge)
						}
						if a := w.actualAvailable(); a < replicas-unavail {
							t.Fatalf("round %d: %d available < %d", i, a, replicas-unavail)
						}
						w.settle()
						moved := w.step(t, newRS)
						if !moved && size(newRS) == replicas && size(w.byName("old")) == 0 && w.ready["new"] == replicas {
							break
						}
					}
				})
			}
		}
	}
}

func TestRollingUpdateOfNeverReadyPodsStops(t *testing.T) {
	for _, tc := range []struct {
		replicas       int32
		surge, unavail string
	}{{10, "1", "1"}, {10, "25%", "25%"}, {4, "0", "1"}, {7, "2", "0"}} {
		t.Run(fmt.Sprintf("%d/%s/%s", tc.replicas, tc.surge, tc.unavail), func(t *testing.T) {
			d := dep(tc.replicas, tc.surge, tc.unavail).obj()
			surge, unavail := MaxSurge(d), MaxUnavailable(d)
			w := &world{d: d, ready: map[string]int32{"old": tc.replicas}, broken: map[string]bool{"new": true}}
			w.rss = rsList(rs("old", 1, tc.replicas, tc.replicas))
			newRS := rs("new", 2, 0, 0).obj()
			w.rss = append(w.rss, newRS)
			stable := 0
			for i := 0; stable < 3; i++ {
				if i > 1000 {
					t.Fatal("never settled")
				}
				w.settle()
				if w.step(t, newRS) {
					stable = 0
				} else {
					stable++
				}
				if a := w.actualAvailable(); a < tc.replicas-unavail {
					t.Fatalf("%d available < %d", a, tc.replicas-unavail)
				}
			}
			if n := size(newRS); n > surge+unavail {
				t.Fatalf("new RS at %d > maxSurge+maxUnavailable %d", n, surge+unavail)
			}
			if n := size(newRS); n == 0 {
				t.Fatal("new RS never started")
			}
			if a := w.ready["old"]; a < tc.replicas-unavail {
				t.Fatalf("old available %d < %d", a, tc.replicas-unavail)
			}
		})
	}
}

func TestNewRSReplicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		new  rsB
		old  []rsB
		want int32
	}{
		{"surge room", dep(10, "3", "0").obj(), rs("n", 2, 0, 0), []rsB{rs("o", 1, 10, 10)}, 3},
		{"surge used", dep(10, "1", "0").obj(), rs("n", 2, 1, 0), []rsB{rs("o", 1, 10, 10)}, 1},
		{"capped at replicas", dep(10, "5", "0").obj(), rs("n", 2, 8, 0), []rsB{rs("o", 1, 0, 0)}, 10},
		{"recreate takes all", dep(4, "1", "1").recreate().obj(), rs("n", 2, 0, 0), []rsB{rs("o", 1, 4, 4)}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := append(rsList(tc.old...), tc.new.obj())
			if got := NewRSReplicas(tc.d, all, tc.new.obj()); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRecreateStep(t *testing.T) {
	d := dep(3, "1", "1").recreate().obj()
	newRS := rs("new", 3, 0, 0).obj()
	old := rsList(rs("a", 1, 2, 2), rs("b", 2, 1, 1))
	if got, create := RecreateStep(d, newRS, old, true); !slices.Equal(got, []Scaling{{"a", 2, 0}, {"b", 1, 0}}) || create {
		t.Fatalf("scale down first: got %v %v", got, create)
	}
	old = rsList(rs("a", 1, 0, 0), rs("b", 2, 0, 0))
	if got, create := RecreateStep(d, newRS, old, true); got != nil || create {
		t.Fatalf("old pods running: want to wait, got %v %v", got, create)
	}
	if got, create := RecreateStep(d, nil, old, false); got != nil || !create {
		t.Fatalf("no new RS: want create, got %v %v", got, create)
	}
	if got, _ := RecreateStep(d, newRS, old, false); !slices.Equal(got, []Scaling{{"new", 0, 3}}) {
		t.Fatalf("scale up: got %v", got)
	}
}

func TestScaleStepProportional(t *testing.T) {
	// Cases from upstream's TestScale: maxSurge 0 (so maxUnavailable 1),
	// ReplicaSets sized for the old replica count.
	for _, tc := range []struct {
		name     string
		from, to int32
		new      rsB
		old      []rsB
		want     []Scaling
	}{
		{"lone RS 10 -> 12", 10, 12, rs("new", 2, 10, 10), nil, []Scaling{{"new", 10, 12}}},
		{"lone RS 10 -> 5", 10, 5, rs("new", 2, 10, 10), nil, []Scaling{{"new", 10, 5}}},
		{"5 -> 10", 5, 10, rs("new", 2, 2, 2), []rsB{rs("old", 1, 3, 3)}, []Scaling{{"old", 3, 6}, {"new", 2, 4}}},
		{"5 -> 3", 5, 3, rs("new", 2, 2, 2), []rsB{rs("old", 1, 3, 3)}, []Scaling{{"old", 3, 2}, {"new", 2, 1}}},
		{"9 -> 4", 9, 4, rs("new", 2, 8, 8), []rsB{rs("old", 1, 1, 1)}, []Scaling{{"new", 8, 4}, {"old", 1, 0}}},
		{"7 -> 10", 7, 10, rs("new", 3, 2, 2), []rsB{rs("o1", 1, 3, 3), rs("o2", 2, 2, 2)}, []Scaling{{"o1", 3, 4}, {"new", 2, 3}, {"o2", 2, 3}}},
		{"13 -> 8", 13, 8, rs("new", 3, 2, 2), []rsB{rs("o1", 1, 8, 8), rs("o2", 2, 3, 3)}, []Scaling{{"o1", 8, 5}, {"o2", 3, 2}, {"new", 2, 1}}},
		{"leftover up goes to the newest: 3 -> 4", 3, 4, rs("new", 3, 1, 1), []rsB{rs("o1", 1, 1, 1), rs("o2", 2, 1, 1)},
			[]Scaling{{"new", 1, 2}, {"o2", 1, 1}, {"o1", 1, 1}}},
		{"leftover down comes from the oldest: 3 -> 2", 3, 2, rs("new", 3, 1, 1), []rsB{rs("o1", 1, 1, 1), rs("o2", 2, 1, 1)},
			[]Scaling{{"o1", 1, 0}, {"o2", 1, 1}, {"new", 1, 1}}},
		{"to zero", 5, 0, rs("new", 2, 2, 2), []rsB{rs("old", 1, 3, 3)}, []Scaling{{"old", 3, 0}, {"new", 2, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dep(tc.to, "0", "0").obj()
			d.Status.Replicas = tc.from
			n := tc.new.sizedFor(tc.from, tc.from).obj()
			var old []*appsv1.ReplicaSet
			for _, o := range tc.old {
				old = append(old, o.sizedFor(tc.from, tc.from).obj())
			}
			got := ScaleStep(d, n, old)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			var sum int32
			for _, s := range got {
				sum += s.To - s.From
			}
			if total := totalSize(append(old, n)) + sum; total != tc.to {
				t.Fatalf("total after scaling %d, want %d", total, tc.to)
			}
		})
	}
}

func TestScaleStepWithSurgeKeepsRolloutShape(t *testing.T) {
	// 10 replicas, surge 3 (25% of 10 rounds up), mid-rollout at 13 pods;
	// scaled to 20 (surge 5): 25 pods spread in proportion.
	d := dep(20, "25%", "25%").obj()
	n := rs("new", 2, 5, 5).sizedFor(10, 13).obj()
	o := rs("old", 1, 8, 8).sizedFor(10, 13).obj()
	got := ScaleStep(d, n, []*appsv1.ReplicaSet{o})
	want := []Scaling{{"old", 8, 15}, {"new", 5, 10}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestScaleStepSaturatedNewRSEmptiesOld(t *testing.T) {
	d := dep(3, "1", "1").obj()
	n := rs("new", 2, 3, 3).sizedFor(3, 4).obj()
	o := rs("old", 1, 1, 1).sizedFor(3, 4).obj()
	if got := ScaleStep(d, n, []*appsv1.ReplicaSet{o}); !slices.Equal(got, []Scaling{{"old", 1, 0}}) {
		t.Fatalf("got %v", got)
	}
}

func TestScaleStepRefreshesAnnotationsOfUnchangedSize(t *testing.T) {
	// Resized 3 → 5 → 3 before the controller saw it: the size is right
	// but the annotation says 5, so the RS is listed to fix it.
	d := dep(3, "1", "1").obj()
	n := rs("new", 2, 3, 3).sizedFor(5, 6).obj()
	if !IsScalingEvent(d, []*appsv1.ReplicaSet{n}) {
		t.Fatal("want a scaling event")
	}
	if got := ScaleStep(d, n, nil); !slices.Equal(got, []Scaling{{"new", 3, 3}}) {
		t.Fatalf("got %v", got)
	}
	setReplicasAnnotations(n, 3, 4)
	if IsScalingEvent(d, []*appsv1.ReplicaSet{n}) || ScaleStep(d, n, nil) != nil {
		t.Fatal("annotations fixed: no more scaling")
	}
}

func TestActiveOrLatest(t *testing.T) {
	a, b, c := rs("a", 1, 0, 0).obj(), rs("b", 2, 0, 0).obj(), rs("c", 3, 2, 2).obj()
	if got := ActiveOrLatest(nil, []*appsv1.ReplicaSet{b, a}); got != b {
		t.Fatalf("none active: want the newest old, got %v", got.Name)
	}
	if got := ActiveOrLatest(a, []*appsv1.ReplicaSet{b}); got != a {
		t.Fatalf("none active: want the new one, got %v", got.Name)
	}
	if got := ActiveOrLatest(a, []*appsv1.ReplicaSet{b, c}); got != c {
		t.Fatalf("one active: got %v", got)
	}
	if got := ActiveOrLatest(c, []*appsv1.ReplicaSet{rs("d", 0, 1, 1).obj()}); got != nil {
		t.Fatalf("two active: got %v", got.Name)
	}
}

func TestScalingString(t *testing.T) {
	if s := (Scaling{"web-abc", 1, 3}).String(); s != "Scaled up replica set web-abc from 1 to 3" {
		t.Fatal(s)
	}
	if s := (Scaling{"web-abc", 3, 0}).String(); s != "Scaled down replica set web-abc from 3 to 0" {
		t.Fatal(s)
	}
}
