package bench

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
)

// BenchmarkEndToEnd runs the whole path in CI size: a control plane in
// process, 50 simulated nodes sharing one pod watch, one Deployment of
// 1,000 pods, until every pod is Ready. Each iteration is a fresh cluster.
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./internal/bench
func BenchmarkEndToEnd(b *testing.B) {
	for range b.N {
		res, err := Run(context.Background(), Config{
			Nodes: 50, Pods: 1000, Timeout: 5 * time.Minute,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Seconds, "s-to-all-ready")
		b.ReportMetric(res.PodsPerSec, "pods/s")
		b.ReportMetric(res.SchedulerPodsPerSec, "sched-pods/s")
		b.ReportMetric(res.Startup.P99*1000, "startup-p99-ms")
		b.ReportMetric(res.WorkloadCPUSeconds*1000/float64(res.Pods), "cpu-ms/pod")
		if put, ok := res.API["PUT"]; ok {
			b.ReportMetric(put.P99*1000, "put-p99-ms")
		}
	}
	b.ReportMetric(0, "ns/op")
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		pods, n int
		want    []int
	}{
		{10, 1, []int{10}},
		{10, 3, []int{4, 3, 3}},
		{3, 3, []int{1, 1, 1}},
	} {
		got := Split(tc.pods, tc.n)
		sum := 0
		for i, v := range got {
			sum += v
			if v != tc.want[i] {
				t.Errorf("Split(%d, %d) = %v, want %v", tc.pods, tc.n, got, tc.want)
				break
			}
		}
		if sum != tc.pods {
			t.Errorf("Split(%d, %d) sums to %d", tc.pods, tc.n, sum)
		}
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	c := Config{}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Nodes != DefaultNodes || c.Pods != DefaultPods || c.Fleet != FleetInProcess || c.Namespace != DefaultNamespace {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []Config{{Pods: 2, Deployments: 3}, {Fleet: "elsewhere"}} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestPercentiles(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100 .. 1, unsorted
	}
	p := percentiles(xs)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("percentiles = %+v, want 50/90/99/100", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("percentiles of nothing are not zero")
	}
}

func TestRunSmallCluster(t *testing.T) {
	var started bool
	res, err := Run(context.Background(), Config{
		Nodes: 3, Pods: 20, Deployments: 2, Timeout: 2 * time.Minute,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Started: func(*rest.Config) { started = true },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !started {
		t.Error("Started was not called")
	}
	if res.Pods != 20 || res.Seconds <= 0 || res.PodsPerSec <= 0 || res.SchedulerPodsPerSec <= 0 {
		t.Errorf("result %+v", res)
	}
	if res.Startup.P50 <= 0 || res.Startup.P99 < res.Startup.P50 || res.Startup.Max < res.Startup.P99 {
		t.Errorf("startup percentiles %+v", res.Startup)
	}
	if post := res.API["POST"]; post.Count < 40 { // 20 pods and 20 bindings at least
		t.Errorf("API POST count %v, want at least 40", post.Count)
	}
	if res.PeakRSS <= 0 || res.EtcdDBSize <= 0 || res.CPUSeconds <= 0 {
		t.Errorf("RSS %d, etcd %d, CPU %v", res.PeakRSS, res.EtcdDBSize, res.CPUSeconds)
	}
	// A healthy run: the controllers kept their leader, the nodes stayed Ready.
	if res.LeaderChanges != 0 || res.NodeReadyLost != 0 {
		t.Errorf("leader changes %d, node Ready lost %d; want 0 and 0", res.LeaderChanges, res.NodeReadyLost)
	}
	if res.NodeMonitorGraceSeconds != 10 || res.LeaderLeaseSeconds != 15 || res.LeaderRenewSeconds != 10 || res.LeaderRetrySeconds != 2 {
		t.Errorf("timings: grace %v, lease %v/%v/%v; want 10 (5 × 2s heartbeats), 15/10/2", res.NodeMonitorGraceSeconds,
			res.LeaderLeaseSeconds, res.LeaderRenewSeconds, res.LeaderRetrySeconds)
	}
	var buf strings.Builder
	res.WriteTable(&buf)
	if !strings.Contains(buf.String(), "node monitor grace 10s, leader lease 15s renew 10s retry 2s") || !strings.Contains(buf.String(), "leader changes") {
		t.Errorf("table:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "pods/s") || !strings.Contains(buf.String(), "API POST") {
		t.Errorf("table:\n%s", buf.String())
	}
}

func TestHeartbeatFor(t *testing.T) {
	for _, c := range []struct {
		nodes int
		limit time.Duration
		want  time.Duration
	}{
		{1, UpstreamHeartbeatInterval, 2 * time.Second}, {100, UpstreamHeartbeatInterval, 2 * time.Second},
		{250, UpstreamHeartbeatInterval, 5 * time.Second}, {500, UpstreamHeartbeatInterval, 10 * time.Second},
		{5000, UpstreamHeartbeatInterval, 10 * time.Second},
		{100, MaxHeartbeatInterval, 2 * time.Second}, {125, MaxHeartbeatInterval, 2500 * time.Millisecond},
		{500, MaxHeartbeatInterval, 3 * time.Second},
	} {
		if got := HeartbeatFor(c.nodes, c.limit); got != c.want {
			t.Errorf("HeartbeatFor(%d, %v) = %v, want %v", c.nodes, c.limit, got, c.want)
		}
	}
}

func TestSummarizeUnready(t *testing.T) {
	ready := corev1.Pod{Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	pending := corev1.Pod{Spec: corev1.PodSpec{NodeName: "n2"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
	pending.Name = "p1"
	if got := summarizeUnready([]corev1.Pod{ready}); got != "" {
		t.Errorf("all Ready: got %q, want nothing", got)
	}
	got := summarizeUnready([]corev1.Pod{ready, pending, pending})
	for _, want := range []string{"on 1 nodes", `2 "Pending, no Ready condition"`, `p1 on "n2"`} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}
