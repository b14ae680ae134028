package agent

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/drover/drover/internal/runtime"
)

// envLookup fetches the objects environment variables may refer to.
type envLookup struct {
	ConfigMap func(namespace, name string) (*corev1.ConfigMap, error)
	Secret    func(namespace, name string) (*corev1.Secret, error)
}

// envContext is what the downward API exposes about a running pod.
type envContext struct {
	PodIP, HostIP, NodeName string
	// NodeAllocatable backs resourceFieldRef limits that are not set.
	NodeAllocatable corev1.ResourceList
}

// resolveEnv computes a container's environment as the kubelet does: envFrom
// sources first, then env in order, each value expanded with $(VAR)
// references to variables defined before it. A missing ConfigMap, Secret
// or key that is not optional is an error (the container then waits with
// CreateContainerConfigError).
func resolveEnv(pod *corev1.Pod, c *corev1.Container, ec envContext, lookup envLookup) ([]runtime.EnvVar, error) {
	var out []runtime.EnvVar
	vars := map[string]string{}
	put := func(name, value string) {
		if _, ok := vars[name]; ok {
			for i := range out {
				if out[i].Name == name {
					out[i].Value = value
				}
			}
		} else {
			out = append(out, runtime.EnvVar{Name: name, Value: value})
		}
		vars[name] = value
	}
	for _, from := range c.EnvFrom {
		data := map[string]string{}
		switch {
		case from.ConfigMapRef != nil:
			cm, err := lookup.ConfigMap(pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if optional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, err := lookup.Secret(pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if optional(from.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("secret %q not found", from.SecretRef.Name)
			}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			put(from.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			put(e.Name, expand(e.Value, vars))
			continue
		}
		v, ok, err := valueFrom(pod, c, e.ValueFrom, ec, lookup)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			put(e.Name, v)
		}
	}
	return out, nil
}

func optional(p *bool) bool { return p != nil && *p }

// valueFrom resolves one valueFrom source; ok is false for an optional
// reference that does not exist.
func valueFrom(pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, ec envContext, lookup envLookup) (string, bool, error) {
	switch {
	case src.FieldRef != nil:
		v, err := fieldValue(pod, src.FieldRef.FieldPath, ec)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceValue(c, src.ResourceFieldRef, ec)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := lookup.ConfigMap(pod.Namespace, ref.Name)
		if err != nil {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q not found", ref.Name)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("key %q not found in configmap %q", ref.Key, ref.Name)
		}
		return v, true, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := lookup.Secret(pod.Namespace, ref.Name)
		if err != nil {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q not found", ref.Name)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("key %q not found in secret %q", ref.Key, ref.Name)
		}
		return string(v), true, nil
	}
	return "", false, fmt.Errorf("unsupported valueFrom")
}

// fieldValue resolves a downward API field path.
func fieldValue(pod *corev1.Pod, path string, ec envContext) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		if pod.Spec.NodeName != "" {
			return pod.Spec.NodeName, nil
		}
		return ec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return ec.PodIP, nil
	case "status.podIPs":
		return ec.PodIP, nil
	case "status.hostIP", "status.hostIPs":
		return ec.HostIP, nil
	}
	for _, prefix := range []string{"metadata.labels", "metadata.annotations"} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			key := strings.TrimSuffix(rest, "']")
			if prefix == "metadata.labels" {
				return pod.Labels[key], nil
			}
			return pod.Annotations[key], nil
		}
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// resourceValue resolves a resourceFieldRef: the container's limit or
// request divided by the divisor (rounded up, as the kubelet does); an
// unset limit is the node's allocatable amount.
func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector, ec envContext) (string, error) {
	var q resource.Quantity
	name, isLimit := strings.CutPrefix(ref.Resource, "limits.")
	if isLimit {
		if v, ok := c.Resources.Limits[corev1.ResourceName(name)]; ok {
			q = v
		} else {
			q = ec.NodeAllocatable[corev1.ResourceName(name)]
		}
	} else if name, ok := strings.CutPrefix(ref.Resource, "requests."); ok {
		q = c.Resources.Requests[corev1.ResourceName(name)]
	} else {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if strings.HasSuffix(ref.Resource, "cpu") {
		m := (q.MilliValue() + divisor.MilliValue() - 1) / divisor.MilliValue()
		return strconv.FormatInt(m, 10), nil
	}
	v := (q.Value() + divisor.Value() - 1) / divisor.Value()
	return strconv.FormatInt(v, 10), nil
}

// expand replaces $(VAR) with the value of VAR when defined and $$ with $,
// leaving unknown references as they are, like Kubernetes' expansion.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// expandAll expands $(VAR) references in a command or its arguments.
func expandAll(args []string, env []runtime.EnvVar) []string {
	if len(args) == 0 {
		return args
	}
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, vars)
	}
	return out
}
