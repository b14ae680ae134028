package nodelifecycle_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/controller/nodelifecycle"
	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/scheduler"
	"github.com/drover/drover/internal/testenv"
)

// BenchmarkDeadNodeRecovery measures, with the default Options and
// registry.DefaultTolerationSeconds, how long after its agent's last lease renewal
// (agents renew every 2s) a dead node is marked Ready=Unknown (detect-s),
// and how long until all 6 replicas of a ReplicaSet run ready on the other
// nodes (recover-s). Scheduler, ReplicaSet controller and simulated nodes
// run through a real API server.
//
//	go test -run '^$' -bench DeadNodeRecovery -benchtime 1x ./internal/controller/nodelifecycle/
func BenchmarkDeadNodeRecovery(b *testing.B) {
	var detect, recover time.Duration
	for range b.N {
		d, r := deadNodeRecovery(b)
		detect += d
		recover += r
	}
	b.ReportMetric(detect.Seconds()/float64(b.N), "detect-s")
	b.ReportMetric(recover.Seconds()/float64(b.N), "recover-s")
	b.ReportMetric(0, "ns/op")
}

func deadNodeRecovery(b *testing.B) (detect, recover time.Duration) {
	c := start(b, nodelifecycle.Options{},
		func(ctx context.Context, kube kubernetes.Interface) error {
			return replicaset.Run(ctx, kube, quiet(), replicaset.Options{})
		},
		func(ctx context.Context, kube kubernetes.Interface) error {
			return scheduler.Run(ctx, kube, quiet(), scheduler.Options{})
		})
	kube := c.env.Kube
	nodes := []string{"n1", "n2", "n3"}
	simulate(b, c, nodes, false)
	a := startAgents(b, c.ctx, kube, nodes, 2*time.Second)
	template := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}
	// The API server adds the default tolerations (registry.DefaultTolerationSeconds).
	replicas := int32(6)
	sel := map[string]string{"app": "web"}
	if _, err := kube.AppsV1().ReplicaSets("default").Create(c.ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: template.Spec}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	ready := func(victim string) error {
		list, err := kube.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		n := 0
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Spec.NodeName != victim && podReady(&p) {
				n++
			}
		}
		if n != 6 {
			return fmt.Errorf("%d of 6 ready off %q", n, victim)
		}
		return nil
	}
	testenv.Eventually(b, 30*time.Second, func() error { return ready("") })

	// The node dies right after a renewal, so its silence is measured from
	// its last sign of life.
	victim := "n1"
	last := a.renewals(victim)
	testenv.Eventually(b, 10*time.Second, func() error {
		if a.renewals(victim) == last {
			return fmt.Errorf("waiting for a renewal")
		}
		return nil
	})
	a.kill(victim)
	died := time.Now()
	testenv.Eventually(b, time.Minute, func() error {
		if readyCondition(c.node(b, victim)).Status != corev1.ConditionUnknown {
			return fmt.Errorf("not yet detected")
		}
		return nil
	})
	detect = time.Since(died)
	testenv.Eventually(b, time.Minute, func() error { return ready(victim) })
	return detect, time.Since(died)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
