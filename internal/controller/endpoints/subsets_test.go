package endpoints

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestSubsets(t *testing.T) {
	named := func() *svcB { return mkSvc().ports(svcPort("http", 80, intstr.FromString("web"))) }
	tests := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want []corev1.EndpointSubset
	}{
		{
			name: "three ready pods, sorted by IP",
			svc:  mkSvc().obj(),
			pods: pods(mkPod("c", "10.0.0.3"), mkPod("a", "10.0.0.1"), mkPod("b", "10.0.0.2")),
			want: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1"), addr("b", "10.0.0.2"), addr("c", "10.0.0.3")},
				Ports:     []corev1.EndpointPort{epPort("http", 8080)},
			}},
		},
		{
			name: "unready pod in notReadyAddresses",
			svc:  mkSvc().obj(),
			pods: pods(mkPod("a", "10.0.0.1"), mkPod("b", "10.0.0.2").unready()),
			want: []corev1.EndpointSubset{{
				Addresses:         []corev1.EndpointAddress{addr("a", "10.0.0.1")},
				NotReadyAddresses: []corev1.EndpointAddress{addr("b", "10.0.0.2")},
				Ports:             []corev1.EndpointPort{epPort("http", 8080)},
			}},
		},
		{
			name: "terminating, finished and IP-less pods left out",
			svc:  mkSvc().obj(),
			pods: pods(mkPod("a", "10.0.0.1"), mkPod("t", "10.0.0.2").terminating(),
				mkPod("s", "10.0.0.3").phase(corev1.PodSucceeded), mkPod("f", "10.0.0.4").phase(corev1.PodFailed),
				mkPod("n", "").noIP()),
			want: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1")},
				Ports:     []corev1.EndpointPort{epPort("http", 8080)},
			}},
		},
		{
			name: "publishNotReadyAddresses: unready and terminating in addresses",
			svc:  mkSvc().publishNotReady().obj(),
			pods: pods(mkPod("a", "10.0.0.1").unready(), mkPod("t", "10.0.0.2").terminating()),
			want: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1"), addr("t", "10.0.0.2")},
				Ports:     []corev1.EndpointPort{epPort("http", 8080)},
			}},
		},
		{
			name: "named target port: different numbers give different subsets, unresolved pods left out",
			svc:  named().obj(),
			pods: pods(mkPod("a", "10.0.0.1").port("web", 8080), mkPod("b", "10.0.0.2").port("web", 9090),
				mkPod("c", "10.0.0.3").port("web", 8080), mkPod("d", "10.0.0.4").port("other", 8080)),
			want: []corev1.EndpointSubset{
				{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1"), addr("c", "10.0.0.3")}, Ports: []corev1.EndpointPort{epPort("http", 8080)}},
				{Addresses: []corev1.EndpointAddress{addr("b", "10.0.0.2")}, Ports: []corev1.EndpointPort{epPort("http", 9090)}},
			},
		},
		{
			name: "two ports offered by the same pods share a subset",
			svc:  mkSvc().ports(svcPort("http", 80, intstr.FromInt32(8080)), svcPort("metrics", 9100, intstr.FromString("metrics"))).obj(),
			pods: pods(mkPod("a", "10.0.0.1").port("metrics", 9100), mkPod("b", "10.0.0.2").port("metrics", 9100)),
			want: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1"), addr("b", "10.0.0.2")},
				Ports:     []corev1.EndpointPort{epPort("http", 8080), epPort("metrics", 9100)},
			}},
		},
		{
			name: "hostname when subdomain names the service",
			svc:  mkSvc().headless().obj(),
			pods: pods(mkPod("a", "10.0.0.1").hostname("a", "web"), mkPod("b", "10.0.0.2").hostname("b", "other")),
			want: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{
					func() corev1.EndpointAddress { a := addr("a", "10.0.0.1"); a.Hostname = "a"; return a }(),
					addr("b", "10.0.0.2"),
				},
				Ports: []corev1.EndpointPort{epPort("http", 8080)},
			}},
		},
		{
			name: "headless service without ports",
			svc:  mkSvc().headless().ports().obj(),
			pods: pods(mkPod("a", "10.0.0.1"), mkPod("b", "10.0.0.2").unready()),
			want: []corev1.EndpointSubset{{
				Addresses:         []corev1.EndpointAddress{addr("a", "10.0.0.1")},
				NotReadyAddresses: []corev1.EndpointAddress{addr("b", "10.0.0.2")},
			}},
		},
		{
			name: "pod without a node",
			svc:  mkSvc().obj(),
			pods: pods(mkPod("a", "10.0.0.1").node("")),
			want: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{func() corev1.EndpointAddress { a := addr("a", "10.0.0.1"); a.NodeName = nil; return a }()},
				Ports:     []corev1.EndpointPort{epPort("http", 8080)},
			}},
		},
		{
			name: "no pods",
			svc:  mkSvc().obj(),
			want: []corev1.EndpointSubset{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Subsets(tt.svc, tt.pods)
			if !apiequality.Semantic.DeepEqual(got, tt.want) {
				t.Errorf("Subsets =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestSubsetsIPFamily(t *testing.T) {
	dual := mkPod("a", "10.0.0.1").obj()
	dual.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}
	v6 := mkSvc().obj()
	v6.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	v6.Spec.ClusterIP = "fd00:96::10"
	if got := Subsets(v6, []*corev1.Pod{dual}); len(got) != 1 || got[0].Addresses[0].IP != "fd00::1" {
		t.Errorf("IPv6 service: %+v, want the pod's IPv6 address", got)
	}
	if got := Subsets(mkSvc().obj(), []*corev1.Pod{dual}); len(got) != 1 || got[0].Addresses[0].IP != "10.0.0.1" {
		t.Errorf("IPv4 service: %+v, want the pod's IPv4 address", got)
	}
	v4only := mkPod("b", "10.0.0.2").obj()
	if got := Subsets(v6, []*corev1.Pod{v4only}); len(got) != 0 {
		t.Errorf("IPv6 service, IPv4-only pod: %+v, want nothing", got)
	}
	noIPs := mkPod("c", "10.0.0.3").obj()
	noIPs.Status.PodIPs = nil // only status.podIP
	if got := Subsets(mkSvc().obj(), []*corev1.Pod{noIPs}); len(got) != 1 || got[0].Addresses[0].IP != "10.0.0.3" {
		t.Errorf("podIP without podIPs: %+v", got)
	}
}

func TestRepackSubsetsDeterministic(t *testing.T) {
	svc := mkSvc().ports(svcPort("http", 80, intstr.FromString("web")), svcPort("dns", 53, intstr.FromInt32(53))).obj()
	var ps []*corev1.Pod
	for i, n := range []int32{8080, 9090, 8080, 7070, 9090, 8080} {
		b := mkPod(string(rune('a'+i)), "10.0.0."+string(rune('1'+i))).port("web", n)
		if i%3 == 0 {
			b.unready()
		}
		ps = append(ps, b.obj())
	}
	want := Subsets(svc, ps)
	if len(want) != 4 {
		t.Fatalf("want 4 subsets (dns on every pod, one per web port number), got %d: %+v", len(want), want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := append([]*corev1.Pod(nil), ps...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := Subsets(svc, shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("order-dependent output:\n%+v\nvs\n%+v", got, want)
		}
	}
}

func TestRepackSubsetsNotReadyWins(t *testing.T) {
	a := addr("a", "10.0.0.1")
	in := []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{a}, Ports: []corev1.EndpointPort{epPort("http", 80)}},
		{NotReadyAddresses: []corev1.EndpointAddress{a}, Ports: []corev1.EndpointPort{epPort("http", 80)}},
		{Addresses: []corev1.EndpointAddress{a}, Ports: []corev1.EndpointPort{epPort("http", 80)}},
	}
	want := []corev1.EndpointSubset{{NotReadyAddresses: []corev1.EndpointAddress{a}, Ports: []corev1.EndpointPort{epPort("http", 80)}}}
	if got := RepackSubsets(in); !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("RepackSubsets = %+v, want %+v", got, want)
	}
}

func TestDesiredEndpoints(t *testing.T) {
	svc := mkSvc().labels(map[string]string{"team": "a"}).obj()
	ps := pods(mkPod("a", "10.0.0.1"), mkPod("b", "10.0.0.2"))
	trigger := t0.Add(time.Minute)

	created, write := DesiredEndpoints(svc, ps, nil, trigger)
	if !write {
		t.Fatal("no Endpoints yet: want a write")
	}
	if created.Name != "web" || created.Namespace != "ns" || len(created.OwnerReferences) != 0 {
		t.Errorf("meta = %+v, want web in ns without owner", created.ObjectMeta)
	}
	if got := created.Annotations[corev1.EndpointsLastChangeTriggerTime]; got != "2026-01-02T03:05:05Z" {
		t.Errorf("trigger annotation = %q", got)
	}
	if created.Labels["team"] != "a" || created.Labels[LabelEndpointsManagedBy] != EndpointsControllerName {
		t.Errorf("labels = %v, want the service's and managed-by", created.Labels)
	}
	if _, ok := created.Labels[corev1.IsHeadlessService]; ok {
		t.Errorf("headless label on a ClusterIP service")
	}
	if len(created.Subsets) != 1 || len(created.Subsets[0].Addresses) != 2 {
		t.Errorf("subsets = %+v", created.Subsets)
	}

	stored := created.DeepCopy()
	stored.ResourceVersion = "5"
	if _, write := DesiredEndpoints(svc, ps, stored, t0.Add(2*time.Minute)); write {
		t.Error("unchanged endpoints rewritten (only the trigger time differs)")
	}

	ps2 := pods(mkPod("a", "10.0.0.1"), mkPod("b", "10.0.0.2").unready())
	next, write := DesiredEndpoints(svc, ps2, stored, time.Time{})
	if !write {
		t.Fatal("readiness change not written")
	}
	if next.ResourceVersion != "5" {
		t.Errorf("resourceVersion %q not kept for the update", next.ResourceVersion)
	}
	if _, ok := next.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
		t.Error("zero trigger time kept the annotation")
	}
	if len(next.Subsets[0].NotReadyAddresses) != 1 {
		t.Errorf("subsets = %+v", next.Subsets)
	}

	relabelled := mkSvc().labels(map[string]string{"team": "b"}).obj()
	if _, write := DesiredEndpoints(relabelled, ps, stored, time.Time{}); !write {
		t.Error("service label change not written")
	}

	headless := mkSvc().headless().obj()
	h, _ := DesiredEndpoints(headless, ps, nil, time.Time{})
	if _, ok := h.Labels[corev1.IsHeadlessService]; !ok {
		t.Errorf("headless service's endpoints lack %s: %v", corev1.IsHeadlessService, h.Labels)
	}
	hStored := h.DeepCopy()
	if _, write := DesiredEndpoints(headless, ps, hStored, time.Time{}); write {
		t.Error("unchanged headless endpoints rewritten")
	}
	delete(hStored.Labels, LabelEndpointsManagedBy)
	if fixed, write := DesiredEndpoints(headless, ps, hStored, time.Time{}); !write || fixed.Labels[LabelEndpointsManagedBy] != EndpointsControllerName {
		t.Error("missing managed-by label not restored")
	}
}

func TestDesiredEndpointsOverCapacity(t *testing.T) {
	ps := readyPods(MaxEndpointsCapacity + 50)
	for _, p := range ps[:100] {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	ep, write := DesiredEndpoints(mkSvc().obj(), ps, nil, time.Time{})
	if !write {
		t.Fatal("no write")
	}
	var ready, notReady int
	for _, s := range ep.Subsets {
		ready += len(s.Addresses)
		notReady += len(s.NotReadyAddresses)
	}
	if ready != 950 || notReady != 50 {
		t.Errorf("truncated to %d ready + %d not ready, want 950 + 50", ready, notReady)
	}
	if ep.Annotations[corev1.EndpointsOverCapacity] != OverCapacityTruncated {
		t.Errorf("annotations = %v", ep.Annotations)
	}
	small, _ := DesiredEndpoints(mkSvc().obj(), ps[:3], ep, time.Time{})
	if _, ok := small.Annotations[corev1.EndpointsOverCapacity]; ok {
		t.Error("over-capacity annotation kept after shrinking")
	}
}

func TestTruncateReady(t *testing.T) {
	subsets := Subsets(mkSvc().obj(), readyPods(1200))
	if !Truncate(subsets) {
		t.Fatal("not truncated")
	}
	n := 0
	for _, s := range subsets {
		n += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	if n != MaxEndpointsCapacity {
		t.Errorf("%d addresses after truncation, want %d", n, MaxEndpointsCapacity)
	}
}

func TestTriggerTimes(t *testing.T) {
	tt := NewTriggerTimes()
	svc := mkSvc().obj()
	a := mkPod("a", "10.0.0.1").readyAt(t0)
	b := mkPod("b", "10.0.0.2").readyAt(t0.Add(time.Second))
	compute := func(ps []*corev1.Pod, commit bool) time.Time {
		got, seen := tt.Compute(svc, ps)
		if commit {
			seen()
		}
		return got
	}
	if got := compute(pods(a, b), true); !got.Equal(svc.CreationTimestamp.Time) {
		t.Errorf("first sync = %v, want the service's creation %v", got, svc.CreationTimestamp.Time)
	}
	if got := compute(pods(a, b), true); !got.IsZero() {
		t.Errorf("nothing changed = %v, want zero", got)
	}
	a2 := mkPod("a", "10.0.0.1").readyAt(t0.Add(time.Minute)).unready()
	b2 := mkPod("b", "10.0.0.2").readyAt(t0.Add(2 * time.Minute)).unready()
	if got := compute(pods(a2, b2), false); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("two pods changed = %v, want the earlier change %v", got, t0.Add(time.Minute))
	}
	if got := compute(pods(a2, b2), true); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("retry of an uncommitted sync = %v, want the same trigger time %v", got, t0.Add(time.Minute))
	}
	if got := compute(pods(a2, b2), true); !got.IsZero() {
		t.Errorf("after commit = %v, want zero", got)
	}
	tt.Forget("ns", "web")
	if got := compute(pods(a2, b2), true); !got.Equal(svc.CreationTimestamp.Time) {
		t.Errorf("after Forget = %v, want creation time", got)
	}
}

func TestPodChange(t *testing.T) {
	base := func() *corev1.Pod { p := mkPod("a", "10.0.0.1").obj(); p.ResourceVersion = "1"; return p }
	tests := []struct {
		name                  string
		mutate                func(p *corev1.Pod)
		changed, membershipCh bool
	}{
		{"annotation only", func(p *corev1.Pod) { p.Annotations = map[string]string{"x": "y"} }, false, false},
		{"readiness", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }, true, false},
		{"deletion", func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }, true, false},
		{"IP", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.9"}} }, true, false},
		{"phase", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }, true, false},
		{"labels", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "db"} }, false, true},
		{"hostname", func(p *corev1.Pod) { p.Spec.Hostname = "h" }, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := base()
			tt.mutate(cur)
			changed, membership := podChange(base(), cur)
			if changed != tt.changed || membership != tt.membershipCh {
				t.Errorf("podChange = %v, %v; want %v, %v", changed, membership, tt.changed, tt.membershipCh)
			}
		})
	}
}

func TestFindPort(t *testing.T) {
	p := mkPod("a", "10.0.0.1").port("web", 8080).obj()
	always := corev1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = []corev1.Container{
		{Name: "sidecar", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15001, Protocol: corev1.ProtocolTCP}}},
		{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 1, Protocol: corev1.ProtocolTCP}}},
	}
	udp := svcPort("web", 80, intstr.FromString("web"))
	udp.Protocol = corev1.ProtocolUDP
	tests := []struct {
		sp   corev1.ServicePort
		want int32
		ok   bool
	}{
		{svcPort("", 80, intstr.FromInt32(9000)), 9000, true},
		{svcPort("", 80, intstr.FromString("web")), 8080, true},
		{svcPort("", 80, intstr.FromString("proxy")), 15001, true},
		{svcPort("", 80, intstr.FromString("setup")), 0, false},
		{svcPort("", 80, intstr.FromString("missing")), 0, false},
		{udp, 0, false},
	}
	for _, tt := range tests {
		got, err := FindPort(p, &tt.sp)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("FindPort(%s/%s) = %d, %v; want %d, ok=%v", tt.sp.TargetPort.String(), tt.sp.Protocol, got, err, tt.want, tt.ok)
		}
	}
}

func TestSelectorIndex(t *testing.T) {
	x := NewSelectorIndex()
	web := mkSvc().obj()
	all := mkSvc().obj()
	all.Name, all.Spec.Selector = "all", map[string]string{}
	none := mkSvc().obj()
	none.Name, none.Spec.Selector = "manual", nil
	other := mkSvc().obj()
	other.Namespace = "elsewhere"
	for _, s := range []*corev1.Service{web, all, none, other} {
		x.Set(s)
	}
	collect := func(ns string, l map[string]string) map[string]bool {
		got := map[string]bool{}
		x.Matching(ns, l, func(k string) { got[k] = true })
		return got
	}
	if got := collect("ns", map[string]string{"app": "web"}); !reflect.DeepEqual(got, map[string]bool{"ns/web": true, "ns/all": true}) {
		t.Errorf("app=web in ns: %v", got)
	}
	if got := collect("ns", map[string]string{"app": "db"}); !reflect.DeepEqual(got, map[string]bool{"ns/all": true}) {
		t.Errorf("app=db in ns: %v", got)
	}
	web.Spec.Selector = map[string]string{"app": "db"}
	x.Set(web)
	x.Delete("ns", "all")
	if got := collect("ns", map[string]string{"app": "db"}); !reflect.DeepEqual(got, map[string]bool{"ns/web": true}) {
		t.Errorf("after selector change and delete: %v", got)
	}
	web.Spec.Selector = nil
	x.Set(web)
	if got := collect("ns", map[string]string{"app": "db"}); len(got) != 0 {
		t.Errorf("after selector removed: %v", got)
	}
}
