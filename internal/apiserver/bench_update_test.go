package apiserver_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// benchEnv is what a benchmark function runs against.
type benchEnv struct {
	client kubernetes.Interface
	ns     string
	// podsSeen is the resourceVersion of the last pod event an in-process
	// watcher of ns received; nil without a watcher.
	podsSeen *atomic.Int64
}

// podsWatched waits until the pod watcher, if any, has received the event
// of resourceVersion rv, so that the watch memo holds the object written.
func (e benchEnv) podsWatched(b *testing.B, rv string) {
	if e.podsSeen == nil {
		return
	}
	want, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.podsSeen.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("pod watcher at %d, want %d", e.podsSeen.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// benchServers runs fn on an API server over etcd alone and on one behind
// the watch cache, as the control plane runs it; with watchPods, also on one
// behind the cache with an in-process watcher of the namespace's pods, as
// the control plane's informers watch them (the watcher decodes each pod
// once, and writes may start from that object).
// It reports the process's CPU time per operation (client, server and the
// in-process etcd together) and, behind the cache, etcd Gets per operation.
func benchServers(b *testing.B, watchPods bool, fn func(b *testing.B, env benchEnv)) {
	modes := []string{"etcd", "cacher"}
	if watchPods {
		modes = append(modes, "cacher-watched")
	}
	for _, name := range modes {
		cached := name != "etcd"
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
			env := benchEnv{client: ts.client, ns: ns}
			if name == "cacher-watched" {
				env.podsSeen = watchPodsLocally(b, ts, ns)
			}
			var gets0 int64
			var cpu0 time.Duration
			onReset = func() {
				cpu0 = processCPU(b)
				if gated != nil {
					gets0 = gated.gets.Load()
				}
			}
			fn(b, env)
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			if gated != nil {
				b.ReportMetric(float64(gated.gets.Load()-gets0)/float64(b.N), "etcd-gets/op")
			}
		})
	}
}

// watchPodsLocally starts an in-process watch of ns's pods that takes every
// event until the benchmark ends, and returns the resourceVersion of the
// last one taken.
func watchPodsLocally(b *testing.B, ts *testServer, ns string) *atomic.Int64 {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := ts.server.Watch(ctx, podsGVR, ns, metav1.ListOptions{})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	seen := new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if acc, err := meta.Accessor(ev.Object); err == nil {
				rv, _ := strconv.ParseInt(acc.GetResourceVersion(), 10, 64)
				seen.Store(rv)
			}
		}
	}()
	b.Cleanup(func() {
		w.Stop()
		cancel()
		<-done
	})
	return seen
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
	benchServers(b, false, func(b *testing.B, env benchEnv) {
		ctx := context.Background()
		cms := env.client.CoreV1().ConfigMaps(env.ns)
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
// resourceVersion, as a kubelet makes them, watched as the control plane's
// informers watch pods in cacher-watched.
func BenchmarkUpdateStatus(b *testing.B) {
	benchServers(b, true, func(b *testing.B, env benchEnv) {
		ctx := context.Background()
		pods := env.client.CoreV1().Pods(env.ns)
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
		env.podsWatched(b, objs[len(objs)-1].ResourceVersion)
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

// BenchmarkBind measures a pods/binding of an unbound pod, as the
// scheduler makes them, watched as the control plane's informers watch
// pods in cacher-watched.
func BenchmarkBind(b *testing.B) {
	benchServers(b, true, func(b *testing.B, env benchEnv) {
		ctx := context.Background()
		pods := env.client.CoreV1().Pods(env.ns)
		var last string
		for i := 0; i < b.N; i++ {
			pod, err := pods.Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Labels: map[string]string{"app": "bench"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			last = pod.ResourceVersion
		}
		env.podsWatched(b, last)
		b.ReportAllocs()
		b.ResetTimer()
		onReset()
		for i := 0; i < b.N; i++ {
			bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i)}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}
			if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateInNamespace measures a ConfigMap create, whose namespace
// must exist and not be terminating.
func BenchmarkCreateInNamespace(b *testing.B) {
	benchServers(b, false, func(b *testing.B, env benchEnv) {
		ctx := context.Background()
		cms := env.client.CoreV1().ConfigMaps(env.ns)
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
