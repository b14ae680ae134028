package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTopAndAutoscale runs `drover up` with simulated containers that
// report CPU use: `kubectl top` shows it through metrics.k8s.io, and an
// HPA made with `kubectl autoscale` scales the Deployment up to its
// maximum while usage stays above target.
func TestTopAndAutoscale(t *testing.T) {
	dir := t.TempDir()
	up := startControlPlane(t, "up", dir, freeAddr(t), "--runtime", "sim", "--node-name", "sim-1",
		"--agent-listen", freeAddr(t), "--node-ip", "127.0.0.1")
	cs := up.clientset(t)
	ctx := context.Background()

	up.mustKubectl(t, "create", "deployment", "web", "--image=web:1", "--replicas=2")
	up.mustKubectl(t, "patch", "deployment", "web", "-p",
		`{"spec":{"template":{"metadata":{"annotations":{"sim.drover.io/cpu-millicores":"300"}},"spec":{"containers":[{"name":"web","resources":{"requests":{"cpu":"200m"}}}]}}}}`)
	waitFor(t, 60*time.Second, func() error {
		out, err := up.kubectl(t, "top", "pods", "-l", "app=web")
		if err != nil || strings.Count(out, " 300m ") != 2 {
			return fmt.Errorf("kubectl top pods: %v\n%s", err, out)
		}
		return nil
	})
	if out := up.mustKubectl(t, "top", "nodes"); !strings.Contains(out, "sim-1") {
		t.Errorf("kubectl top nodes:\n%s", out)
	}
	up.mustKubectl(t, "autoscale", "deployment", "web", "--cpu=50%", "--min=1", "--max=5")
	waitFor(t, 90*time.Second, func() error {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 5 || d.Status.ReadyReplicas != 5 {
			return fmt.Errorf("web: %d replicas, %d ready; want 5 and 5", *d.Spec.Replicas, d.Status.ReadyReplicas)
		}
		return nil
	})
	hpa := up.mustKubectl(t, "get", "hpa", "web")
	if !strings.Contains(hpa, "cpu: 150%/50%") {
		t.Errorf("kubectl get hpa:\n%s", hpa)
	}
	events := up.mustKubectl(t, "describe", "hpa", "web")
	if !strings.Contains(events, "SuccessfulRescale") {
		t.Errorf("kubectl describe hpa shows no rescale event:\n%s", events)
	}
}
