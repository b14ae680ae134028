package bench

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/drover/drover/internal/controlplane"
)

func TestGracePeriodFor(t *testing.T) {
	for _, c := range []struct{ heartbeat, want time.Duration }{
		{0, 8 * time.Second}, {time.Second, 8 * time.Second}, {2 * time.Second, 10 * time.Second},
		{3 * time.Second, 15 * time.Second}, {HeartbeatFor(500, UpstreamHeartbeatInterval), 50 * time.Second},
	} {
		if got := GracePeriodFor(c.heartbeat); got != c.want {
			t.Errorf("GracePeriodFor(%v) = %v, want %v", c.heartbeat, got, c.want)
		}
	}
}

// TestBenchTimingDefaults: the bench's own control plane gets upstream's
// leader election and a grace period of five heartbeats; a targeted
// cluster's are left alone; impossible timings are refused.
func TestBenchTimingDefaults(t *testing.T) {
	c := Config{Nodes: 500}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.HeartbeatInterval != 10*time.Second || c.NodeMonitorGracePeriod != 50*time.Second || c.LeaderElection != UpstreamLeaderElection {
		t.Errorf("own control plane: heartbeat %v, grace %v, leader election %+v; want 10s, 50s and %+v", c.HeartbeatInterval, c.NodeMonitorGracePeriod, c.LeaderElection, UpstreamLeaderElection)
	}
	c = Config{Nodes: 500, Kubeconfig: "/elsewhere"}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.HeartbeatInterval != MaxHeartbeatInterval || c.NodeMonitorGracePeriod != 0 || c.LeaderElection.LeaseDuration != 0 {
		t.Errorf("targeted cluster: heartbeat %v, grace %v, leader election %+v; want %v and none", c.HeartbeatInterval, c.NodeMonitorGracePeriod, c.LeaderElection, MaxHeartbeatInterval)
	}
	c = Config{}
	c.LeaderElection.RenewDeadline = time.Minute
	if err := c.setDefaults(); err == nil || !strings.Contains(err.Error(), "renew deadline") {
		t.Errorf("renew deadline past the lease: %v, want an error", err)
	}
}

func TestLeaderCounter(t *testing.T) {
	var c leaderCounter
	c.observe("a", 3) // baseline: earlier terms are not the run's
	c.observe("a", 3) // renewals
	c.observe("a", 3)
	if c.changes != 0 {
		t.Fatalf("renewals counted as %d changes", c.changes)
	}
	c.observe("", 3)  // released on losing the lease...
	c.observe("a", 4) // ...and taken again by the same server: a new term
	if c.changes != 1 {
		t.Fatalf("re-acquired by the same server: %d changes, want 1", c.changes)
	}
	c.observe("b", 5) // another server
	c.observe("c", 7) // two terms, one of them missed by the watch
	if c.changes != 4 {
		t.Fatalf("%d changes, want 4", c.changes)
	}
	c.observe("d", 7) // a holder change without a count (not client-go)
	if c.changes != 5 {
		t.Fatalf("%d changes, want 5", c.changes)
	}
	c.observe("d", 0) // a stale copy does not count, nor lower the mark
	c.observe("d", 7)
	if c.changes != 5 {
		t.Fatalf("stale lease counted: %d changes, want 5", c.changes)
	}
}

func TestReadyCounter(t *testing.T) {
	var c readyCounter
	c.observe("n1", true)
	c.observe("n2", false) // a node first seen not Ready has lost nothing
	c.observe("n1", true)
	if c.lost != 0 {
		t.Fatalf("%d lost, want 0", c.lost)
	}
	c.observe("n1", false)
	c.observe("n1", false) // the same loss seen twice
	c.observe("n2", true)
	if c.lost != 1 {
		t.Fatalf("%d lost, want 1", c.lost)
	}
	c.observe("n1", true)
	c.observe("n1", false)
	c.observe("n2", false)
	if c.lost != 3 {
		t.Fatalf("%d lost, want 3", c.lost)
	}
	c.forget("n2")
	c.observe("n2", false) // a new node of the old name
	if c.lost != 3 {
		t.Fatalf("a recreated node counted: %d lost, want 3", c.lost)
	}
}

// TestHealthWatchesLeaseAndNodes runs a control plane and checks that the
// health watch counts a node's Ready condition leaving True, and a new
// term of the controllers' leader lease.
func TestHealthWatchesLeaseAndNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan controlplane.Info, 1)
	go func() {
		done <- controlplane.Run(ctx, controlplane.Config{
			DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(i controlplane.Info) { ready <- i },
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var info controlplane.Info
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("control plane: %v", err)
	}
	client, err := kubernetes.NewForConfig(info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the controllers' leader to take the lease.
	waitFor(t, func() bool {
		lease, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, controlplane.LeaderLeaseName, metav1.GetOptions{})
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != ""
	})
	node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "health-n1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady := func(status corev1.ConditionStatus) {
		t.Helper()
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, LastHeartbeatTime: metav1.Now()}}
		if node, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setReady(corev1.ConditionTrue)

	h, err := startHealth(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if l, r := h.counts(); l != 0 || r != 0 {
		t.Fatalf("at the start: leader changes %d, Ready lost %d; want 0 and 0", l, r)
	}
	setReady(corev1.ConditionFalse)
	waitFor(t, func() bool { _, r := h.counts(); return r == 1 })
	setReady(corev1.ConditionTrue)

	// Another holder takes the lease, as a server would (client-go bumps
	// leaseTransitions); the real leader may take it back later.
	intruder := "intruder"
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error { // the leader renews meanwhile
		lease, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, controlplane.LeaderLeaseName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		next := *lease.Spec.LeaseTransitions + 1
		lease.Spec.HolderIdentity, lease.Spec.LeaseTransitions = &intruder, &next
		_, err = client.CoordinationV1().Leases(metav1.NamespaceSystem).Update(ctx, lease, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { l, _ := h.counts(); return l >= 1 })
	if _, r := h.counts(); r != 1 {
		t.Errorf("Ready lost %d times, want 1", r)
	}
}

// waitFor polls cond until it holds, for at most 30s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
