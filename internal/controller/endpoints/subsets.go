package endpoints

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// MaxEndpointsCapacity is how many addresses an Endpoints object holds at
// most; beyond it the controller truncates and annotates it, as upstream.
const MaxEndpointsCapacity = 1000

// Upstream's annotation values and label keys.
const (
	// OverCapacityTruncated is the value of the corev1.EndpointsOverCapacity
	// annotation on a truncated Endpoints object.
	OverCapacityTruncated = "truncated"
	// LabelEndpointsManagedBy marks the Endpoints objects the controller
	// made (upstream since 1.33), with value EndpointsControllerName.
	LabelEndpointsManagedBy = "endpoints.kubernetes.io/managed-by"
	// EndpointsControllerName is the Endpoints controller's name.
	EndpointsControllerName = "endpoint-controller"
)

// Subsets computes the Endpoints subsets of svc from the pods its
// selector matches (pods is not filtered by the caller: terminal pods,
// pods without an IP and, unless publishNotReadyAddresses, terminating
// pods are left out here). Ready pods go to addresses, unready ones to
// notReadyAddresses (every pod to addresses with
// publishNotReadyAddresses). Named target ports are resolved per pod, so
// pods that number a name differently land in different subsets. The
// result is repacked into the canonical layout (see RepackSubsets).
func Subsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	publish := svc.Spec.PublishNotReadyAddresses
	headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
	var raw []corev1.EndpointSubset
	for _, p := range pods {
		if !ShouldPodBeInEndpoints(p, publish) {
			continue
		}
		ip := endpointIP(svc, p)
		if ip == "" {
			continue
		}
		addr := corev1.EndpointAddress{
			IP: ip,
			TargetRef: &corev1.ObjectReference{
				Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID,
			},
		}
		if p.Spec.NodeName != "" {
			addr.NodeName = ptrTo(p.Spec.NodeName)
		}
		if ShouldSetHostname(p, svc) {
			addr.Hostname = p.Spec.Hostname
		}
		ready := publish || IsPodReady(p)
		subset := func(ports []corev1.EndpointPort) corev1.EndpointSubset {
			if ready {
				return corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{addr}, Ports: ports}
			}
			return corev1.EndpointSubset{NotReadyAddresses: []corev1.EndpointAddress{addr}, Ports: ports}
		}
		if len(svc.Spec.Ports) == 0 {
			// A headless service may have no ports: addresses only.
			if headless {
				raw = append(raw, subset(nil))
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			port, err := FindPort(p, sp)
			if err != nil {
				continue
			}
			raw = append(raw, subset([]corev1.EndpointPort{{
				Name: sp.Name, Port: port, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol,
			}}))
		}
	}
	return RepackSubsets(raw)
}

// addrKey identifies an address across subsets: IP plus the pod's UID.
type addrKey struct {
	ip  string
	uid types.UID
}

func keyOf(a *corev1.EndpointAddress) addrKey {
	k := addrKey{ip: a.IP}
	if a.TargetRef != nil {
		k.uid = a.TargetRef.UID
	}
	return k
}

// RepackSubsets returns subsets in the canonical layout upstream's
// endpoints.RepackSubsets produces: every port offered by exactly the
// same addresses (with the same readiness) shares one subset; an address
// not ready on a port in any input subset is not ready there; addresses
// are sorted by IP then UID, ports by name, number, protocol, and subsets
// by their first port. The same set of inputs always gives the same
// output. Subsets without ports keep their addresses in one port-less
// subset (headless services without ports).
func RepackSubsets(in []corev1.EndpointSubset) []corev1.EndpointSubset {
	addrs := map[addrKey]corev1.EndpointAddress{}
	// For each port (or the port-less group), the addresses offering it and
	// whether each is ready there.
	type portGroup struct {
		port  *corev1.EndpointPort
		ready map[addrKey]bool
	}
	groups := map[string]*portGroup{}
	note := func(port *corev1.EndpointPort, a *corev1.EndpointAddress, ready bool) {
		k := keyOf(a)
		if _, ok := addrs[k]; !ok {
			addrs[k] = *a
		}
		pk := portKey(port)
		g := groups[pk]
		if g == nil {
			g = &portGroup{port: port, ready: map[addrKey]bool{}}
			groups[pk] = g
		}
		if was, seen := g.ready[k]; !seen || was {
			g.ready[k] = ready // not ready wins
		}
	}
	for i := range in {
		s := &in[i]
		ports := make([]*corev1.EndpointPort, 0, len(s.Ports))
		for j := range s.Ports {
			ports = append(ports, &s.Ports[j])
		}
		if len(ports) == 0 {
			ports = append(ports, nil)
		}
		for _, port := range ports {
			for j := range s.Addresses {
				note(port, &s.Addresses[j], true)
			}
			for j := range s.NotReadyAddresses {
				note(port, &s.NotReadyAddresses[j], false)
			}
		}
	}

	// Ports with identical address sets share a subset.
	type packed struct {
		ports []corev1.EndpointPort
		set   map[addrKey]bool
	}
	bySet := map[string]*packed{}
	for _, pk := range slices.Sorted(maps.Keys(groups)) {
		g := groups[pk]
		sk := setKey(g.ready)
		p := bySet[sk]
		if p == nil {
			p = &packed{set: g.ready}
			bySet[sk] = p
		}
		if g.port != nil {
			p.ports = append(p.ports, *g.port)
		}
	}
	out := make([]corev1.EndpointSubset, 0, len(bySet))
	for _, p := range bySet {
		var s corev1.EndpointSubset
		for k, ready := range p.set {
			if ready {
				s.Addresses = append(s.Addresses, addrs[k])
			} else {
				s.NotReadyAddresses = append(s.NotReadyAddresses, addrs[k])
			}
		}
		slices.SortFunc(s.Addresses, compareAddress)
		slices.SortFunc(s.NotReadyAddresses, compareAddress)
		slices.SortFunc(p.ports, comparePort)
		s.Ports = p.ports
		out = append(out, s)
	}
	slices.SortFunc(out, compareSubset)
	return out
}

func portKey(p *corev1.EndpointPort) string {
	if p == nil {
		return ""
	}
	app := ""
	if p.AppProtocol != nil {
		app = "=" + *p.AppProtocol
	}
	return p.Name + "\x00" + strconv.Itoa(int(p.Port)) + "\x00" + string(p.Protocol) + app
}

// setKey is a canonical string of an address set with readiness.
func setKey(set map[addrKey]bool) string {
	keys := slices.SortedFunc(maps.Keys(set), func(a, b addrKey) int {
		return cmp.Or(strings.Compare(a.ip, b.ip), strings.Compare(string(a.uid), string(b.uid)))
	})
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.ip)
		b.WriteByte('/')
		b.WriteString(string(k.uid))
		if set[k] {
			b.WriteString("+,")
		} else {
			b.WriteString("-,")
		}
	}
	return b.String()
}

func compareAddress(a, b corev1.EndpointAddress) int {
	ka, kb := keyOf(&a), keyOf(&b)
	return cmp.Or(strings.Compare(ka.ip, kb.ip), strings.Compare(string(ka.uid), string(kb.uid)))
}

func comparePort(a, b corev1.EndpointPort) int {
	return strings.Compare(portKey(&a), portKey(&b))
}

func compareSubset(a, b corev1.EndpointSubset) int {
	for i := 0; i < len(a.Ports) && i < len(b.Ports); i++ {
		if c := comparePort(a.Ports[i], b.Ports[i]); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(len(a.Ports), len(b.Ports)); c != 0 {
		return c
	}
	first := func(s corev1.EndpointSubset) corev1.EndpointAddress {
		switch {
		case len(s.Addresses) > 0:
			return s.Addresses[0]
		case len(s.NotReadyAddresses) > 0:
			return s.NotReadyAddresses[0]
		}
		return corev1.EndpointAddress{}
	}
	return compareAddress(first(a), first(b))
}

// Truncate cuts subsets down to MaxEndpointsCapacity addresses as
// upstream does (ready addresses first, each subset keeping its share)
// and reports whether it had to.
func Truncate(subsets []corev1.EndpointSubset) bool {
	var ready, notReady int
	for _, s := range subsets {
		ready += len(s.Addresses)
		notReady += len(s.NotReadyAddresses)
	}
	if ready+notReady <= MaxEndpointsCapacity {
		return false
	}
	truncReady := ready > MaxEndpointsCapacity
	limit, total := MaxEndpointsCapacity-ready, notReady
	if truncReady {
		limit, total = MaxEndpointsCapacity, ready
	}
	left := limit
	for i := range subsets {
		s := &subsets[i]
		n := len(s.NotReadyAddresses)
		if truncReady {
			n = len(s.Addresses)
		}
		take := min(int(math.Ceil(float64(n)/float64(total)*float64(limit))), left)
		if truncReady {
			s.Addresses = s.Addresses[:min(take, len(s.Addresses))]
			s.NotReadyAddresses = nil
			left -= len(s.Addresses)
		} else {
			s.NotReadyAddresses = s.NotReadyAddresses[:min(take, len(s.NotReadyAddresses))]
			left -= len(s.NotReadyAddresses)
		}
	}
	return true
}

// DesiredEndpoints returns the Endpoints object svc should have given the
// pods its selector matches and the current object (nil if there is
// none), and whether it must be written (created when current is nil,
// updated otherwise). triggerTime is the endpoints.kubernetes.io/
// last-change-trigger-time to record (zero: remove the annotation); it is
// only written along with another change. Labels are the service's, plus
// service.kubernetes.io/headless on headless services and
// endpoints.kubernetes.io/managed-by=endpoint-controller.
func DesiredEndpoints(svc *corev1.Service, pods []*corev1.Pod, current *corev1.Endpoints, triggerTime time.Time) (*corev1.Endpoints, bool) {
	subsets := Subsets(svc, pods)
	labels := endpointsLabels(svc)
	if current == nil {
		current = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace}}
	} else if apiequality.Semantic.DeepEqual(current.Subsets, subsets) &&
		maps.Equal(current.Labels, labels) && capacityAnnotationCorrect(current) {
		return current, false
	}
	want := current.DeepCopy()
	want.Subsets = subsets
	want.Labels = labels
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	if triggerTime.IsZero() {
		delete(want.Annotations, corev1.EndpointsLastChangeTriggerTime)
	} else {
		want.Annotations[corev1.EndpointsLastChangeTriggerTime] = triggerTime.UTC().Format(time.RFC3339Nano)
	}
	if Truncate(want.Subsets) {
		want.Annotations[corev1.EndpointsOverCapacity] = OverCapacityTruncated
	} else {
		delete(want.Annotations, corev1.EndpointsOverCapacity)
	}
	return want, true
}

// endpointsLabels are the labels of a service's Endpoints: the service's,
// service.kubernetes.io/headless on a headless service, and the
// controller's managed-by label.
func endpointsLabels(svc *corev1.Service) map[string]string {
	out := maps.Clone(svc.Labels)
	if out == nil {
		out = map[string]string{}
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		out[corev1.IsHeadlessService] = ""
	} else {
		delete(out, corev1.IsHeadlessService)
	}
	out[LabelEndpointsManagedBy] = EndpointsControllerName
	return out
}

// capacityAnnotationCorrect reports whether an Endpoints object within
// capacity carries no over-capacity annotation (one over capacity always
// needs rewriting, as upstream).
func capacityAnnotationCorrect(ep *corev1.Endpoints) bool {
	n := 0
	for _, s := range ep.Subsets {
		n += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	if n > MaxEndpointsCapacity {
		return false
	}
	_, ok := ep.Annotations[corev1.EndpointsOverCapacity]
	return !ok
}

func ptrTo[T any](v T) *T { return &v }
