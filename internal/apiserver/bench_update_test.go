package apiserver_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// benchServers runs fn on an API server over etcd alone and on one behind
// the watch cache, as the control plane runs it.
// It reports the process's CPU time per operation (client, server and the
// in-process etcd together) and, behind the cache, etcd Gets per operation.
func benchServers(b *testing.B, fn func(b *testing.B, client kubernetes.Interface, ns string)) {
	for _, cached := range []bool{false, true} {
		name := map[bool]string{false: "etcd", true: "cacher"}[cached]
		b.Run(name, func(b *testing.B) {
			var ts *testServer
			var cts *cachedTestServer
			var gated *gatedStore
			if cached {
				cts = newCachedTestServer(b)
				ts, gated = cts.testServer, cts.gated
			} else {
				ts = newTestServer(b)
			}
			ns := ts.namespace(b, fmt.Sprintf("bench-upd-%s-%d", name, benchRuns.Add(1)))
			if cached {
				// Timed creates should find it in the cache.
				nsObj, err := ts.client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
				if err != nil {
					b.Fatal(err)
				}
				cts.waitCached(b, "/registry/core/namespaces/"+ns, nsObj.ResourceVersion)
			}
			var gets0 int64
			var cpu0 time.Duration
			onReset = func() {
				cpu0 = processCPU(b)
				if gated != nil {
					gets0 = gated.gets.Load()
				}
			}
			fn(b, ts.client, ns)
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			if gated != nil {
				b.ReportMetric(float64(gated.gets.Load()-gets0)/float64(b.N), "etcd-gets/op")
			}
		})
	}
}

// onReset is called by the benchmark function when its timed loop starts.
var onReset func()

// processCPU returns the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRuns numbers the benchmarks' namespaces: each run needs a new one.
var benchRuns atomic.Int64

// benchObjects is how many objects an update benchmark writes in turn, so
// that each update's resourceVersion is the one a watch cache has seen, as
// for controllers and kubelets that update from their informers.
const benchObjects = 200

// BenchmarkUpdate measures a PUT of a ~1 KiB ConfigMap with its latest
// resourceVersion.
func BenchmarkUpdate(b *testing.B) {
	benchServers(b, func(b *testing.B, client kubernetes.Interface, ns string) {
		ctx := context.Background()
		cms := client.CoreV1().ConfigMaps(ns)
		objs := make([]*corev1.ConfigMap, benchObjects)
		for i := range objs {
			cm, err := cms.Create(ctx, benchConfigMap(fmt.Sprintf("u-%d", i)), metav1.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			objs[i] = cm
		}
		b.ReportAllocs()
		b.ResetTimer()
		onReset()
		for i := 0; i < b.N; i++ {
			cm := objs[i%len(objs)]
			cm.Data["n"] = fmt.Sprint(i)
			updated, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			objs[i%len(objs)] = updated
		}
	})
}

// BenchmarkUpdateStatus measures a pod status write with the latest
// resourceVersion, as a kubelet makes them.
func BenchmarkUpdateStatus(b *testing.B) {
	benchServers(b, func(b *testing.B, client kubernetes.Interface, ns string) {
		ctx := context.Background()
		pods := client.CoreV1().Pods(ns)
		objs := make([]*corev1.Pod, benchObjects)
		for i := range objs {
			pod, err := pods.Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Labels: map[string]string{"app": "bench"}},
				Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			objs[i] = pod
		}
		b.ReportAllocs()
		b.ResetTimer()
		onReset()
		for i := 0; i < b.N; i++ {
			pod := objs[i%len(objs)]
			pod.Status.Phase = corev1.PodRunning
			pod.Status.Message = fmt.Sprint(i)
			updated, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			objs[i%len(objs)] = updated
		}
	})
}

// BenchmarkCreateInNamespace measures a ConfigMap create, whose namespace
// must exist and not be terminating.
func BenchmarkCreateInNamespace(b *testing.B) {
	benchServers(b, func(b *testing.B, client kubernetes.Interface, ns string) {
		ctx := context.Background()
		cms := client.CoreV1().ConfigMaps(ns)
		b.ReportAllocs()
		b.ResetTimer()
		onReset()
		for i := 0; i < b.N; i++ {
			if _, err := cms.Create(ctx, benchConfigMap(fmt.Sprintf("c-%d", i)), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
