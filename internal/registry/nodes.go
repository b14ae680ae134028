package registry

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Node role labels kubectl's ROLES column reads.
const (
	nodeRoleLabelPrefix = "node-role.kubernetes.io/"
	nodeRoleLabel       = "kubernetes.io/role"
)

var supportedNodeAddressTypes = []corev1.NodeAddressType{corev1.NodeHostName, corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeInternalDNS, corev1.NodeExternalDNS}

// Nodes is core/v1 nodes (cluster-scoped).
func Nodes() *Resource {
	return &Resource{
		GroupVersion:      corev1.SchemeGroupVersion,
		Kind:              "Node",
		Plural:            "nodes",
		Singular:          "node",
		ShortNames:        []string{"no"},
		New:               func() runtime.Object { return &corev1.Node{} },
		NewList:           func() runtime.Object { return &corev1.NodeList{} },
		StatusSubresource: true,
		Default: func(obj runtime.Object) {
			n := obj.(*corev1.Node)
			switch {
			case len(n.Spec.PodCIDRs) > 0:
				n.Spec.PodCIDR = n.Spec.PodCIDRs[0]
			case n.Spec.PodCIDR != "":
				n.Spec.PodCIDRs = []string{n.Spec.PodCIDR}
			}
			if n.Status.Allocatable == nil && n.Status.Capacity != nil {
				n.Status.Allocatable = n.Status.Capacity.DeepCopy()
			}
		},
		Validate: func(obj runtime.Object) field.ErrorList { return validateNode(obj.(*corev1.Node)) },
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			n, o := obj.(*corev1.Node), old.(*corev1.Node)
			errs := validateNode(n)
			p := field.NewPath("spec")
			if o.Spec.PodCIDR != "" {
				errs = append(errs, immutable(n.Spec.PodCIDR, o.Spec.PodCIDR, p.Child("podCIDR"))...)
			}
			if len(o.Spec.PodCIDRs) > 0 {
				errs = append(errs, immutable(n.Spec.PodCIDRs, o.Spec.PodCIDRs, p.Child("podCIDRs"))...)
			}
			if o.Spec.ProviderID != "" {
				errs = append(errs, immutable(n.Spec.ProviderID, o.Spec.ProviderID, p.Child("providerID"))...)
			}
			return errs
		},
		ValidateStatus: func(obj, _ runtime.Object) field.ErrorList { return validateNodeStatus(&obj.(*corev1.Node).Status) },
		TableColumns: []metav1.TableColumnDefinition{
			col("Status", "The status of the node"),
			col("Roles", "The roles of the node"),
			ageColumn,
			col("Version", "Kubelet Version reported by the node."),
			wide(col("Internal-IP", "List of addresses reachable to the node. Queried from cloud provider, if available.")),
			wide(col("External-IP", "List of addresses reachable to the node. Queried from cloud provider, if available.")),
			wide(col("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).")),
			wide(col("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).")),
			wide(col("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).")),
		},
		TableRow: func(obj runtime.Object) []interface{} { return nodeRow(obj.(*corev1.Node)) },
		SelectableFields: func(obj runtime.Object) fields.Set {
			return fields.Set{"spec.unschedulable": strconv.FormatBool(obj.(*corev1.Node).Spec.Unschedulable)}
		},
	}
}

// validateNode checks the spec and the status a node registers with.
func validateNode(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	if n.Spec.PodCIDR != "" {
		errs = append(errs, validation.IsValidCIDR(p.Child("podCIDR"), n.Spec.PodCIDR)...)
	}
	for i, c := range n.Spec.PodCIDRs {
		errs = append(errs, validation.IsValidCIDR(p.Child("podCIDRs").Index(i), c)...)
	}
	if len(n.Spec.PodCIDRs) > 0 && n.Spec.PodCIDR != "" && n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
		errs = append(errs, field.Invalid(p.Child("podCIDRs").Index(0), n.Spec.PodCIDRs[0], "must match `spec.podCIDR`"))
	}
	errs = append(errs, validateTaints(n.Spec.Taints, p.Child("taints"))...)
	return append(errs, validateNodeStatus(&n.Status)...)
}

// validateTaints checks keys, values and effects, and that no key/effect
// pair repeats.
func validateTaints(taints []corev1.Taint, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, t := range taints {
		p := fldPath.Index(i)
		if t.Key == "" {
			errs = append(errs, field.Required(p.Child("key"), ""))
		} else {
			errs = append(errs, qualifiedName(t.Key, p.Child("key"))...)
		}
		errs = append(errs, invalidEach(p.Child("value"), t.Value, validation.IsValidLabelValue(t.Value))...)
		switch {
		case t.Effect == "":
			errs = append(errs, field.Required(p.Child("effect"), ""))
		case !contains(supportedTaintEffects, t.Effect):
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, supportedTaintEffects))
		}
		key := t.Key + "/" + string(t.Effect)
		if seen.Has(key) {
			errs = append(errs, field.Duplicate(p, fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect)))
		}
		seen.Insert(key)
	}
	return errs
}

// validateNodeStatus checks addresses and quantities.
func validateNodeStatus(s *corev1.NodeStatus) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("status")
	for i, a := range s.Addresses {
		ap := p.Child("addresses").Index(i)
		if !contains(supportedNodeAddressTypes, a.Type) {
			errs = append(errs, field.NotSupported(ap.Child("type"), a.Type, supportedNodeAddressTypes))
		}
		if a.Address == "" {
			errs = append(errs, field.Required(ap.Child("address"), ""))
		}
	}
	for _, name := range sortedResourceNames(s.Capacity) {
		errs = append(errs, quantityNonNegative(s.Capacity[name], p.Child("capacity").Key(string(name)))...)
	}
	for _, name := range sortedResourceNames(s.Allocatable) {
		errs = append(errs, quantityNonNegative(s.Allocatable[name], p.Child("allocatable").Key(string(name)))...)
	}
	return errs
}

// nodeRow renders STATUS ROLES AGE VERSION | INTERNAL-IP EXTERNAL-IP
// OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME.
func nodeRow(n *corev1.Node) []interface{} {
	var status []string
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			status = append(status, string(c.Type))
		} else {
			status = append(status, "Not"+string(c.Type))
		}
		break
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if n.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	roles := strings.Join(nodeRoles(n), ",")
	if roles == "" {
		roles = "<none>"
	}
	info := n.Status.NodeInfo
	unknown := func(s string) string {
		if s == "" {
			return "<unknown>"
		}
		return s
	}
	return []interface{}{
		strings.Join(status, ","), roles, age(n.CreationTimestamp), info.KubeletVersion,
		nodeAddress(n, corev1.NodeInternalIP), nodeAddress(n, corev1.NodeExternalIP),
		unknown(info.OSImage), unknown(info.KernelVersion), unknown(info.ContainerRuntimeVersion),
	}
}

// nodeRoles reads node-role.kubernetes.io/<role> and kubernetes.io/role labels.
func nodeRoles(n *corev1.Node) []string {
	roles := sets.New[string]()
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, nodeRoleLabelPrefix):
			if role := strings.TrimPrefix(k, nodeRoleLabelPrefix); role != "" {
				roles.Insert(role)
			}
		case k == nodeRoleLabel && v != "":
			roles.Insert(v)
		}
	}
	out := roles.UnsortedList()
	sort.Strings(out)
	return out
}

// nodeAddress returns the node's first address of type t, or "<none>".
func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}
