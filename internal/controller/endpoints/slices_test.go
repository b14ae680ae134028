package endpoints

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// store turns planned new slices into stored ones (named, with a UID),
// as the API server would.
func store(plan SlicePlan) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for i, es := range plan.Create {
		s := es.DeepCopy()
		s.Name = fmt.Sprintf("%s%d", es.GenerateName, i)
		s.UID = types.UID("slice-" + s.Name)
		out = append(out, s)
	}
	return out
}

// apply returns the slices after plan is carried out on existing.
func apply(existing []*discoveryv1.EndpointSlice, plan SlicePlan) []*discoveryv1.EndpointSlice {
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, es := range existing {
		byName[es.Name] = es
	}
	for _, es := range plan.Update {
		byName[es.Name] = es
	}
	for _, es := range plan.Delete {
		delete(byName, es.Name)
	}
	out := store(SlicePlan{Create: plan.Create})
	for i, es := range out {
		es.Name = fmt.Sprintf("new-%d-%d", len(byName), i)
	}
	for _, es := range byName {
		out = append(out, es)
	}
	return out
}

func endpointsOf(slices []*discoveryv1.EndpointSlice) map[string]discoveryv1.EndpointConditions {
	out := map[string]discoveryv1.EndpointConditions{}
	for _, es := range slices {
		for _, ep := range es.Endpoints {
			out[ep.TargetRef.Name] = ep.Conditions
		}
	}
	return out
}

func conds(ready, serving, terminating bool) discoveryv1.EndpointConditions {
	return discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}
}

func TestPlanSlicesNewService(t *testing.T) {
	svc := mkSvc().labels(map[string]string{"team": "a"}).obj()
	trigger := t0.Add(time.Minute)
	plan := PlanSlices(svc, pods(mkPod("a", "10.0.0.1"), mkPod("b", "10.0.0.2").unready(), mkPod("c", "10.0.0.3").terminating()), nil, 100, trigger)
	if len(plan.Create) != 1 || len(plan.Update) != 0 || len(plan.Delete) != 0 {
		t.Fatalf("plan = %d creates, %d updates, %d deletes; want 1 create", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
	es := plan.Create[0]
	if es.GenerateName != "web-" || es.Namespace != "ns" || es.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("slice meta: generateName %q namespace %q addressType %q", es.GenerateName, es.Namespace, es.AddressType)
	}
	wantLabels := map[string]string{"team": "a", discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: ControllerName}
	if !reflect.DeepEqual(es.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", es.Labels, wantLabels)
	}
	ref := es.OwnerReferences
	if len(ref) != 1 || ref[0].Kind != "Service" || ref[0].APIVersion != "v1" || ref[0].Name != "web" || ref[0].UID != "svc-uid" || ref[0].Controller == nil || !*ref[0].Controller {
		t.Errorf("ownerReferences = %+v", ref)
	}
	if es.Annotations[corev1.EndpointsLastChangeTriggerTime] != "2026-01-02T03:05:05Z" {
		t.Errorf("annotations = %v", es.Annotations)
	}
	if len(es.Ports) != 1 || *es.Ports[0].Name != "http" || *es.Ports[0].Port != 8080 || *es.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports = %+v", es.Ports)
	}
	got := endpointsOf(plan.Create)
	want := map[string]discoveryv1.EndpointConditions{
		"a": conds(true, true, false),
		"b": conds(false, false, false),
		"c": conds(false, true, true),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("conditions = %+v, want %+v", got, want)
	}
	ep := es.Endpoints[0]
	if ep.TargetRef.Name != "a" || ep.TargetRef.UID != "uid-a" || ep.TargetRef.Kind != "Pod" || *ep.NodeName != "node-1" || !reflect.DeepEqual(ep.Addresses, []string{"10.0.0.1"}) {
		t.Errorf("endpoint a = %+v (targetRef %+v)", ep, ep.TargetRef)
	}
}

func TestPlanSlicesPublishNotReady(t *testing.T) {
	plan := PlanSlices(mkSvc().publishNotReady().obj(), pods(mkPod("b", "10.0.0.2").unready(), mkPod("c", "10.0.0.3").terminating()), nil, 100, time.Time{})
	got := endpointsOf(plan.Create)
	want := map[string]discoveryv1.EndpointConditions{"b": conds(true, false, false), "c": conds(true, true, true)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("conditions = %+v, want %+v", got, want)
	}
}

func TestPlanSlicesSplitsAtMax(t *testing.T) {
	plan := PlanSlices(mkSvc().obj(), readyPods(250), nil, 100, time.Time{})
	var sizes []int
	for _, es := range plan.Create {
		sizes = append(sizes, len(es.Endpoints))
	}
	if !reflect.DeepEqual(sizes, []int{100, 100, 50}) {
		t.Errorf("slice sizes = %v, want [100 100 50]", sizes)
	}
}

func TestPlanSlicesPlaceholder(t *testing.T) {
	svc := mkSvc().obj()
	plan := PlanSlices(svc, nil, nil, 100, time.Time{})
	if len(plan.Create) != 1 || len(plan.Create[0].Endpoints) != 0 || len(plan.Create[0].Ports) != 0 {
		t.Fatalf("no pods: want one empty placeholder, got %+v", plan)
	}
	if again := PlanSlices(svc, nil, store(plan), 100, time.Time{}); !again.Empty() {
		t.Errorf("placeholder recreated: %+v", again)
	}
	// Pods arrive: the placeholder is reused, not deleted and recreated.
	placeholder := store(plan)
	plan = PlanSlices(svc, readyPods(2), placeholder, 100, time.Time{})
	if len(plan.Create) != 0 || len(plan.Delete) != 0 || len(plan.Update) != 1 || plan.Update[0].Name != placeholder[0].Name {
		t.Fatalf("pods for a placeholder: %d creates %d updates %d deletes, want the placeholder updated", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
	if len(plan.Update[0].Endpoints) != 2 || len(plan.Update[0].Ports) != 1 {
		t.Errorf("reused placeholder = %+v", plan.Update[0])
	}
	// The pods go: the slice becomes the placeholder again.
	plan = PlanSlices(svc, nil, plan.Update, 100, time.Time{})
	if len(plan.Update) != 1 || len(plan.Update[0].Endpoints) != 0 || len(plan.Update[0].Ports) != 0 || len(plan.Create)+len(plan.Delete) != 0 {
		t.Errorf("pods gone: %+v, want the slice emptied in place", plan)
	}
}

func TestPlanSlicesMinimalChurn(t *testing.T) {
	svc := mkSvc().obj()
	ps := readyPods(250)
	slices := store(PlanSlices(svc, ps, nil, 100, time.Time{}))

	if plan := PlanSlices(svc, ps, slices, 100, time.Time{}); !plan.Empty() {
		t.Fatalf("steady state: %+v", plan)
	}

	// A pod turns unready: only its slice is rewritten, in place.
	changed := make([]*corev1.Pod, len(ps))
	copy(changed, ps)
	p := ps[120].DeepCopy()
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	changed[120] = p
	plan := PlanSlices(svc, changed, slices, 100, time.Time{})
	if len(plan.Update) != 1 || len(plan.Create)+len(plan.Delete) != 0 {
		t.Fatalf("one pod unready: %d creates %d updates %d deletes", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
	if got := endpointsOf(apply(slices, plan))[p.Name]; *got.Ready || *got.Serving {
		t.Errorf("unready pod conditions = %+v", got)
	}

	// New pods go to the slice with room, not a new slice.
	more := append(append([]*corev1.Pod(nil), ps...), mkPod("new1", "10.1.0.1").obj(), mkPod("new2", "10.1.0.2").obj())
	plan = PlanSlices(svc, more, slices, 100, time.Time{})
	if len(plan.Update) != 1 || len(plan.Create)+len(plan.Delete) != 0 || len(plan.Update[0].Endpoints) != 52 {
		t.Fatalf("two new pods: %d creates %d updates %d deletes", len(plan.Create), len(plan.Update), len(plan.Delete))
	}

	// A removed pod leaves its slice; the others stay untouched.
	fewer := append(append([]*corev1.Pod(nil), ps[:10]...), ps[11:]...)
	plan = PlanSlices(svc, fewer, slices, 100, time.Time{})
	if len(plan.Update) != 1 || len(plan.Create)+len(plan.Delete) != 0 {
		t.Fatalf("one pod removed: %d creates %d updates %d deletes", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
	after := endpointsOf(apply(slices, plan))
	if _, ok := after[ps[10].Name]; ok || len(after) != 249 {
		t.Errorf("after removal: %d endpoints, removed pod present: %v", len(after), ok)
	}

	// Everything in one slice removed: that slice is deleted.
	var keep []*corev1.Pod
	inFirst := map[string]bool{}
	for _, ep := range slices[0].Endpoints {
		inFirst[ep.TargetRef.Name] = true
	}
	for _, p := range ps {
		if !inFirst[p.Name] {
			keep = append(keep, p)
		}
	}
	plan = PlanSlices(svc, keep, slices, 100, time.Time{})
	if len(plan.Delete) != 1 || plan.Delete[0].Name != slices[0].Name || len(plan.Update)+len(plan.Create) != 0 {
		t.Errorf("a slice emptied: %d creates %d updates %d deletes", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
}

func TestPlanSlicesEmptiedSliceRefilled(t *testing.T) {
	svc := mkSvc().obj()
	ps := readyPods(5)
	slices := store(PlanSlices(svc, ps, nil, 2, time.Time{}))
	if len(slices) != 3 {
		t.Fatalf("%d slices, want 3", len(slices))
	}
	// Someone empties a full slice: it is refilled in place.
	slices[0].Endpoints = nil
	plan := PlanSlices(svc, ps, slices, 2, time.Time{})
	if len(plan.Create)+len(plan.Delete) != 0 || len(plan.Update) != 1 || plan.Update[0].Name != slices[0].Name || len(plan.Update[0].Endpoints) != 2 {
		t.Errorf("emptied slice: %d creates %d updates %d deletes, want it refilled", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
}

func TestPlanSlicesLabelsAndOwnership(t *testing.T) {
	svc := mkSvc().obj()
	ps := readyPods(3)
	slices := store(PlanSlices(svc, ps, nil, 100, time.Time{}))

	relabelled := mkSvc().labels(map[string]string{"team": "b"}).obj()
	plan := PlanSlices(relabelled, ps, slices, 100, time.Time{})
	if len(plan.Update) != 1 || plan.Update[0].Labels["team"] != "b" || plan.Update[0].Labels[discoveryv1.LabelManagedBy] != ControllerName {
		t.Errorf("service relabelled: %+v", plan)
	}

	// Slices of an earlier service of the same name (another UID) go.
	reborn := mkSvc().obj()
	reborn.UID = "svc-uid-2"
	plan = PlanSlices(reborn, ps, slices, 100, time.Time{})
	if len(plan.Delete) != 1 || len(plan.Create) != 1 || len(plan.Update) != 0 {
		t.Errorf("old owner's slice: %d creates %d updates %d deletes, want it replaced", len(plan.Create), len(plan.Update), len(plan.Delete))
	}

	// A service being deleted gets nothing new.
	deleting := mkSvc().obj()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	if plan := PlanSlices(deleting, ps, nil, 100, time.Time{}); len(plan.Create) != 0 {
		t.Errorf("deleting service: %d creates", len(plan.Create))
	}
}

func TestPlanSlicesNamedPorts(t *testing.T) {
	svc := mkSvc().ports(svcPort("http", 80, intstr.FromString("web"))).obj()
	ps := pods(mkPod("a", "10.0.0.1").port("web", 8080), mkPod("b", "10.0.0.2").port("web", 9090), mkPod("c", "10.0.0.3").port("web", 8080))
	plan := PlanSlices(svc, ps, nil, 100, time.Time{})
	if len(plan.Create) != 2 {
		t.Fatalf("want one slice per port number, got %d", len(plan.Create))
	}
	got := map[int32]int{}
	for _, es := range plan.Create {
		got[*es.Ports[0].Port] = len(es.Endpoints)
	}
	if !reflect.DeepEqual(got, map[int32]int{8080: 2, 9090: 1}) {
		t.Errorf("endpoints per port = %v", got)
	}
	// A pod switching number moves between the slices; no other churn.
	slices := store(plan)
	moved := pods(mkPod("a", "10.0.0.1").port("web", 8080), mkPod("b", "10.0.0.2").port("web", 8080), mkPod("c", "10.0.0.3").port("web", 8080))
	plan = PlanSlices(svc, moved, slices, 100, time.Time{})
	if len(plan.Update) != 1 || len(plan.Delete) != 1 || len(plan.Create) != 0 {
		t.Errorf("pod changed port: %d creates %d updates %d deletes", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
}

func TestPlanSlicesHeadlessAndFamilies(t *testing.T) {
	headless := mkSvc().headless().ports().obj()
	headless.Spec.IPFamilies = nil
	plan := PlanSlices(headless, pods(mkPod("a", "10.0.0.1").hostname("a", "web")), nil, 100, time.Time{})
	if len(plan.Create) != 1 {
		t.Fatalf("headless: %d slices", len(plan.Create))
	}
	es := plan.Create[0]
	if es.AddressType != discoveryv1.AddressTypeIPv4 || len(es.Ports) != 0 || es.Labels[corev1.IsHeadlessService] != "" {
		t.Errorf("headless slice: type %s ports %v labels %v", es.AddressType, es.Ports, es.Labels)
	}
	if _, ok := es.Labels[corev1.IsHeadlessService]; !ok {
		t.Error("headless label missing")
	}
	if h := es.Endpoints[0].Hostname; h == nil || *h != "a" {
		t.Errorf("hostname = %v", h)
	}

	dual := mkSvc().obj()
	dual.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	p := mkPod("a", "10.0.0.1").obj()
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}
	plan = PlanSlices(dual, []*corev1.Pod{p}, nil, 100, time.Time{})
	got := map[discoveryv1.AddressType][]string{}
	for _, es := range plan.Create {
		got[es.AddressType] = es.Endpoints[0].Addresses
	}
	want := map[discoveryv1.AddressType][]string{discoveryv1.AddressTypeIPv4: {"10.0.0.1"}, discoveryv1.AddressTypeIPv6: {"fd00::1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dual-stack slices = %v, want %v", got, want)
	}
	// A family dropped: its slices go.
	v4 := mkSvc().obj()
	plan = PlanSlices(v4, []*corev1.Pod{p}, store(plan), 100, time.Time{})
	if len(plan.Delete) != 1 || plan.Delete[0].AddressType != discoveryv1.AddressTypeIPv6 {
		t.Errorf("IPv6 dropped: deletes %+v", plan.Delete)
	}
}

func TestPlanSlicesDeterministic(t *testing.T) {
	svc := mkSvc().obj()
	ps := readyPods(230)
	a := PlanSlices(svc, ps, nil, 100, time.Time{})
	rev := make([]*corev1.Pod, len(ps))
	for i, p := range ps {
		rev[len(ps)-1-i] = p
	}
	b := PlanSlices(svc, rev, nil, 100, time.Time{})
	if !reflect.DeepEqual(a, b) {
		t.Error("plan depends on pod order")
	}
}
