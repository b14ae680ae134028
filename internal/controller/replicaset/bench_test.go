package replicaset_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover/drover/internal/testenv"
)

// BenchmarkReplicaSet1000 measures how fast a 1,000-replica ReplicaSet's
// pods are created and observed by the controller (status.replicas), and
// then bound and ready on simulated nodes (status.readyReplicas).
func BenchmarkReplicaSet1000(b *testing.B) {
	const n = 1000
	c := start(b)
	var observed, readied time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench%d", i)
		begin := time.Now()
		c.create(b, newRS(name, n, 0))
		var seen bool
		testenv.Eventually(b, 5*time.Minute, func() error {
			rs := c.rs(b, name)
			if !seen && rs.Status.Replicas == n {
				seen = true
				observed += time.Since(begin)
			}
			if rs.Status.ReadyReplicas != n {
				return fmt.Errorf("%d/%d ready", rs.Status.ReadyReplicas, n)
			}
			return nil
		})
		readied += time.Since(begin)
	}
	b.ReportMetric(float64(n*b.N)/observed.Seconds(), "pods-observed/s")
	b.ReportMetric(float64(n*b.N)/readied.Seconds(), "pods-ready/s")
	if got := c.created.count("bench"); got != n*b.N {
		b.Errorf("%d pods created, want %d", got, n*b.N)
	}
}
