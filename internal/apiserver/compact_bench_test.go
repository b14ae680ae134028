package apiserver_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/bench"
	"github.com/drover/drover/internal/registry"
)

// benchPod is pod i of the bench as stored once running: the bench
// Deployment's template, defaulted and admitted as a create is, owned by
// one of 30 ReplicaSets, bound to one of 1000 nodes, with the status the
// node agent writes (five conditions, one container status, the host's and
// the pod's IPs).
func benchPod(pods *registry.Resource, i int) *corev1.Pod {
	const deployments, nodes = 30, 1000
	d, node := i%deployments, i%nodes
	tmpl := bench.Deployment("bench", d, 1).Spec.Template
	hash := fmt.Sprintf("%x", 0x5d8f7c9b6d+d)
	rs := fmt.Sprintf("bench-%d-%s", d, hash)
	labels := maps.Clone(tmpl.Labels)
	labels["pod-template-hash"] = hash
	yes := true
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%05x", rs, i), GenerateName: rs + "-", Namespace: "bench",
			UID:               types.UID(fmt.Sprintf("%08x-1111-4222-8333-%012x", i, i)),
			CreationTimestamp: created, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs,
				UID:        types.UID(fmt.Sprintf("%08x-aaaa-4bbb-8ccc-%012x", d, d)),
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: tmpl.Spec,
	}
	pods.Default(pod)
	pods.PrepareForCreate(pod)
	pod.Spec.NodeName = fmt.Sprintf("node-%d", node)
	hostIP := fmt.Sprintf("10.1.%d.%d", node/250, node%250+1)
	podIP := fmt.Sprintf("10.244.%d.%d", i/250%256, i%250+1)
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: created}
	}
	started := created
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodReadyToStartContainers), cond(corev1.PodInitialized), cond(corev1.PodReady),
			cond(corev1.ContainersReady), cond(corev1.PodScheduled),
		},
		HostIP: hostIP, HostIPs: []corev1.HostIP{{IP: hostIP}},
		PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		StartTime: &started,
		QOSClass:  pod.Status.QOSClass,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Image: tmpl.Spec.Containers[0].Image, ImageID: tmpl.Spec.Containers[0].Image,
			ContainerID: fmt.Sprintf("sim://%016x", 2*i+1),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: created}},
			Ready:       true, Started: &yes,
		}},
	}
	return pod
}

func storedPodsResource(tb testing.TB) *registry.Resource {
	for _, r := range registry.All() {
		if r.GroupVersion.Group == "" && r.Plural == "pods" {
			return r
		}
	}
	tb.Fatal("no pods resource in the registry")
	return nil
}

// benchStoredPods returns n bench pods as stored.
func benchStoredPods(tb testing.TB, store *apiserver.PodStore, n int) [][]byte {
	pods := storedPodsResource(tb)
	values := make([][]byte, n)
	for i := range values {
		v, err := store.Encode(benchPod(pods, i))
		if err != nil {
			tb.Fatal(err)
		}
		values[i] = v
	}
	return values
}

// retainedPerPod decodes every value and returns the heap they keep
// alive, per pod, intern tables included.
func retainedPerPod(tb testing.TB, values [][]byte, shared bool) float64 {
	store := apiserver.NewPodStore()
	keep := make([]any, len(values))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, v := range values {
		obj, err := store.Decode(v, shared)
		if err != nil {
			tb.Fatal(err)
		}
		keep[i] = obj
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	runtime.KeepAlive(store)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(len(values))
}

// BenchmarkDecodePod decodes bench pods as a plain read does and as the
// watch memo does (compacted), reporting the heap each decoded pod keeps
// alive (retained-B/pod, over 6000 pods) and the cost of one decode.
func BenchmarkDecodePod(b *testing.B) {
	const n = 6000
	values := benchStoredPods(b, apiserver.NewPodStore(), n)
	for _, c := range []struct {
		name   string
		shared bool
	}{{"plain", false}, {"compact", true}} {
		b.Run(c.name, func(b *testing.B) {
			retained := retainedPerPod(b, values, c.shared)
			store := apiserver.NewPodStore()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := store.Decode(values[i%n], c.shared); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(retained, "retained-B/pod")
		})
	}
}

// TestLocalWatchPodsShareMaps: the pods an in-process watch receives are the
// watch memo's, compacted: two pods with the same labels and requests share
// one map of each, and hold what a client reads.
func TestLocalWatchPodsShareMaps(t *testing.T) {
	ts := newCachedTestServer(t)
	ns := ts.namespace(t, uniqueNamespace("compact"))
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods(ns)
	w, err := ts.server.Watch(ctx, podsGVR, ns, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	tmpl := bench.Deployment(ns, 0, 2).Spec.Template
	for _, name := range []string{"a", "b"} {
		if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: maps.Clone(tmpl.Labels)}, Spec: *tmpl.Spec.DeepCopy()}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []*corev1.Pod
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case ev := <-w.ResultChan():
			if pod, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
				got = append(got, pod)
			}
		case <-timeout:
			t.Fatalf("timed out with %d pods", len(got))
		}
	}
	id := func(m any) uintptr { return reflect.ValueOf(m).Pointer() }
	requests := func(p *corev1.Pod) corev1.ResourceList { return p.Spec.Containers[0].Resources.Requests }
	if id(got[0].Labels) != id(got[1].Labels) || id(requests(got[0])) != id(requests(got[1])) {
		t.Errorf("pods %s and %s from the watch do not share their equal labels and requests", got[0].Name, got[1].Name)
	}
	read, err := pods.Get(ctx, got[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(read.Labels, got[0].Labels) || !apiequality.Semantic.DeepEqual(requests(read), requests(got[0])) {
		t.Errorf("pod %s as read: labels %v requests %v; from the watch: %v %v", read.Name, read.Labels, requests(read), got[0].Labels, requests(got[0]))
	}
}
