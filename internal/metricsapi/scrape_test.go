package metricsapi

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An agent that stops answering loses its points at the next scrape, so
// stale usage is never served; when it answers again they come back.
func TestScrapeDropsPointsOfFailingNode(t *testing.T) {
	var failing atomic.Bool
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats/summary" || failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		now := metav1.Now()
		json.NewEncoder(w).Encode(summary{
			Node: nodeStats{NodeName: "n1", CPU: cpu(now.Time, 1e8, 1e9), Memory: mem(now.Time, 1<<20)},
			Pods: []podStats{{PodRef: podRef{Name: "p", Namespace: "ns", UID: "u"}, Containers: []containerStats{
				{Name: "c", CPU: cpu(now.Time, 1e8, 1e9), Memory: mem(now.Time, 1<<20)}}}},
		})
	}))
	defer agent.Close()
	host, port, _ := net.SplitHostPort(agent.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "ignored"}, {Type: corev1.NodeInternalIP, Address: host}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(p)}},
	}}
	if u, err := SummaryURL(node); err != nil || u != "http://"+agent.Listener.Addr().String()+"/stats/summary" {
		t.Fatalf("SummaryURL = %q, %v", u, err)
	}
	s := New(nil, nil, Options{Interval: time.Second})
	ctx := context.Background()
	has := func() (node, pod bool) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		_, node = s.nodePts["n1"]
		_, pod = s.podPts["n1"][podKey{"ns", "p"}]
		return node, pod
	}
	s.scrapeNode(ctx, node)
	if n, p := has(); !n || !p {
		t.Fatalf("after a good scrape: node %v pod %v", n, p)
	}
	failing.Store(true)
	s.scrapeNode(ctx, node)
	if n, p := has(); n || p {
		t.Fatalf("after a failed scrape: node %v pod %v, want both gone", n, p)
	}
	failing.Store(false)
	s.scrapeNode(ctx, node)
	if n, p := has(); !n || !p {
		t.Fatalf("after recovery: node %v pod %v", n, p)
	}
	// A node that left the cluster is forgotten.
	s.forgetGoneNodes(nil)
	if n, p := has(); n || p || len(s.cumulated) != 0 {
		t.Errorf("after the node left: node %v pod %v samples %d", n, p, len(s.cumulated))
	}
	if _, err := SummaryURL(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}); err == nil {
		t.Error("SummaryURL of a node without an endpoint: want an error")
	}
}

func TestIntervalFor(t *testing.T) {
	for _, c := range []struct {
		nodes int
		want  time.Duration
	}{
		{0, 5 * time.Second}, {1, 5 * time.Second}, {100, 5 * time.Second},
		{500, 25 * time.Second}, {1000, 50 * time.Second}, {5000, time.Minute},
	} {
		if got := IntervalFor(5*time.Second, c.nodes); got != c.want {
			t.Errorf("IntervalFor(5s, %d) = %v, want %v", c.nodes, got, c.want)
		}
	}
}
