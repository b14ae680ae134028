package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func resources(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

// compactTestPods are pods of varied shapes, conditions appended one by one
// as a status grows them.
func compactTestPods() []*corev1.Pod {
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid"}}
	withStatus := func(p *corev1.Pod) *corev1.Pod {
		for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, Reason: "R"})
		}
		p.Status.HostIP, p.Status.PodIP, p.Status.Phase = "10.0.0.1", "10.244.0.9", corev1.PodRunning
		p.Status.HostIPs = []corev1.HostIP{{IP: "10.0.0.1"}}
		p.Status.PodIPs = []corev1.PodIP{{IP: "10.244.0.9"}, {IP: "fd00::9"}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "a", Image: "img", Ready: true,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
		return p
	}
	return []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: "ns"}},
		withStatus(&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "requests", Namespace: "ns", GenerateName: "rs-", Labels: map[string]string{"app": "x", "pod-template-hash": "h"}, OwnerReferences: owner},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "a", Image: "img",
				Resources: corev1.ResourceRequirements{Requests: resources("cpu", "10m", "memory", "16Mi")}}}},
		}),
		withStatus(&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "limits", Namespace: "ns", Labels: map[string]string{"app": "y"}, Finalizers: []string{"f/a", "f/b", "f/c"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: resources("cpu", "1000m")}}},
				Containers: []corev1.Container{
					{Name: "a", Image: "img", Resources: corev1.ResourceRequirements{Requests: resources("cpu", "1", "memory", "1Gi"), Limits: resources("cpu", "2", "memory", "1Gi", "example.com/gpu", "1")},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP}, {ContainerPort: 81}, {ContainerPort: 82}}},
					{Name: "b", Image: "sidecar"},
					{Name: "c", Image: "sidecar", Resources: corev1.ResourceRequirements{Requests: resources("memory", "0")}},
				},
				Overhead:     resources("cpu", "250m"),
				NodeSelector: map[string]string{"zone": "a"},
				Tolerations:  []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}, {Key: "a"}, {Key: "b"}},
			},
		}),
	}
}

// TestCompactedPodsDecodeUnchanged: a pod decoded for the watch memo is
// equal to a plain decode of it and encodes to the same bytes, whatever its
// shape, and its slices have no spare capacity.
func TestCompactedPodsDecodeUnchanged(t *testing.T) {
	pods := podsResource(t)
	var o objectStore
	for round := range 2 { // the second finds every map and string kept
		for _, pod := range compactTestPods() {
			value, err := o.encode(pods, pod)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := o.decode(pods, value, 3)
			if err != nil {
				t.Fatal(err)
			}
			shared, err := o.decodeShared(pods, value, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(plain, shared) {
				t.Errorf("round %d: pod %s compacted differs from its plain decode:\n%v\n%v", round, pod.Name, plain, shared)
			}
			for _, enc := range []func(any) ([]byte, error){
				json.Marshal,
				func(obj any) ([]byte, error) { return encodeProtobuf(obj.(*corev1.Pod)) },
			} {
				a, errA := enc(plain)
				b, errB := enc(shared)
				if errA != nil || errB != nil || !bytes.Equal(a, b) {
					t.Errorf("round %d: pod %s encodes to\n%s (%v), compacted to\n%s (%v)", round, pod.Name, a, errA, b, errB)
				}
			}
			if c := shared.(*corev1.Pod).Status.Conditions; cap(c) != len(c) {
				t.Errorf("pod %s: conditions have capacity %d for %d", pod.Name, cap(c), len(c))
			}
		}
	}
}

func mapID(m any) uintptr { return reflect.ValueOf(m).Pointer() }

// TestCompactSharesEqualMaps: pods with equal labels and requests share
// one map of each (quantities equal in canonical form alike), pods with
// different ones do not, and a plain decode never shares.
func TestCompactSharesEqualMaps(t *testing.T) {
	pods := podsResource(t)
	var o objectStore
	decode := func(shared bool, name string, labels map[string]string, requests corev1.ResourceList) *corev1.Pod {
		t.Helper()
		value, err := o.encode(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Resources: corev1.ResourceRequirements{Requests: requests}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		decodeFn := o.decode
		if shared {
			decodeFn = o.decodeShared
		}
		obj, err := decodeFn(pods, value, 1)
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*corev1.Pod)
	}
	requests := func(p *corev1.Pod) corev1.ResourceList { return p.Spec.Containers[0].Resources.Requests }
	labels := map[string]string{"app": "x", "pod-template-hash": "h"}

	a := decode(true, "a", labels, resources("cpu", "1", "memory", "16Mi"))
	b := decode(true, "b", map[string]string{"pod-template-hash": "h", "app": "x"}, resources("memory", "16Mi", "cpu", "1000m"))
	if mapID(a.Labels) != mapID(b.Labels) || mapID(requests(a)) != mapID(requests(b)) {
		t.Errorf("equal labels and requests not shared")
	}
	c := decode(true, "c", map[string]string{"app": "x", "pod-template-hash": "i"}, resources("cpu", "1", "memory", "16M"))
	if mapID(a.Labels) == mapID(c.Labels) || mapID(requests(a)) == mapID(requests(c)) {
		t.Errorf("different labels or requests shared")
	}
	// Keys are length-prefixed: a key and value cannot pass for others.
	d := decode(true, "d", map[string]string{"ab": "c"}, nil)
	e := decode(true, "e", map[string]string{"a": "bc"}, nil)
	if mapID(d.Labels) == mapID(e.Labels) {
		t.Errorf("labels {ab: c} and {a: bc} shared")
	}

	p1 := decode(false, "p1", labels, resources("cpu", "1"))
	p2 := decode(false, "p2", labels, resources("cpu", "1"))
	if mapID(p1.Labels) == mapID(p2.Labels) || mapID(p1.Labels) == mapID(a.Labels) || mapID(requests(p1)) == mapID(requests(p2)) {
		t.Errorf("a plain decode shares maps")
	}
	// A copy of a memo object, which its caller owns, has maps of its own.
	if cp := a.DeepCopy(); mapID(cp.Labels) == mapID(a.Labels) || mapID(requests(cp)) == mapID(requests(a)) {
		t.Errorf("a deep copy shares the memo object's maps")
	}
}

// TestInternTableBounded: the tables keep at most two generations of keys,
// and a key in use moves to the current one rather than being dropped.
func TestInternTableBounded(t *testing.T) {
	var c compactor
	hot := c.stringMap(map[string]string{"app": "hot"})
	for i := range 3 * internGeneration {
		m := map[string]string{"app": fmt.Sprint(i)}
		if got := c.stringMap(m); mapID(got) != mapID(m) {
			t.Fatalf("map %d: a new content was given a kept map", i)
		}
		if i%(internGeneration/2) == 0 {
			if got := c.stringMap(map[string]string{"app": "hot"}); mapID(got) != mapID(hot) {
				t.Fatalf("after %d maps: the map in use was dropped", i)
			}
		}
		if n := len(c.labels.cur) + len(c.labels.old); n > 2*internGeneration {
			t.Fatalf("after %d maps the table keeps %d", i, n)
		}
	}
	first := map[string]string{"app": "0"}
	if got := c.stringMap(first); mapID(got) != mapID(first) {
		t.Errorf("the oldest map is still kept after %d others", 3*internGeneration)
	}
}

// BenchmarkCompactorPod is the cost of compacting a decoded pod whose
// strings and maps the tables hold already, as for most pods: the lookups.
func BenchmarkCompactorPod(b *testing.B) {
	pod := compactTestPods()[2]
	var c compactor
	c.pod(pod)
	b.ReportAllocs()
	for b.Loop() {
		c.pod(pod)
	}
}
