package deployment

import "testing"

// BenchmarkRollingStep measures one rolling-update decision for a
// Deployment with a new and three old ReplicaSets.
func BenchmarkRollingStep(b *testing.B) {
	d := dep(1000, "25%", "25%").obj()
	newRS := rs("new", 4, 400, 300).obj()
	old := rsList(rs("a", 1, 100, 90), rs("b", 2, 200, 200), rs("c", 3, 300, 300))
	for b.Loop() {
		RollingStep(d, newRS, old)
	}
}

// BenchmarkScaleStep measures one proportional scaling decision.
func BenchmarkScaleStep(b *testing.B) {
	d := dep(2000, "25%", "25%").obj()
	newRS := rs("new", 4, 400, 300).sizedFor(1000, 1250).obj()
	old := rsList(rs("a", 1, 100, 90).sizedFor(1000, 1250), rs("b", 2, 300, 200).sizedFor(1000, 1250), rs("c", 3, 450, 300).sizedFor(1000, 1250))
	for b.Loop() {
		ScaleStep(d, newRS, old)
	}
}

// BenchmarkComputeHash measures the pod-template-hash of a small template.
func BenchmarkComputeHash(b *testing.B) {
	d := dep(1, "1", "1").obj()
	for b.Loop() {
		ComputeHash(&d.Spec.Template, nil)
	}
}

// BenchmarkRolloutSimulation plays a whole 1,000-replica rolling update
// (maxSurge/maxUnavailable 25%) against the model of ReplicaSets used by
// the simulation tests, reporting the decision steps it takes.
func BenchmarkRolloutSimulation(b *testing.B) {
	const n = 1000
	steps := 0
	for b.Loop() {
		d := dep(n, "25%", "25%").obj()
		w := &world{d: d, ready: map[string]int32{"old": n}, broken: map[string]bool{}}
		w.rss = rsList(rs("old", 1, n, n))
		newRS := rs("new", 2, 0, 0).obj()
		w.rss = append(w.rss, newRS)
		t := &testing.T{}
		for i := 0; ; i++ {
			if i > 10000 {
				b.Fatal("rollout did not finish")
			}
			w.settle()
			steps++
			if !w.step(t, newRS) && size(newRS) == n && w.ready["new"] == n && size(w.byName("old")) == 0 {
				break
			}
		}
	}
	b.ReportMetric(float64(steps)/float64(b.N), "steps/rollout")
}
