package registry

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// NodePortRange is the range Validate accepts for services' nodePorts
// (upstream's --service-node-port-range default).
var NodePortRange = struct{ Base, Size int32 }{Base: 30000, Size: 2768}

var (
	supportedServiceTypes          = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName}
	supportedSessionAffinities     = []corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}
	supportedExternalTraffic       = []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}
	supportedInternalTraffic       = []corev1.ServiceInternalTrafficPolicy{corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}
	defaultClientIPTimeoutSecs     = int32(corev1.DefaultClientIPServiceAffinitySeconds)
	maxClientIPServiceAffinitySecs = int32(86400)
)

// Services is core/v1 services. Cluster IPs and node ports are allocated
// by the server, which owns the allocation state.
func Services() *Resource {
	return &Resource{
		GroupVersion:      corev1.SchemeGroupVersion,
		Kind:              "Service",
		Plural:            "services",
		Singular:          "service",
		ShortNames:        []string{"svc"},
		Categories:        []string{"all"},
		Namespaced:        true,
		New:               func() runtime.Object { return &corev1.Service{} },
		NewList:           func() runtime.Object { return &corev1.ServiceList{} },
		StatusSubresource: true,
		Default:           func(obj runtime.Object) { defaultService(obj.(*corev1.Service)) },
		PrepareForCreate: func(obj runtime.Object) {
			obj.(*corev1.Service).Status = corev1.ServiceStatus{}
		},
		PrepareForUpdate: func(obj, old runtime.Object) {
			keepAllocated(obj.(*corev1.Service), old.(*corev1.Service))
		},
		Validate: func(obj runtime.Object) field.ErrorList { return validateService(obj.(*corev1.Service)) },
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			svc, o := obj.(*corev1.Service), old.(*corev1.Service)
			errs := validateService(svc)
			if svc.Spec.Type != corev1.ServiceTypeExternalName && o.Spec.Type != corev1.ServiceTypeExternalName && o.Spec.ClusterIP != "" {
				errs = append(errs, immutable(svc.Spec.ClusterIP, o.Spec.ClusterIP, field.NewPath("spec", "clusterIP"))...)
			}
			return errs
		},
		ValidateStatus: func(obj, _ runtime.Object) field.ErrorList {
			svc := obj.(*corev1.Service)
			var errs field.ErrorList
			for i, ing := range svc.Status.LoadBalancer.Ingress {
				p := field.NewPath("status", "loadBalancer", "ingress").Index(i)
				if ing.IP != "" {
					errs = append(errs, validation.IsValidIP(p.Child("ip"), ing.IP)...)
				}
				if ing.Hostname != "" {
					errs = append(errs, dnsSubdomain(ing.Hostname, p.Child("hostname"))...)
				}
			}
			return errs
		},
		TableColumns: []metav1.TableColumnDefinition{
			col("Type", "type determines how the Service is exposed."),
			col("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
			col("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
			col("Port(s)", "The list of ports that are exposed by this service."),
			ageColumn,
			wide(col("Selector", "Route service traffic to pods with label keys and values matching this selector.")),
		},
		TableRow: func(obj runtime.Object) []interface{} {
			svc := obj.(*corev1.Service)
			clusterIP := "<none>"
			if len(svc.Spec.ClusterIPs) > 0 {
				clusterIP = svc.Spec.ClusterIPs[0]
			} else if svc.Spec.ClusterIP != "" {
				clusterIP = svc.Spec.ClusterIP
			}
			ports := servicePorts(svc.Spec.Ports)
			if ports == "" {
				ports = "<none>"
			}
			return []interface{}{string(svc.Spec.Type), clusterIP, serviceExternalIP(svc), ports, age(svc.CreationTimestamp), labels.FormatLabels(svc.Spec.Selector)}
		},
	}
}

// defaultService applies upstream's Service defaults.
func defaultService(svc *corev1.Service) {
	s := &svc.Spec
	// clusterIP and clusterIPs[0] are the same field in two shapes.
	switch {
	case len(s.ClusterIPs) > 0:
		s.ClusterIP = s.ClusterIPs[0]
	case s.ClusterIP != "":
		s.ClusterIPs = []string{s.ClusterIP}
	}
	if s.SessionAffinity == "" {
		s.SessionAffinity = corev1.ServiceAffinityNone
	}
	if s.SessionAffinity == corev1.ServiceAffinityNone {
		s.SessionAffinityConfig = nil
	}
	if s.SessionAffinity == corev1.ServiceAffinityClientIP {
		if s.SessionAffinityConfig == nil || s.SessionAffinityConfig.ClientIP == nil || s.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			t := defaultClientIPTimeoutSecs
			s.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &t}}
		}
	}
	if s.Type == "" {
		s.Type = corev1.ServiceTypeClusterIP
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		defaultServicePortTarget(p)
	}
	if (s.Type == corev1.ServiceTypeNodePort || s.Type == corev1.ServiceTypeLoadBalancer) && s.ExternalTrafficPolicy == "" {
		s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if s.Type != corev1.ServiceTypeExternalName && s.InternalTrafficPolicy == nil {
		p := corev1.ServiceInternalTrafficPolicyCluster
		s.InternalTrafficPolicy = &p
	}
	if s.Type == corev1.ServiceTypeLoadBalancer && s.AllocateLoadBalancerNodePorts == nil {
		s.AllocateLoadBalancerNodePorts = ptrTo(true)
	}
}

// keepAllocated copies the cluster IPs and node ports a client left out
// of an update (kubectl replace, apply) from the stored service, as
// upstream's service REST does.
func keepAllocated(svc, old *corev1.Service) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) == 0 {
		svc.Spec.ClusterIP = old.Spec.ClusterIP
		svc.Spec.ClusterIPs = append([]string(nil), old.Spec.ClusterIPs...)
		svc.Spec.IPFamilies = append([]corev1.IPFamily(nil), old.Spec.IPFamilies...)
		if svc.Spec.IPFamilyPolicy == nil && old.Spec.IPFamilyPolicy != nil {
			p := *old.Spec.IPFamilyPolicy
			svc.Spec.IPFamilyPolicy = &p
		}
	}
	if needsNodePorts(svc) && needsNodePorts(old) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			for _, op := range old.Spec.Ports {
				if op.Port == p.Port && op.Protocol == p.Protocol {
					p.NodePort = op.NodePort
				}
			}
		}
	}
	if svc.Spec.HealthCheckNodePort == 0 {
		svc.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
	}
}

// needsNodePorts reports whether a service gets node ports.
func needsNodePorts(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

// validateService validates a service's name and spec.
func validateService(svc *corev1.Service) field.ErrorList {
	errs := nameIs(apivalidation.NameIsDNS1035Label, &svc.ObjectMeta)
	s := &svc.Spec
	p := field.NewPath("spec")
	switch {
	case s.Type == "":
		errs = append(errs, field.Required(p.Child("type"), ""))
	case !contains(supportedServiceTypes, s.Type):
		errs = append(errs, field.NotSupported(p.Child("type"), s.Type, supportedServiceTypes))
	}
	headless := s.ClusterIP == corev1.ClusterIPNone
	external := s.Type == corev1.ServiceTypeExternalName

	if len(s.Ports) == 0 && !headless && !external {
		errs = append(errs, field.Required(p.Child("ports"), ""))
	}
	names := sets.New[string]()
	nodePorts := sets.New[string]()
	for i := range s.Ports {
		errs = append(errs, validateServicePort(&s.Ports[i], len(s.Ports) > 1, s.Type, names, nodePorts, p.Child("ports").Index(i))...)
	}

	if external {
		if s.ClusterIP != "" {
			errs = append(errs, field.Forbidden(p.Child("clusterIP"), "may not be set for ExternalName services"))
		}
		name := strings.TrimSuffix(s.ExternalName, ".")
		if s.ExternalName == "" {
			errs = append(errs, field.Required(p.Child("externalName"), ""))
		} else {
			errs = append(errs, dnsSubdomain(name, p.Child("externalName"))...)
		}
	} else if s.ClusterIP != "" && !headless {
		errs = append(errs, validation.IsValidIP(p.Child("clusterIP"), s.ClusterIP)...)
	}
	if len(s.ClusterIPs) > 0 && s.ClusterIP != "" && s.ClusterIPs[0] != s.ClusterIP {
		errs = append(errs, field.Invalid(p.Child("clusterIPs").Index(0), s.ClusterIPs[0], "must match `spec.clusterIP`"))
	}
	for i, ip := range s.ClusterIPs {
		if ip != corev1.ClusterIPNone {
			errs = append(errs, validation.IsValidIP(p.Child("clusterIPs").Index(i), ip)...)
		}
	}
	for i, ip := range s.ExternalIPs {
		errs = append(errs, validation.IsValidIP(p.Child("externalIPs").Index(i), ip)...)
	}
	errs = append(errs, validateLabels(s.Selector, p.Child("selector"))...)

	switch {
	case s.SessionAffinity == "":
		errs = append(errs, field.Required(p.Child("sessionAffinity"), ""))
	case !contains(supportedSessionAffinities, s.SessionAffinity):
		errs = append(errs, field.NotSupported(p.Child("sessionAffinity"), s.SessionAffinity, supportedSessionAffinities))
	case s.SessionAffinity == corev1.ServiceAffinityClientIP:
		cfg := s.SessionAffinityConfig
		if cfg == nil || cfg.ClientIP == nil || cfg.ClientIP.TimeoutSeconds == nil {
			errs = append(errs, field.Required(p.Child("sessionAffinityConfig"), "when session affinity type is ClientIP"))
		} else if t := *cfg.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPServiceAffinitySecs {
			errs = append(errs, field.Invalid(p.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), t, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPServiceAffinitySecs)))
		}
	case s.SessionAffinityConfig != nil:
		errs = append(errs, field.Invalid(p.Child("sessionAffinityConfig"), s.SessionAffinityConfig, fmt.Sprintf("must not be set when session affinity is %s", s.SessionAffinity)))
	}

	if s.ExternalTrafficPolicy != "" {
		if s.Type != corev1.ServiceTypeNodePort && s.Type != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Invalid(p.Child("externalTrafficPolicy"), s.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
		} else if !contains(supportedExternalTraffic, s.ExternalTrafficPolicy) {
			errs = append(errs, field.NotSupported(p.Child("externalTrafficPolicy"), s.ExternalTrafficPolicy, supportedExternalTraffic))
		}
	}
	if s.InternalTrafficPolicy == nil {
		if !external {
			errs = append(errs, field.Required(p.Child("internalTrafficPolicy"), ""))
		}
	} else if !contains(supportedInternalTraffic, *s.InternalTrafficPolicy) {
		errs = append(errs, field.NotSupported(p.Child("internalTrafficPolicy"), *s.InternalTrafficPolicy, supportedInternalTraffic))
	}
	return errs
}

// validateServicePort checks one service port.
func validateServicePort(sp *corev1.ServicePort, multi bool, typ corev1.ServiceType, names, nodePorts sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case sp.Name == "" && multi:
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	case sp.Name != "":
		errs = append(errs, dnsLabel(sp.Name, fldPath.Child("name"))...)
		if names.Has(sp.Name) {
			errs = append(errs, field.Duplicate(fldPath.Child("name"), sp.Name))
		}
		names.Insert(sp.Name)
	}
	errs = append(errs, portNumber(sp.Port, fldPath.Child("port"))...)
	errs = append(errs, protocol(sp.Protocol, fldPath.Child("protocol"))...)
	errs = append(errs, portNumOrName(sp.TargetPort, fldPath.Child("targetPort"))...)
	if sp.NodePort != 0 {
		np := fldPath.Child("nodePort")
		switch typ {
		case corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName:
			errs = append(errs, field.Forbidden(np, fmt.Sprintf("may not be used when `type` is '%s'", typ)))
		default:
			if sp.NodePort < NodePortRange.Base || sp.NodePort >= NodePortRange.Base+NodePortRange.Size {
				errs = append(errs, field.Invalid(np, sp.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", NodePortRange.Base, NodePortRange.Base+NodePortRange.Size-1)))
			}
			key := fmt.Sprintf("%d/%s", sp.NodePort, sp.Protocol)
			if nodePorts.Has(key) {
				errs = append(errs, field.Duplicate(np, key))
			}
			nodePorts.Insert(key)
		}
	}
	return errs
}

// servicePorts renders PORT(S): "80/TCP" or "80:30080/TCP", comma-separated.
func servicePorts(ports []corev1.ServicePort) string {
	pieces := make([]string, len(ports))
	for i, p := range ports {
		pieces[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if p.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		}
	}
	return strings.Join(pieces, ",")
}

// serviceExternalIP renders EXTERNAL-IP as kubectl does.
func serviceExternalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" {
				ips = append(ips, ing.IP)
			} else if ing.Hostname != "" {
				ips = append(ips, ing.Hostname)
			}
		}
		ips = append(ips, svc.Spec.ExternalIPs...)
		if len(ips) > 0 {
			return strings.Join(ips, ",")
		}
		return "<pending>"
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}
