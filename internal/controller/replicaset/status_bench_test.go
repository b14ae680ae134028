package replicaset

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/drover/drover/internal/testenv"
)

// syncMeter counts the controller's syncs of one ReplicaSet and the time
// they took.
type syncMeter struct {
	key   string
	syncs atomic.Int64
	took  atomic.Int64 // nanoseconds
}

func (m *syncMeter) observe(key string, took time.Duration) {
	if key == m.key {
		m.syncs.Add(1)
		m.took.Add(int64(took))
	}
}

func (m *syncMeter) reset() { m.syncs.Store(0); m.took.Store(0) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStatusUpdates10000 measures what the controller spends on pod
// status changes of a 10,000-pod ReplicaSet: each iteration flips the
// Ready condition of all 10,000 pods (through the API, 16 writers) and
// waits until status.readyReplicas follows. It reports the ReplicaSet's
// syncs per iteration and per second, the time those syncs took per pod status update
// (sync-ns/update, mostly CPU: each sync walks the ReplicaSet's pods), and
// the whole test process's CPU per update (cpu-ns/update, which includes
// the API server and etcd serving the updates). ns/op is dominated by the
// API server writing 10,000 pods.
func BenchmarkStatusUpdates10000(b *testing.B) {
	const n = 10000
	env := testenv.Start(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	meter := &syncMeter{key: "default/big"}
	wg.Go(func() {
		opts := Options{onSync: meter.observe}
		if err := Run(ctx, env.Kube, testenv.Logger(b), opts); err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	replicas := int32(n)
	l := map[string]string{"app": "big"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	if _, err := env.Kube.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	waitReady := func(replicas, ready int32) {
		testenv.Eventually(b, 10*time.Minute, func() error {
			got, err := env.Kube.AppsV1().ReplicaSets("default").Get(ctx, "big", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.Replicas != replicas || got.Status.ReadyReplicas != ready {
				return fmt.Errorf("replicas %d ready %d, want %d and %d", got.Status.Replicas, got.Status.ReadyReplicas, replicas, ready)
			}
			return nil
		})
	}
	waitReady(n, 0)
	b.Logf("created %d pods in %d syncs", n, meter.syncs.Load())

	var syncs, took, cpu, wall time.Duration
	readyNow := false
	for b.Loop() {
		b.StopTimer()
		list, err := env.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: labels.Set(l).String()})
		if err != nil {
			b.Fatal(err)
		}
		if len(list.Items) != n {
			b.Fatalf("%d pods, want %d", len(list.Items), n)
		}
		readyNow = !readyNow
		status := corev1.ConditionFalse
		if readyNow {
			status = corev1.ConditionTrue
		}
		meter.reset()
		cpu0, begin := cpuTime(), time.Now()
		b.StartTimer()
		work := make(chan *corev1.Pod)
		var writers sync.WaitGroup
		for range 16 {
			writers.Go(func() {
				for p := range work {
					p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
					if _, err := env.Kube.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
						b.Errorf("updating %s: %v", p.Name, err)
					}
				}
			})
		}
		for i := range list.Items {
			work <- &list.Items[i]
		}
		close(work)
		writers.Wait()
		want := int32(0)
		if readyNow {
			want = n
		}
		waitReady(n, want)
		b.StopTimer()
		wall += time.Since(begin)
		cpu += cpuTime() - cpu0
		syncs += time.Duration(meter.syncs.Load())
		took += time.Duration(meter.took.Load())
		b.StartTimer()
	}
	b.ReportMetric(float64(syncs)/float64(b.N), "syncs/op")
	b.ReportMetric(float64(syncs)/wall.Seconds(), "syncs/s")
	b.ReportMetric(float64(took)/float64(n*b.N), "sync-ns/update")
	b.ReportMetric(float64(cpu)/float64(n*b.N), "cpu-ns/update")
}

// BenchmarkSyncPods10000 measures the in-memory part of one sync of a
// 10,000-pod ReplicaSet whose namespace also holds another 10,000-pod
// ReplicaSet: gathering its pods from the informer's index, claiming them
// and computing its status (no API calls: all pods are kept).
func BenchmarkSyncPods10000(b *testing.B) {
	const n = 10000
	mine, other := bigRS("mine", n), bigRS("other", n)
	mine.Spec.Template.Labels = mine.Spec.Selector.MatchLabels
	podIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, controllerUIDIndex: podControllerUIDIndexFunc})
	for i := range n {
		for _, rs := range []*appsv1.ReplicaSet{mine, other} {
			p := podOf(rs, fmt.Sprintf("%s-%d", rs.Name, i), "1")
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			if err := podIndexer.Add(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	c := &controller{podIndexer: podIndexer}
	selector, err := metav1.LabelSelectorAsSelector(mine.Spec.Selector)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := metav1.Now()
	matcher := NewMatcher(selector)
	for b.Loop() {
		pods, err := c.candidatePods(mine)
		if err != nil {
			b.Fatal(err)
		}
		owned, err := c.claim(ctx, mine, matcher, pods)
		if err != nil || len(owned) != n {
			b.Fatalf("%d pods claimed (%v), want %d", len(owned), err, n)
		}
		if st, _ := computeStatus(mine, owned, nil, nil, now, &matcher); st.ReadyReplicas != n || st.FullyLabeledReplicas != n {
			b.Fatalf("ready %d, want %d", st.ReadyReplicas, n)
		}
	}
}
