package endpoints

import (
	"fmt"
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// ShouldPodBeInEndpoints reports whether a pod belongs in a service's
// endpoints at all, ready or not: it has an IP, has not finished
// (Succeeded or Failed), and is not being deleted unless
// includeTerminating.
func ShouldPodBeInEndpoints(p *corev1.Pod, includeTerminating bool) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if p.Status.PodIP == "" && len(p.Status.PodIPs) == 0 {
		return false
	}
	return includeTerminating || p.DeletionTimestamp == nil
}

// ShouldSetHostname reports whether an endpoint of pod for svc carries
// the pod's hostname: the pod sets spec.hostname and its spec.subdomain
// names the service (the headless-service DNS records of StatefulSets).
func ShouldSetHostname(p *corev1.Pod, svc *corev1.Service) bool {
	return p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name && p.Namespace == svc.Namespace
}

// FindPort resolves a service port's targetPort on a pod: a number is
// used as is; a name is looked up among the container ports (and those
// of sidecar init containers) with the service port's protocol.
func FindPort(p *corev1.Pod, sp *corev1.ServicePort) (int32, error) {
	switch sp.TargetPort.Type {
	case intstr.Int:
		return int32(sp.TargetPort.IntValue()), nil
	case intstr.String:
		name := sp.TargetPort.StrVal
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == name && cp.Protocol == sp.Protocol {
					return cp.ContainerPort, nil
				}
			}
		}
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, cp := range c.Ports {
				if cp.Name == name && cp.Protocol == sp.Protocol {
					return cp.ContainerPort, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no container port %q/%s in pod %s/%s", sp.TargetPort.String(), sp.Protocol, p.Namespace, p.Name)
}

// isIPv6 reports whether s is an IPv6 address (false for IPv4 and for
// anything unparsable).
func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && !a.Is4In6()
}

// podIPs returns the pod's IPs, falling back to status.podIP when
// status.podIPs is empty.
func podIPs(p *corev1.Pod) []string {
	if len(p.Status.PodIPs) == 0 {
		if p.Status.PodIP == "" {
			return nil
		}
		return []string{p.Status.PodIP}
	}
	out := make([]string, len(p.Status.PodIPs))
	for i, ip := range p.Status.PodIPs {
		out[i] = ip.IP
	}
	return out
}

// serviceWantsIPv6 reports which family a service's Endpoints use: its
// first ipFamily, else its cluster IP's family, else (headless, no
// families) the pod's primary IP's.
func serviceWantsIPv6(svc *corev1.Service, p *corev1.Pod) bool {
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		return svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone:
		return isIPv6(svc.Spec.ClusterIP)
	default:
		return isIPv6(p.Status.PodIP)
	}
}

// endpointIP returns the pod's address of the family the service uses,
// or "" if it has none.
func endpointIP(svc *corev1.Service, p *corev1.Pod) string {
	want6 := serviceWantsIPv6(svc, p)
	for _, ip := range podIPs(p) {
		if isIPv6(ip) == want6 {
			return ip
		}
	}
	return ""
}

// podChange says how a pod update may change endpoints: changed means
// its addresses or conditions may differ (readiness, deletion, IPs);
// membership means it may now belong to other services (labels,
// hostname or subdomain changed).
func podChange(old, cur *corev1.Pod) (changed, membership bool) {
	membership = !reflect.DeepEqual(old.Labels, cur.Labels) ||
		old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain
	switch {
	case (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil):
		changed = true
	case IsPodReady(old) != IsPodReady(cur):
		changed = true
	case old.Status.Phase != cur.Status.Phase:
		changed = true
	case old.Spec.NodeName != cur.Spec.NodeName:
		changed = true
	case !reflect.DeepEqual(podIPs(old), podIPs(cur)):
		changed = true
	}
	return changed, membership
}
