package registry

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Messages upstream uses in several places.
const (
	isNegativeErrorMsg    = "must be greater than or equal to 0"
	isNotPositiveErrorMsg = "must be greater than 0"
)

var supportedProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// nonNegative reports a negative value at fldPath.
func nonNegative(v int64, fldPath *field.Path) field.ErrorList {
	return apivalidation.ValidateNonnegativeField(v, fldPath)
}

// positive reports a value that is not greater than zero.
func positive(v int64, fldPath *field.Path) field.ErrorList {
	if v <= 0 {
		return field.ErrorList{field.Invalid(fldPath, v, isNotPositiveErrorMsg)}
	}
	return nil
}

// invalidEach turns the messages of a util/validation Is* check into
// Invalid errors at fldPath.
func invalidEach(fldPath *field.Path, value interface{}, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, m := range msgs {
		errs = append(errs, field.Invalid(fldPath, value, m))
	}
	return errs
}

// dnsLabel requires a DNS-1123 label.
func dnsLabel(v string, fldPath *field.Path) field.ErrorList {
	return invalidEach(fldPath, v, validation.IsDNS1123Label(v))
}

// dnsSubdomain requires a DNS-1123 subdomain.
func dnsSubdomain(v string, fldPath *field.Path) field.ErrorList {
	return invalidEach(fldPath, v, validation.IsDNS1123Subdomain(v))
}

// qualifiedName requires a label-key style name (prefix/name).
func qualifiedName(v string, fldPath *field.Path) field.ErrorList {
	return invalidEach(fldPath, v, validation.IsQualifiedName(v))
}

// portNumber requires 1-65535.
func portNumber(port int32, fldPath *field.Path) field.ErrorList {
	return invalidEach(fldPath, port, validation.IsValidPortNum(int(port)))
}

// protocol requires one of TCP, UDP and SCTP.
func protocol(p corev1.Protocol, fldPath *field.Path) field.ErrorList {
	switch p {
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, p, supportedProtocols)}
}

// portNumOrName validates an int-or-string port (probes, targetPort).
func portNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	switch port.Type {
	case intstr.Int:
		return invalidEach(fldPath, port.IntValue(), validation.IsValidPortNum(port.IntValue()))
	case intstr.String:
		return invalidEach(fldPath, port.StrVal, validation.IsValidPortName(port.StrVal))
	}
	return field.ErrorList{field.InternalError(fldPath, fmt.Errorf("unknown type: %v", port.Type))}
}

// quantityNonNegative reports a negative quantity.
func quantityNonNegative(q resource.Quantity, fldPath *field.Path) field.ErrorList {
	if q.Sign() < 0 {
		return field.ErrorList{field.Invalid(fldPath, q.String(), isNegativeErrorMsg)}
	}
	return nil
}

// positiveIntOrPercent validates a non-negative integer or a percentage
// such as "25%" (maxSurge, maxUnavailable, minAvailable).
func positiveIntOrPercent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	switch v.Type {
	case intstr.String:
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			return field.ErrorList{field.Invalid(fldPath, v, msg)}
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%"))
		return nonNegative(int64(n), fldPath)
	case intstr.Int:
		return nonNegative(int64(v.IntValue()), fldPath)
	}
	return field.ErrorList{field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%')")}
}

// notMoreThan100Percent reports percentages over 100%.
func notMoreThan100Percent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v.Type != intstr.String {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%"))
	if err != nil || n <= 100 {
		return nil
	}
	return field.ErrorList{field.Invalid(fldPath, v, "must not be greater than 100%")}
}

// isZeroIntOrPercent reports 0 and "0%".
func isZeroIntOrPercent(v *intstr.IntOrString) bool {
	if v == nil {
		return true
	}
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%"))
	return err == nil && n == 0
}

// labelSelector validates a selector's syntax.
func labelSelector(sel *metav1.LabelSelector, fldPath *field.Path) field.ErrorList {
	return metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, fldPath)
}

// validateLabels validates a label map.
func validateLabels(l map[string]string, fldPath *field.Path) field.ErrorList {
	return metav1validation.ValidateLabels(l, fldPath)
}

// immutable reports a change between two values.
func immutable(newVal, oldVal interface{}, fldPath *field.Path) field.ErrorList {
	return apivalidation.ValidateImmutableField(newVal, oldVal, fldPath)
}

// objectName returns the name to check: the name, or for a generateName
// request still without a name, the prefix.
func objectName(m *metav1.ObjectMeta) (name string, prefix bool) {
	if m.Name == "" && m.GenerateName != "" {
		return m.GenerateName, true
	}
	return m.Name, false
}

// nameIs checks metadata.name (or generateName) with a stricter rule than
// the server's DNS-subdomain check.
func nameIs(fn apivalidation.ValidateNameFunc, m *metav1.ObjectMeta) field.ErrorList {
	name, prefix := objectName(m)
	if name == "" {
		return nil // the server reports the missing name
	}
	fldPath := field.NewPath("metadata", "name")
	if prefix {
		fldPath = field.NewPath("metadata", "generateName")
	}
	return invalidEach(fldPath, name, fn(name, prefix))
}

// semanticEqual compares API values the way upstream does (quantities by
// value, times by instant).
func semanticEqual(a, b interface{}) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// quantityString renders an optional quantity ("<nil>" when unset).
func quantityString(q *resource.Quantity) string {
	if q == nil {
		return "<nil>"
	}
	return q.String()
}
