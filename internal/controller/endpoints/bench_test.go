package endpoints_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover/drover/internal/controller/endpoints"
)

// BenchmarkReadyToEndpoints measures the time from a pod's Ready
// condition changing (its status write returning) to a watcher seeing
// the service's Endpoints, and its EndpointSlice, reflect it, through a
// real API server. Each iteration flips one of 20 pods.
func BenchmarkReadyToEndpoints(b *testing.B) {
	const n = 20
	c := start(b, endpoints.Options{}, nil)
	c.createService(b, service("web", intstr.FromInt32(8080)))
	pods := make([]*corev1.Pod, n)
	names := make([]string, n)
	for i := range pods {
		names[i] = fmt.Sprintf("p%02d", i)
		pods[i] = c.manualPod(b, names[i], "web", true)
	}
	slices.Sort(names)
	c.waitEndpoints(b, "web", names, nil)

	epWatch, err := c.kube.CoreV1().Endpoints(ns).Watch(c.ctx, metav1.ListOptions{FieldSelector: "metadata.name=web"})
	if err != nil {
		b.Fatal(err)
	}
	defer epWatch.Stop()
	sliceWatch, err := c.kube.DiscoveryV1().EndpointSlices(ns).Watch(c.ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
	if err != nil {
		b.Fatal(err)
	}
	defer sliceWatch.Stop()

	// readyIn reports the pod's readiness in an event's object, if the
	// object lists it.
	epReady := func(ev watch.Event, name string) (ready, found bool) {
		ep, ok := ev.Object.(*corev1.Endpoints)
		if !ok {
			return false, false
		}
		for _, s := range ep.Subsets {
			for _, a := range s.Addresses {
				if a.TargetRef.Name == name {
					return true, true
				}
			}
			for _, a := range s.NotReadyAddresses {
				if a.TargetRef.Name == name {
					return false, true
				}
			}
		}
		return false, false
	}
	sliceReady := func(ev watch.Event, name string) (ready, found bool) {
		es, ok := ev.Object.(*discoveryv1.EndpointSlice)
		if !ok {
			return false, false
		}
		for _, e := range es.Endpoints {
			if e.TargetRef.Name == name {
				return *e.Conditions.Ready, true
			}
		}
		return false, false
	}
	await := func(w watch.Interface, name string, want bool, inEvent func(watch.Event, string) (bool, bool)) time.Time {
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatal("watch closed")
				}
				if got, found := inEvent(ev, name); found && got == want {
					return time.Now()
				}
			case <-timeout:
				b.Fatalf("pod %s ready=%v not seen within 30s", name, want)
			}
		}
	}

	var epLat, sliceLat []time.Duration
	for i := 0; b.Loop(); i++ {
		idx := i % n
		want := !endpoints.IsPodReady(pods[idx])
		pods[idx] = c.setReady(b, pods[idx], want)
		changed := time.Now() // the status write has returned: the change exists
		epSeen := await(epWatch, names[idx], want, epReady)
		sliceSeen := await(sliceWatch, names[idx], want, sliceReady)
		epLat = append(epLat, epSeen.Sub(changed))
		sliceLat = append(sliceLat, sliceSeen.Sub(changed))
	}
	report := func(lat []time.Duration, what string) {
		slices.Sort(lat)
		pct := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), what+"-p50-ms")
		b.ReportMetric(pct(0.99), what+"-p99-ms")
	}
	report(epLat, "endpoints")
	report(sliceLat, "slice")
}

func benchPods(n int) []*corev1.Pod {
	out := make([]*corev1.Pod, n)
	for i := range out {
		ip := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
		p := pod(fmt.Sprintf("web-%04d", i), "web")
		p.UID = types.UID(fmt.Sprintf("uid-%06d", i))
		p.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolTCP
		p.Spec.NodeName = fmt.Sprintf("node-%d", i%10)
		p.Status = corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		}
		if i%10 == 0 {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		}
		out[i] = p
	}
	return out
}

func benchService() *corev1.Service {
	svc := service("web", intstr.FromString("web"))
	svc.UID = "svc-uid"
	svc.Spec.ClusterIP = "10.96.0.10"
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	svc.Spec.Ports[0].Protocol = corev1.ProtocolTCP
	return svc
}

// BenchmarkSubsets1000 is the pure Endpoints computation for a service
// selecting 1,000 pods (10% unready, named target port).
func BenchmarkSubsets1000(b *testing.B) {
	svc, pods := benchService(), benchPods(1000)
	for b.Loop() {
		if got := endpoints.Subsets(svc, pods); len(got) != 1 || len(got[0].Addresses) != 900 {
			b.Fatalf("subsets %d", len(got))
		}
	}
}

// BenchmarkPlanSlices1000 is the pure EndpointSlice planning for 1,000
// pods: from nothing, and in steady state with one pod's readiness
// changed.
func BenchmarkPlanSlices1000(b *testing.B) {
	svc, pods := benchService(), benchPods(1000)
	b.Run("create", func(b *testing.B) {
		for b.Loop() {
			if plan := endpoints.PlanSlices(svc, pods, nil, 100, time.Time{}); len(plan.Create) != 10 {
				b.Fatalf("%d slices", len(plan.Create))
			}
		}
	})
	b.Run("one-pod-changed", func(b *testing.B) {
		var existing []*discoveryv1.EndpointSlice
		for i, es := range endpoints.PlanSlices(svc, pods, nil, 100, time.Time{}).Create {
			es.Name, es.UID = fmt.Sprintf("web-%d", i), "s"
			existing = append(existing, es)
		}
		changed := slices.Clone(pods)
		p := changed[501].DeepCopy()
		p.Status.Conditions[0].Status = corev1.ConditionFalse
		changed[501] = p
		for b.Loop() {
			if plan := endpoints.PlanSlices(svc, changed, existing, 100, time.Time{}); len(plan.Update) != 1 || len(plan.Create)+len(plan.Delete) != 0 {
				b.Fatalf("plan %+v", plan)
			}
		}
	})
}
