package gc_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

// BenchmarkCollect1000 measures how fast the collector deletes the 1,000
// pods of a ReplicaSet deleted with background propagation, until the
// simulated nodes have finished every graceful deletion.
func BenchmarkCollect1000(b *testing.B) {
	const n = 1000
	c := start(b)
	var took time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench%d", i)
		b.StopTimer()
		c.runRS(b, newRS(name, n))
		b.StartTimer()
		begin := time.Now()
		c.deleteRS(b, name, metav1.DeletePropagationBackground)
		testenv.Eventually(b, 5*time.Minute, func() error {
			// One item is enough to know some are left; listing all
			// would load the server being measured.
			list, err := c.kube.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=" + name, Limit: 1})
			if err != nil {
				return err
			}
			if len(list.Items) > 0 {
				return fmt.Errorf("pods left")
			}
			return nil
		})
		took += time.Since(begin)
	}
	b.ReportMetric(float64(n*b.N)/took.Seconds(), "pods-collected/s")
}
