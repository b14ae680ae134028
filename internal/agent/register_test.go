package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/runtime/sim"
	"github.com/drover/drover/internal/testenv"
)

// A node registered anew is created with its status, Ready, and not
// written again at once; a node left by an earlier run gets this run's
// status by a status write.
func TestRegisterWritesTheStatusOnce(t *testing.T) {
	env := testenv.Start(t)
	counter, client := countingClient(t, env)
	cfg := Config{Client: client, NodeStatusInterval: time.Hour}
	r := startAgent(t, env, sim.New(sim.Config{}), cfg)
	node, err := env.Kube.CoreV1().Nodes().Get(context.Background(), "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, c := range node.Status.Conditions {
		ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	}
	if !ready || len(node.Status.Capacity) == 0 || len(node.Status.Addresses) == 0 || node.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
		t.Errorf("registered node's status %+v, want Ready with capacity, addresses and port", node.Status)
	}
	if n := counter.count("PUT /api/v1/nodes/node-1/status "); n != 0 {
		t.Errorf("%d status writes at the registration of a new node, want 0", n)
	}
	r.stop()

	startAgent(t, env, sim.New(sim.Config{}), cfg)
	if n := counter.count("PUT /api/v1/nodes/node-1/status 200"); n != 1 {
		t.Errorf("%d status writes at the registration of an existing node, want 1", n)
	}
}
