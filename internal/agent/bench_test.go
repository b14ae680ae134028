package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	goruntime "runtime"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/cri/critest"
	"github.com/drover/drover/internal/runtime/sim"
	"github.com/drover/drover/internal/testenv"
)

// benchmarkStartup creates b.N pods on one agent, each once the one before
// is Ready, and reports the create-to-Ready latency percentiles.
func benchmarkStartup(b *testing.B, env *testenv.Env, mkPod func(i int) *corev1.Pod) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := env.Kube.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	ready := map[string]time.Time{}
	readyCh := make(chan struct{}, 1)
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			p := ev.Object.(*corev1.Pod)
			if podReady(p) != nil {
				continue
			}
			mu.Lock()
			if _, ok := ready[p.Name]; !ok {
				ready[p.Name] = time.Now()
				readyCh <- struct{}{}
			}
			mu.Unlock()
		}
	}()
	b.ResetTimer()
	for i := range b.N {
		p := mkPod(i)
		mu.Lock()
		created[p.Name] = time.Now()
		mu.Unlock()
		if _, err := env.Kube.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-readyCh:
		case <-time.After(time.Minute):
			b.Fatalf("pod %s not Ready within a minute", p.Name)
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	for name, t := range ready {
		lat = append(lat, t.Sub(created[name]))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPodStartupSim measures create-to-Ready on the sim runtime (the
// agent's own overhead plus the API round trips).
func BenchmarkPodStartupSim(b *testing.B) {
	env := testenv.Start(b)
	startAgent(b, env, sim.New(sim.Config{}), Config{Workers: 16})
	benchmarkStartup(b, env, func(i int) *corev1.Pod {
		return simPod(fmt.Sprintf("sim-%d", i), nil)
	})
}

// BenchmarkPodStartupCRI measures create-to-Ready of the web image with a
// readiness probe through containerd. Run with -benchtime=20x.
func BenchmarkPodStartupCRI(b *testing.B) {
	critest.RequireRoot(b)
	cenv := critest.Start(b)
	env := testenv.Start(b)
	var rt runtime.Runtime = cenv.Runtime
	startAgent(b, env, rt, Config{})
	benchmarkStartup(b, env, func(i int) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Namespace: "default"},
			Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{webContainer("web", 8080, "")}},
		}
	})
}

// BenchmarkManySimNodes runs 50 sim agents in one process against one API
// server, each with 10 pods, and reports how long until all 500 pods are
// Ready and the heap per node in steady state.
func BenchmarkManySimNodes(b *testing.B) {
	const nodes, podsPerNode = 50, 10
	for range b.N {
		env := testenv.Start(b)
		var before goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		for n := range nodes {
			startAgent(b, env, sim.New(sim.Config{Subnet: fmt.Sprintf("10.90.%d.0/24", n)}), Config{
				NodeName: fmt.Sprintf("sim-%d", n), HeartbeatInterval: 2 * time.Second, Workers: 2, Logger: quietLogger(),
			})
		}
		start := time.Now()
		for n := range nodes {
			for i := range podsPerNode {
				p := simPod(fmt.Sprintf("p-%d-%d", n, i), nil)
				p.Spec.NodeName = fmt.Sprintf("sim-%d", n)
				createPod(b, env, p)
			}
		}
		testenv.Eventually(b, 5*time.Minute, func() error {
			list, err := env.Kube.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return err
			}
			ready := 0
			for i := range list.Items {
				if podReady(&list.Items[i]) == nil {
					ready++
				}
			}
			if ready < nodes*podsPerNode {
				return fmt.Errorf("%d of %d pods ready", ready, nodes*podsPerNode)
			}
			return nil
		})
		b.ReportMetric(time.Since(start).Seconds(), "s-to-all-ready")
		var after goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/nodes/(1<<20), "heap-MiB/node")
		b.ReportMetric(float64(goruntime.NumGoroutine())/nodes, "goroutines/node")
	}
	b.ReportMetric(0, "ns/op")
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
