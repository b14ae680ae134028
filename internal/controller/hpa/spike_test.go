package hpa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/controller/hpa"
	"github.com/drover/drover/internal/metricsapi"
	"github.com/drover/drover/internal/testenv"
)

// scriptedAgent serves /stats/summary for the pods bound to its node,
// each using the CPU the test sets, accumulated over time as a real
// agent's counters are. It stands in for the agent where the test needs
// the load of running pods to change (the sim runtime fixes a
// container's load when it starts).
type scriptedAgent struct {
	env  *testenv.Env
	node string

	mu       sync.Mutex
	milliCPU int64
	last     time.Time
	cum      map[string]uint64 // core-ns by pod name
}

func (a *scriptedAgent) setLoad(milliCPU int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.advanceLocked(time.Now())
	a.milliCPU = milliCPU
}

func (a *scriptedAgent) advanceLocked(now time.Time) {
	if !a.last.IsZero() {
		for name := range a.cum {
			a.cum[name] += uint64(a.milliCPU) * uint64(now.Sub(a.last).Nanoseconds()) / 1000
		}
	}
	a.last = now
}

func (a *scriptedAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pods, err := a.env.Kube.CoreV1().Pods("").List(r.Context(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + a.node})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	now := time.Now()
	a.advanceLocked(now)
	type stats = map[string]any
	var podStats []stats
	for _, p := range pods.Items {
		if _, ok := a.cum[p.Name]; !ok {
			a.cum[p.Name] = 0
		}
		cpu := stats{"time": now, "usageNanoCores": a.milliCPU * 1e6, "usageCoreNanoSeconds": a.cum[p.Name]}
		mem := stats{"time": now, "workingSetBytes": 64 << 20}
		podStats = append(podStats, stats{
			"podRef":     stats{"name": p.Name, "namespace": p.Namespace, "uid": string(p.UID)},
			"containers": []stats{{"name": "app", "startTime": p.CreationTimestamp, "cpu": cpu, "memory": mem}},
		})
	}
	a.mu.Unlock()
	json.NewEncoder(w).Encode(stats{"node": stats{"nodeName": a.node}, "pods": podStats})
}

// TestScalesUpOnLoadOfRunningPods measures the reaction to a traffic
// spike on pods that have long been running (no initialization period in
// the way), with the default metric resolution and sync period.
func TestScalesUpOnLoadOfRunningPods(t *testing.T) {
	t.Parallel() // mostly waiting on 5s periods
	up, down := spike(t)
	t.Logf("load rise on running pods to first scale-up: %.1fs; load drop to scale-down: %.1fs (10s window)", up.Seconds(), down.Seconds())
}

// BenchmarkSpike reports, for pods long running, the seconds from a load
// rise to the first scale-up and from a load drop to the scale-down (10s
// window). Run with -benchtime=1x.
func BenchmarkSpike(b *testing.B) {
	var up, down time.Duration
	for range b.N {
		u, d := spike(b)
		up, down = up+u, down+d
	}
	b.ReportMetric(up.Seconds()/float64(b.N), "s-to-scale-up")
	b.ReportMetric(down.Seconds()/float64(b.N), "s-to-scale-down")
}

func spike(t testing.TB) (upAfter, downAfter time.Duration) {
	env := testenv.Start(t)
	ctx := context.Background()
	log := testenv.Logger(t)
	agent := &scriptedAgent{env: env, node: "node-x", milliCPU: 100, cum: map[string]uint64{}}
	asrv := httptest.NewServer(agent)
	t.Cleanup(asrv.Close)
	_, port, _ := net.SplitHostPort(asrv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	node, err := env.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-x"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(p)
	if _, err := env.Kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Two pods, running and ready for an hour, requesting 200m and
	// using 100m (50%). No ReplicaSet controller: the test watches the
	// ReplicaSet's scale only.
	two := int32(2)
	labels := map[string]string{"app": "api"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{NodeName: "node-x", Containers: []corev1.Container{{Name: "app", Image: "example.local/api:1",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}}}}},
	}
	if _, err := env.Kube.AppsV1().ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
		Spec:       appsv1.ReplicaSetSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hourAgo := metav1.NewTime(time.Now().Add(-time.Hour))
	for i := range 2 {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("api-%d", i), Namespace: "default", Labels: labels}, Spec: template.Spec}
		pod, err := env.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &hourAgo, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: hourAgo}}}
		if _, err := env.Kube.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	metrics := metricsapi.New(env.Kube, log, metricsapi.Options{})
	run(t, "metrics", metrics.Run)
	msrv := httptest.NewServer(metrics.Handler())
	t.Cleanup(msrv.Close)
	source, err := hpa.NewAPIMetrics(&rest.Config{Host: msrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "hpa", func(ctx context.Context) error {
		return hpa.Run(ctx, env.Kube, env.Config, log, hpa.Options{Metrics: source, DownscaleStabilization: 10 * time.Second})
	})
	one, fifty := int32(1), int32(50)
	if _, err := env.Kube.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "api"},
			MinReplicas:    &one, MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &fifty},
			}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	scale := func() int32 {
		rs, err := env.Kube.AppsV1().ReplicaSets("default").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *rs.Spec.Replicas
	}
	// Steady at 50% (a rate from two scrapes, so a full window).
	testenv.Eventually(t, 30*time.Second, func() error {
		h, err := env.Kube.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(h.Status.CurrentMetrics) == 0 || h.Status.CurrentMetrics[0].Resource == nil {
			return fmt.Errorf("no metrics in status yet")
		}
		if u := *h.Status.CurrentMetrics[0].Resource.Current.AverageUtilization; u < 48 || u > 52 {
			return fmt.Errorf("utilization %d%%", u)
		}
		return nil
	})
	if n := scale(); n != 2 {
		t.Fatalf("replicas = %d at target, want 2", n)
	}

	// The spike: 400m per pod, 200%.
	start := time.Now()
	agent.setLoad(400)
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := scale(); n <= 2 {
			return fmt.Errorf("replicas = %d", n)
		}
		return nil
	})
	upAfter = time.Since(start)
	// Two pods at 200% of a 50% target ask for 8; the legacy rate limit
	// (double, at least 4) gets there in two steps.
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := scale(); n != 8 {
			return fmt.Errorf("replicas = %d, want 8", n)
		}
		return nil
	})

	// The spike ends: 20m per pod (10%); the two pods are all there are
	// (no ReplicaSet controller), so the HPA wants ceil(2 × 0.2) = 1.
	start = time.Now()
	agent.setLoad(20)
	testenv.Eventually(t, 40*time.Second, func() error {
		if n := scale(); n != 1 {
			return fmt.Errorf("replicas = %d", n)
		}
		return nil
	})
	downAfter = time.Since(start)
	return upAfter, downAfter
}
