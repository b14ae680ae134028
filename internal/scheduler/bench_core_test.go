package scheduler

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSchedule places 10,000 pods (replicas of 10 ReplicaSets, 100m
// CPU and 128Mi each) on 1,000 nodes of 4 CPU / 16Gi, through Schedule and
// Assume as the scheduler loop does, and reports pods/s: with upstream's
// adaptive share of nodes to score (42% of 1,000) and with every node.
func BenchmarkSchedule(b *testing.B) {
	b.Run("adaptive", func(b *testing.B) { benchSchedule(b, 0) })
	b.Run("all-nodes", func(b *testing.B) { benchSchedule(b, 100) })
}

func benchSchedule(b *testing.B, pct int) {
	const nodes, pods = 1000, 10000
	nodeObjs := make([]*nodeB, nodes)
	for i := range nodes {
		nodeObjs[i] = mkNode(fmt.Sprintf("node-%04d", i), "4", "16Gi")
	}
	podObjs := make([]*podB, pods)
	for i := range pods {
		podObjs[i] = mkPod(fmt.Sprintf("pod-%05d", i)).req("100m", "128Mi").owner(fmt.Sprintf("rs-%d", i%10))
	}
	b.ReportAllocs()
	var total time.Duration
	for b.Loop() {
		c := NewCache(Config{PercentageOfNodesToScore: pct})
		for _, n := range nodeObjs {
			c.SetNode(n.obj())
		}
		start := time.Now()
		for _, p := range podObjs {
			node, err := c.Schedule(p.obj())
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Assume(p.obj(), node); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(pods*b.N)/total.Seconds(), "pods/s")
}
