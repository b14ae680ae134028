package registry

import (
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Upstream's EndpointSlice limits.
const (
	maxEndpoints          = 1000
	maxAddressesPerEnd    = 100
	endpointSliceMaxPorts = 100
)

var supportedAddressTypes = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN}

// EndpointSlices is discovery.k8s.io/v1 endpointslices.
func EndpointSlices() *Resource {
	return &Resource{
		GroupVersion: discoveryv1.SchemeGroupVersion,
		Kind:         "EndpointSlice",
		Plural:       "endpointslices",
		Singular:     "endpointslice",
		Namespaced:   true,
		New:          func() runtime.Object { return &discoveryv1.EndpointSlice{} },
		NewList:      func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
		Default: func(obj runtime.Object) {
			es := obj.(*discoveryv1.EndpointSlice)
			for i := range es.Ports {
				if es.Ports[i].Name == nil {
					es.Ports[i].Name = ptrTo("")
				}
				if es.Ports[i].Protocol == nil {
					es.Ports[i].Protocol = ptrTo(corev1.ProtocolTCP)
				}
			}
		},
		PrepareForCreate: func(obj runtime.Object) { obj.(*discoveryv1.EndpointSlice).Generation = 1 },
		PrepareForUpdate: func(obj, old runtime.Object) {
			es, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
			type content struct {
				AddressType discoveryv1.AddressType
				Endpoints   []discoveryv1.Endpoint
				Ports       []discoveryv1.EndpointPort
			}
			bumpGeneration(&es.ObjectMeta, &o.ObjectMeta,
				content{es.AddressType, es.Endpoints, es.Ports}, content{o.AddressType, o.Endpoints, o.Ports})
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			return validateEndpointSlice(obj.(*discoveryv1.EndpointSlice))
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			es, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
			errs := validateEndpointSlice(es)
			return append(errs, immutable(es.AddressType, o.AddressType, field.NewPath("addressType"))...)
		},
		TableColumns: []metav1.TableColumnDefinition{
			col("AddressType", "Type of address carried by this EndpointSlice."),
			col("Ports", "Ports advertised by this EndpointSlice."),
			col("Endpoints", "Endpoints represented by this EndpointSlice."),
			ageColumn,
		},
		TableRow: func(obj runtime.Object) []interface{} {
			es := obj.(*discoveryv1.EndpointSlice)
			var ports, addrs []string
			for _, p := range es.Ports {
				switch {
				case p.Port != nil:
					ports = append(ports, strconv.Itoa(int(*p.Port)))
				case p.Name != nil && *p.Name != "":
					ports = append(ports, *p.Name)
				default:
					ports = append(ports, "*")
				}
			}
			for _, e := range es.Endpoints {
				addrs = append(addrs, e.Addresses...)
			}
			return []interface{}{string(es.AddressType), listWithMore(ports, 3, "<unset>"), listWithMore(addrs, 3, "<unset>"), age(es.CreationTimestamp)}
		},
	}
}

// validateEndpointSlice checks the address type, each address against it,
// and the ports.
func validateEndpointSlice(es *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	switch {
	case es.AddressType == "":
		errs = append(errs, field.Required(field.NewPath("addressType"), ""))
	case !contains(supportedAddressTypes, es.AddressType):
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), es.AddressType, supportedAddressTypes))
	}
	ep := field.NewPath("endpoints")
	if len(es.Endpoints) > maxEndpoints {
		errs = append(errs, field.TooMany(ep, len(es.Endpoints), maxEndpoints))
	}
	for i, e := range es.Endpoints {
		p := ep.Index(i)
		ap := p.Child("addresses")
		switch {
		case len(e.Addresses) == 0:
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		case len(e.Addresses) > maxAddressesPerEnd:
			errs = append(errs, field.TooMany(ap, len(e.Addresses), maxAddressesPerEnd))
		}
		for j, a := range e.Addresses {
			switch es.AddressType {
			case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
				ipErrs := validation.IsValidIP(ap.Index(j), a)
				if len(ipErrs) == 0 {
					if v4 := net.ParseIP(a).To4() != nil; v4 != (es.AddressType == discoveryv1.AddressTypeIPv4) {
						ipErrs = field.ErrorList{field.Invalid(ap.Index(j), a, "must be a valid "+string(es.AddressType)+" address")}
					}
				}
				errs = append(errs, ipErrs...)
			case discoveryv1.AddressTypeFQDN:
				errs = append(errs, dnsSubdomain(a, ap.Index(j))...)
			}
		}
		if e.Hostname != nil {
			errs = append(errs, dnsLabel(*e.Hostname, p.Child("hostname"))...)
		}
		if e.NodeName != nil && *e.NodeName != "" {
			errs = append(errs, dnsSubdomain(*e.NodeName, p.Child("nodeName"))...)
		}
	}
	pp := field.NewPath("ports")
	if len(es.Ports) > endpointSliceMaxPorts {
		errs = append(errs, field.TooMany(pp, len(es.Ports), endpointSliceMaxPorts))
	}
	names := sets.New[string]()
	for i, port := range es.Ports {
		p := pp.Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if name != "" {
			errs = append(errs, dnsLabel(name, p.Child("name"))...)
		}
		if names.Has(name) {
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		}
		names.Insert(name)
		if port.Protocol == nil {
			errs = append(errs, field.Required(p.Child("protocol"), ""))
		} else {
			errs = append(errs, protocol(*port.Protocol, p.Child("protocol"))...)
		}
		if port.Port != nil {
			errs = append(errs, invalidEach(p.Child("port"), *port.Port, validation.IsInRange(int(*port.Port), 0, 65535))...)
		}
	}
	return errs
}
