package endpoints

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ControllerName is the EndpointSlice controller's name, the value of the
// endpointslice.kubernetes.io/managed-by label on the slices it manages.
const ControllerName = "endpointslice-controller.k8s.io"

// DefaultMaxEndpointsPerSlice is upstream's default slice size.
const DefaultMaxEndpointsPerSlice = 100

var serviceKind = corev1.SchemeGroupVersion.WithKind("Service")

// SlicePlan is what one sync does to a service's EndpointSlices.
type SlicePlan struct {
	// Create holds new slices (named by GenerateName).
	Create []*discoveryv1.EndpointSlice
	// Update holds changed copies of existing slices.
	Update []*discoveryv1.EndpointSlice
	// Delete holds existing slices to delete.
	Delete []*discoveryv1.EndpointSlice
}

// Empty reports whether the plan changes nothing.
func (p SlicePlan) Empty() bool {
	return len(p.Create) == 0 && len(p.Update) == 0 && len(p.Delete) == 0
}

// PlanSlices compares the EndpointSlices a service should have, given the
// pods its selector matches, with the slices the controller manages for
// it (existing: those labelled with the service's name and managed by
// ControllerName), and returns the changes, as upstream's reconciler:
//
//   - one group of slices per address type the service uses and per set
//     of resolved ports (pods numbering a named port differently get
//     different slices), at most maxPerSlice endpoints per slice;
//   - every pod with an IP that has not finished is an endpoint, including
//     terminating ones: ready = publishNotReadyAddresses or (pod ready and
//     not terminating), serving = pod ready, terminating = being deleted;
//   - minimal churn: endpoints stay in the slice that holds them, a slice
//     is only rewritten if one of its endpoints, or its labels, changed,
//     new endpoints fill slices being rewritten anyway before a slice that
//     was not, and new slices are made last; a slice left empty is
//     deleted (or reused for a slice that would otherwise be created);
//   - a service with no endpoints keeps one empty placeholder slice;
//   - nothing is created for a service being deleted.
//
// Slices created or updated carry the trigger time annotation (none when
// triggerTime is zero). The result is deterministic.
func PlanSlices(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, maxPerSlice int, triggerTime time.Time) SlicePlan {
	if maxPerSlice <= 0 {
		maxPerSlice = DefaultMaxEndpointsPerSlice
	}
	var plan SlicePlan
	types := addressTypes(svc)
	byType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	for _, es := range existing {
		if es.DeletionTimestamp != nil {
			continue
		}
		if !slices.Contains(types, es.AddressType) {
			plan.Delete = append(plan.Delete, es)
			continue
		}
		byType[es.AddressType] = append(byType[es.AddressType], es)
	}
	for _, at := range types {
		p := planAddressType(svc, pods, byType[at], at, maxPerSlice)
		plan.Create = append(plan.Create, p.Create...)
		plan.Update = append(plan.Update, p.Update...)
		plan.Delete = append(plan.Delete, p.Delete...)
	}

	// Reuse slices that would be deleted for those that would be created.
	for i := 0; i < len(plan.Delete) && len(plan.Create) > 0; {
		old := plan.Delete[i]
		last := plan.Create[len(plan.Create)-1]
		if old.AddressType != last.AddressType || !ownedBy(old, svc) {
			i++
			continue
		}
		reused := old.DeepCopy()
		reused.Labels, reused.Ports, reused.Endpoints = last.Labels, last.Ports, last.Endpoints
		plan.Create = plan.Create[:len(plan.Create)-1]
		plan.Update = append(plan.Update, reused)
		plan.Delete = slices.Delete(plan.Delete, i, i+1)
	}
	if svc.DeletionTimestamp != nil {
		plan.Create = nil
	}
	for _, es := range append(plan.Create, plan.Update...) {
		setTriggerTime(es, triggerTime)
	}
	return plan
}

// addressTypes returns the address types of a service's slices: its IP
// families; else its cluster IP's family; else (a headless service whose
// families are unset) IPv4.
func addressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	switch {
	case len(out) > 0:
		return out
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone && isIPv6(svc.Spec.ClusterIP):
		return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
	default:
		return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
}

// PodEndpoint returns the EndpointSlice endpoint of a pod for a service
// and address type (no addresses if the pod has none of that type).
func PodEndpoint(p *corev1.Pod, svc *corev1.Service, at discoveryv1.AddressType) discoveryv1.Endpoint {
	serving := IsPodReady(p)
	terminating := p.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Addresses: []string{},
		Conditions: discoveryv1.EndpointConditions{
			Ready: ptrTo(ready), Serving: ptrTo(serving), Terminating: ptrTo(terminating),
		},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
	}
	for _, ip := range podIPs(p) {
		if isIPv6(ip) == (at == discoveryv1.AddressTypeIPv6) {
			ep.Addresses = append(ep.Addresses, ip)
		}
	}
	if p.Spec.NodeName != "" {
		ep.NodeName = ptrTo(p.Spec.NodeName)
	}
	if ShouldSetHostname(p, svc) {
		ep.Hostname = ptrTo(p.Spec.Hostname)
	}
	return ep
}

// EndpointPorts returns a pod's slice ports for a service: each service
// port whose target port the pod resolves (none for a headless service
// without ports).
func EndpointPorts(svc *corev1.Service, p *corev1.Pod) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		port, err := FindPort(p, sp)
		if err != nil {
			continue
		}
		out = append(out, discoveryv1.EndpointPort{
			Name: ptrTo(sp.Name), Port: ptrTo(port), Protocol: ptrTo(sp.Protocol), AppProtocol: sp.AppProtocol,
		})
	}
	return out
}

// slicePortsKey identifies a set of slice ports, in any order.
func slicePortsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, len(ports))
	for i, p := range ports {
		var b strings.Builder
		if p.Name != nil {
			b.WriteString(*p.Name)
		}
		b.WriteByte(0)
		if p.Port != nil {
			b.WriteString(strconv.Itoa(int(*p.Port)))
		}
		b.WriteByte(0)
		if p.Protocol != nil {
			b.WriteString(string(*p.Protocol))
		} else {
			b.WriteString(string(corev1.ProtocolTCP))
		}
		if p.AppProtocol != nil {
			b.WriteString("=" + *p.AppProtocol)
		}
		keys[i] = b.String()
	}
	slices.Sort(keys)
	return strings.Join(keys, "\x01")
}

// endpointKey identifies an endpoint across syncs: its addresses,
// hostname and pod; conditions and node may change in place.
func endpointKey(ep *discoveryv1.Endpoint) string {
	addrs := slices.Clone(ep.Addresses)
	slices.Sort(addrs)
	var b strings.Builder
	b.WriteString(strings.Join(addrs, ","))
	b.WriteByte('|')
	if ep.Hostname != nil {
		b.WriteString(*ep.Hostname)
	}
	b.WriteByte('|')
	if ep.TargetRef != nil {
		b.WriteString(ep.TargetRef.Namespace + "/" + ep.TargetRef.Name)
	}
	return b.String()
}

// endpointChanged reports whether what is not in the key differs: node,
// zone, conditions, or the pod reference (its resourceVersion aside).
func endpointChanged(a, b *discoveryv1.Endpoint) bool {
	return !eqPtr(a.NodeName, b.NodeName) || !eqPtr(a.Zone, b.Zone) ||
		!eqPtr(a.Conditions.Ready, b.Conditions.Ready) ||
		!eqPtr(a.Conditions.Serving, b.Conditions.Serving) ||
		!eqPtr(a.Conditions.Terminating, b.Conditions.Terminating) ||
		!sameRef(a.TargetRef, b.TargetRef)
}

func eqPtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func sameRef(a, b *corev1.ObjectReference) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.ResourceVersion, y.ResourceVersion = "", ""
	return x == y
}

type portGroupWant struct {
	ports     []discoveryv1.EndpointPort
	endpoints map[string]*discoveryv1.Endpoint
}

func planAddressType(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, at discoveryv1.AddressType, maxPerSlice int) SlicePlan {
	var plan SlicePlan
	existingByPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, es := range existing {
		if ownedBy(es, svc) {
			k := slicePortsKey(es.Ports)
			existingByPorts[k] = append(existingByPorts[k], es)
		} else {
			plan.Delete = append(plan.Delete, es)
		}
	}
	want := map[string]*portGroupWant{}
	for _, p := range pods {
		if !ShouldPodBeInEndpoints(p, true) {
			continue
		}
		ports := EndpointPorts(svc, p)
		k := slicePortsKey(ports)
		g := want[k]
		if g == nil {
			g = &portGroupWant{ports: ports, endpoints: map[string]*discoveryv1.Endpoint{}}
			want[k] = g
		}
		ep := PodEndpoint(p, svc, at)
		if len(ep.Addresses) > 0 {
			g.endpoints[endpointKey(&ep)] = &ep
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		p := planPorts(svc, existingByPorts[k], want[k], at, maxPerSlice)
		plan.Create = append(plan.Create, p.Create...)
		plan.Update = append(plan.Update, p.Update...)
		plan.Delete = append(plan.Delete, p.Delete...)
	}
	for _, k := range slices.Sorted(maps.Keys(existingByPorts)) {
		if want[k] == nil {
			plan.Delete = append(plan.Delete, existingByPorts[k]...)
		}
	}
	// A service without endpoints keeps one empty placeholder slice.
	if len(existing) == len(plan.Delete) && len(plan.Create) == 0 {
		placeholder := newSlice(svc, []discoveryv1.EndpointPort{}, at)
		if len(plan.Delete) == 1 && isPlaceholder(plan.Delete[0], placeholder, svc) {
			plan.Delete = nil
		} else {
			plan.Create = append(plan.Create, placeholder)
		}
	}
	return plan
}

func isPlaceholder(es, placeholder *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	return ownedBy(es, svc) && len(es.Endpoints) == 0 && len(es.Ports) == 0 &&
		es.AddressType == placeholder.AddressType && maps.Equal(es.Labels, placeholder.Labels)
}

// planPorts reconciles the slices of one set of ports.
func planPorts(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, want *portGroupWant, at discoveryv1.AddressType, maxPerSlice int) SlicePlan {
	var plan SlicePlan
	existing = slices.Clone(existing)
	slices.SortFunc(existing, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	remaining := maps.Clone(want.endpoints)
	var updating, unchanged []*discoveryv1.EndpointSlice

	// 1. Keep wanted endpoints where they are; drop the others.
	for _, es := range existing {
		kept := make([]discoveryv1.Endpoint, 0, len(es.Endpoints))
		changed := false
		for i := range es.Endpoints {
			k := endpointKey(&es.Endpoints[i])
			w, ok := remaining[k]
			if !ok {
				continue
			}
			kept = append(kept, *w)
			changed = changed || endpointChanged(w, &es.Endpoints[i])
			delete(remaining, k)
		}
		labels, labelsChanged := sliceLabels(es, svc)
		switch {
		case len(kept) == 0:
			// Empty (emptied now, or by someone else): deleted, or reused
			// for a slice that would otherwise be created.
			plan.Delete = append(plan.Delete, es)
		case changed || len(kept) != len(es.Endpoints):
			next := es.DeepCopy()
			next.Endpoints, next.Labels = kept, labels
			updating = append(updating, next)
		case labelsChanged:
			next := es.DeepCopy()
			next.Labels = labels
			updating = append(updating, next)
		default:
			unchanged = append(unchanged, es)
		}
	}

	queue := slices.Sorted(maps.Keys(remaining))
	pop := func() discoveryv1.Endpoint {
		ep := *remaining[queue[0]]
		queue = queue[1:]
		return ep
	}
	// 2. Fill the slices being rewritten anyway, fullest first.
	slices.SortStableFunc(updating, func(a, b *discoveryv1.EndpointSlice) int {
		return cmp.Compare(len(b.Endpoints), len(a.Endpoints))
	})
	for _, es := range updating {
		for len(queue) > 0 && len(es.Endpoints) < maxPerSlice {
			es.Endpoints = append(es.Endpoints, pop())
		}
	}
	// 3. Put the rest in the one unchanged slice they fit best, else in
	// new slices.
	for len(queue) > 0 {
		var fill *discoveryv1.EndpointSlice
		if len(queue) < maxPerSlice {
			best := maxPerSlice
			for _, es := range unchanged {
				if gap := maxPerSlice - len(queue) - len(es.Endpoints); gap >= 0 && gap < best {
					best, fill = gap, es
				}
			}
		}
		if fill == nil {
			fill = newSlice(svc, want.ports, at)
		} else {
			unchanged = slices.DeleteFunc(unchanged, func(es *discoveryv1.EndpointSlice) bool { return es == fill })
			fill = fill.DeepCopy()
		}
		for len(queue) > 0 && len(fill.Endpoints) < maxPerSlice {
			fill.Endpoints = append(fill.Endpoints, pop())
		}
		if fill.Name == "" {
			plan.Create = append(plan.Create, fill)
		} else {
			updating = append(updating, fill)
		}
	}
	slices.SortFunc(updating, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	plan.Update = updating
	return plan
}

// newSlice returns an empty slice for a service: named after it, owned
// by it, labelled as the controller's.
func newSlice(svc *corev1.Service, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-",
			Namespace:       svc.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, serviceKind)},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	es.Labels, _ = sliceLabels(es, svc)
	return es
}

func isReservedLabel(k string) bool {
	return k == discoveryv1.LabelServiceName || k == discoveryv1.LabelManagedBy || k == corev1.IsHeadlessService
}

// sliceLabels returns the labels a service's slice should have (the
// service's, the headless marker, service name and managed-by) and
// whether the service's own labels differ from the slice's.
func sliceLabels(es *discoveryv1.EndpointSlice, svc *corev1.Service) (map[string]string, bool) {
	have, want := map[string]string{}, map[string]string{}
	for k, v := range es.Labels {
		if !isReservedLabel(k) {
			have[k] = v
		}
	}
	for k, v := range svc.Labels {
		if !isReservedLabel(k) {
			want[k] = v
		}
	}
	changed := !maps.Equal(have, want)
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		want[corev1.IsHeadlessService] = ""
	}
	want[discoveryv1.LabelServiceName] = svc.Name
	want[discoveryv1.LabelManagedBy] = ControllerName
	return want, changed
}

// ownedBy reports whether a slice's owner references name the service.
func ownedBy(es *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range es.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}

func setTriggerTime(es *discoveryv1.EndpointSlice, t time.Time) {
	if t.IsZero() {
		delete(es.Annotations, corev1.EndpointsLastChangeTriggerTime)
		return
	}
	if es.Annotations == nil {
		es.Annotations = map[string]string{}
	}
	es.Annotations[corev1.EndpointsLastChangeTriggerTime] = t.UTC().Format(time.RFC3339Nano)
}
