package simfleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/testenv"
)

func TestFleetRegistersNodesAndRunsPods(t *testing.T) {
	for _, perNode := range []bool{false, true} {
		t.Run(fmt.Sprintf("WatchPerNode=%v", perNode), func(t *testing.T) { testFleet(t, perNode) })
	}
}

func testFleet(t *testing.T, perNode bool) {
	env := testenv.Start(t)
	// The client the fleet command makes: no rate limiter, coalesced writes.
	client, err := kubernetes.NewForConfig(RESTConfig(env.Config))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Nodes: 3, NamePrefix: "fleet-", Client: client, DataDir: t.TempDir(), WatchPerNode: perNode,
			HeartbeatInterval: 200 * time.Millisecond,
			Ready:             func(n []string) { ready <- n },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case names := <-ready:
		if len(names) != 3 || names[2] != "fleet-2" {
			t.Fatalf("Ready got %v, want fleet-0..fleet-2", names)
		}
	case err := <-done:
		t.Fatalf("Run returned before Ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("fleet not ready within a minute")
	}

	for i := range 3 {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, NodeName("fleet-", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Status.Capacity[corev1.ResourcePods]; got.Value() != DefaultPods {
			t.Errorf("%s pods capacity %s, want %d", n.Name, got.String(), DefaultPods)
		}
		if got := n.Status.Capacity[corev1.ResourceCPU]; got.String() != DefaultCPU {
			t.Errorf("%s cpu capacity %s, want %s", n.Name, got.String(), DefaultCPU)
		}
		if _, err := env.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("lease of %s: %v", n.Name, err)
		}
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: "fleet-1", Containers: []corev1.Container{{Name: "app", Image: "example.local/app:1"}}},
	}
	if _, err := env.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, env, "p", "10.64.1.")
	// The node said so as a kubelet does, through the fleet's one event
	// broadcaster.
	testenv.Eventually(t, 30*time.Second, func() error {
		evs, err := eventsAbout(ctx, env, "default", "p")
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.Reason == "Started" && e.Source == (corev1.EventSource{Component: "kubelet", Host: "fleet-1"}) && e.Message == "Started container app" {
				return nil
			}
		}
		return fmt.Errorf("no Started event from kubelet on fleet-1 among %d events about p", len(evs))
	})

	// A pod created unbound and bound later, as the scheduler binds: it
	// enters the fleet's watch of bound pods then.
	pod = &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.local/app:1"}}},
	}
	if _, err := env.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: "default"},
		Target:     corev1.ObjectReference{Kind: "Node", Name: "fleet-2"},
	}
	if err := env.Kube.CoreV1().Pods("default").Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, env, "later", "10.64.2.")
}

// waitRunning waits for pod name to be Running and Ready with an IP
// starting with ipPrefix (its node's subnet).
func waitRunning(t *testing.T, env *testenv.Env, name, ipPrefix string) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 30*time.Second, func() error {
		p, err := env.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %q", p.Status.Phase)
		}
		if !strings.HasPrefix(p.Status.PodIP, ipPrefix) {
			return fmt.Errorf("pod IP %q, want one in %s0/24", p.Status.PodIP, ipPrefix)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not Ready")
	})
}

func TestConfigRejectsBadSizes(t *testing.T) {
	for _, n := range []int{0, -1, MaxNodes + 1} {
		if err := Run(context.Background(), Config{Nodes: n}); err == nil {
			t.Errorf("Run with %d nodes: no error", n)
		}
	}
}

func TestSubnetsAreDistinct(t *testing.T) {
	seen := map[string]int{}
	for i := range MaxNodes {
		s := Subnet(i)
		if j, ok := seen[s]; ok {
			t.Fatalf("nodes %d and %d share subnet %s", j, i, s)
		}
		seen[s] = i
	}
	if got := Subnet(MaxNodes - 1); got != "10.127.255.0/24" {
		t.Errorf("last subnet %s, want 10.127.255.0/24", got)
	}
}

// A node's Lease says it is alive: the fleet renews Leases every heartbeat
// but rewrites an unchanged Node status only every NodeStatusInterval.
func TestFleetRenewsLeasesWithoutRewritingNodeStatus(t *testing.T) {
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Nodes: 2, NamePrefix: "calm-", Client: env.Kube, DataDir: t.TempDir(),
			HeartbeatInterval: 100 * time.Millisecond,
			Ready:             func(n []string) { ready <- n },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before Ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("fleet not ready within a minute")
	}
	// Each node has registered and renewed its Lease once: remember its
	// Node's resourceVersion and Lease's renewTime.
	nodeRV := map[string]string{}
	renewed := map[string]time.Time{}
	testenv.Eventually(t, 30*time.Second, func() error {
		for i := range 2 {
			name := NodeName("calm-", i)
			l, err := env.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			nodeRV[name], renewed[name] = n.ResourceVersion, l.Spec.RenewTime.Time
		}
		return nil
	})
	// Ten heartbeats later every Lease has been renewed again...
	testenv.Eventually(t, 30*time.Second, func() error {
		for name, first := range renewed {
			l, err := env.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if l.Spec.RenewTime.Time.Sub(first) < 10*100*time.Millisecond {
				return fmt.Errorf("lease %s renewed %v after the first look, want a second", name, l.Spec.RenewTime.Time.Sub(first))
			}
		}
		return nil
	})
	// ...and no Node was written meanwhile.
	for name, rv := range nodeRV {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.ResourceVersion != rv {
			t.Errorf("node %s written during ten heartbeats of an unchanged node (resourceVersion %s -> %s)", name, rv, n.ResourceVersion)
		}
	}
}
