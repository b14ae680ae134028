package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover/drover/internal/scheduler"
	"github.com/drover/drover/internal/testenv"
)

// BenchmarkEndToEnd measures the scheduler through a real API server on
// etcd with 1,000 nodes and N pods (100m CPU each, replicas of 10
// ReplicaSets); N is $DROVER_BENCH_PODS (default 10,000).
//
//   - created: from the creation of the first pod (32 concurrent creators,
//     the scheduler running) to the binding of the last; it also reports
//     the creation rate alone, which bounds it.
//   - backlog: all pods exist before the scheduler starts; from its start
//     (informer sync included) to the last binding.
func BenchmarkEndToEnd(b *testing.B) {
	pods := 10000
	if v, err := strconv.Atoi(os.Getenv("DROVER_BENCH_PODS")); err == nil && v > 0 {
		pods = v
	}
	b.Run("created", func(b *testing.B) { benchEndToEnd(b, pods, false) })
	b.Run("backlog", func(b *testing.B) { benchEndToEnd(b, pods, true) })
}

func benchEndToEnd(b *testing.B, pods int, backlog bool) {
	const nodes, creators = 1000, 32
	var boundRate, createRate float64
	b.StopTimer()
	for range b.N {
		env := testenv.Start(b)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		workers, _ := strconv.Atoi(os.Getenv("DROVER_BENCH_WORKERS"))
		run := func() { done <- scheduler.Run(ctx, env.Kube, discard(), scheduler.Options{BindWorkers: workers}) }
		if !backlog {
			go run()
		}
		parallel(nodes, creators, func(i int) {
			createNode(b, env, fmt.Sprintf("node-%04d", i), "32")
		})

		w, err := env.Kube.CoreV1().Pods("default").Watch(context.Background(), metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		allBound := make(chan time.Time, 1)
		go func() {
			bound := map[string]bool{}
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || ev.Type == watch.Deleted || p.Spec.NodeName == "" || bound[p.Name] {
					continue
				}
				bound[p.Name] = true
				if len(bound) == pods {
					allBound <- time.Now()
					return
				}
			}
		}()

		if !backlog {
			b.StartTimer()
		}
		begin := time.Now()
		var failed atomic.Int32
		parallel(pods, creators, func(i int) {
			t := true
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{
					Name: fmt.Sprintf("pod-%05d", i), Namespace: "default",
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: types.UID("rs-" + strconv.Itoa(i%10)), Controller: &t}},
				},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "c", Image: "example.local/web:1.0",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
				}}},
			}
			if _, err := env.Kube.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
				failed.Add(1)
			}
		})
		createRate = float64(pods) / time.Since(begin).Seconds()
		if failed.Load() > 0 {
			b.Fatalf("%d pod creations failed", failed.Load())
		}
		if backlog {
			b.StartTimer()
			begin = time.Now()
			go run()
		}
		var end time.Time
		select {
		case end = <-allBound:
		case <-time.After(10 * time.Minute):
			b.Fatal("pods not all bound within 10 minutes")
		}
		b.StopTimer()
		w.Stop()
		boundRate = float64(pods) / end.Sub(begin).Seconds()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(boundRate, "pods/s")
	if !backlog {
		b.ReportMetric(createRate, "created/s")
	}
	b.ReportMetric(float64(pods), "pods")
}

// parallel runs f(0..n-1) on workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
