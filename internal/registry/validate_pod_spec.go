package registry

import (
	"fmt"
	"path"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	supportedRestartPolicies     = []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}
	supportedDNSPolicies         = []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}
	supportedPullPolicies        = []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}
	supportedTermMessagePolicies = []corev1.TerminationMessagePolicy{corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError}
	supportedURISchemes          = []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}
	supportedTolerationOperators = []corev1.TolerationOperator{corev1.TolerationOpExists, corev1.TolerationOpEqual}
	supportedTaintEffects        = []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}
	standardResources            = sets.New[corev1.ResourceName](corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage)
)

// validatePodTemplate validates a workload's pod template; workloads'
// pods must restart (restartPolicy Always).
func validatePodTemplate(t *corev1.PodTemplateSpec, fldPath *field.Path) field.ErrorList {
	errs := validateLabels(t.Labels, fldPath.Child("metadata", "labels"))
	errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, fldPath.Child("metadata", "annotations"))...)
	specPath := fldPath.Child("spec")
	errs = append(errs, validatePodSpec(&t.Spec, specPath)...)
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways && t.Spec.RestartPolicy != "" {
		errs = append(errs, field.NotSupported(specPath.Child("restartPolicy"), t.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(specPath.Child("activeDeadlineSeconds"), *t.Spec.ActiveDeadlineSeconds, "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return errs
}

// validatePodSpec validates a pod spec; every bad field is listed.
func validatePodSpec(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	volumes, errs := validateVolumes(spec.Volumes, fldPath.Child("volumes"))

	names := sets.New[string]()
	hostPorts := sets.New[string]()
	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(fldPath.Child("containers"), ""))
	}
	for i := range spec.InitContainers {
		errs = append(errs, validateContainer(&spec.InitContainers[i], true, volumes, names, hostPorts, fldPath.Child("initContainers").Index(i))...)
	}
	for i := range spec.Containers {
		errs = append(errs, validateContainer(&spec.Containers[i], false, volumes, names, hostPorts, fldPath.Child("containers").Index(i))...)
	}
	for i := range spec.EphemeralContainers {
		c := corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
		p := fldPath.Child("ephemeralContainers").Index(i)
		errs = append(errs, validateContainerName(c.Name, names, p.Child("name"))...)
		if c.Image == "" {
			errs = append(errs, field.Required(p.Child("image"), ""))
		}
	}

	switch {
	case spec.RestartPolicy == "":
		errs = append(errs, field.Required(fldPath.Child("restartPolicy"), ""))
	case !contains(supportedRestartPolicies, spec.RestartPolicy):
		errs = append(errs, field.NotSupported(fldPath.Child("restartPolicy"), spec.RestartPolicy, supportedRestartPolicies))
	}
	switch {
	case spec.DNSPolicy == "":
		errs = append(errs, field.Required(fldPath.Child("dnsPolicy"), ""))
	case !contains(supportedDNSPolicies, spec.DNSPolicy):
		errs = append(errs, field.NotSupported(fldPath.Child("dnsPolicy"), spec.DNSPolicy, supportedDNSPolicies))
	case spec.DNSPolicy == corev1.DNSNone && spec.DNSConfig == nil:
		errs = append(errs, field.Required(fldPath.Child("dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
	}
	if spec.TerminationGracePeriodSeconds != nil {
		errs = append(errs, nonNegative(*spec.TerminationGracePeriodSeconds, fldPath.Child("terminationGracePeriodSeconds"))...)
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), *d, validation.InclusiveRangeError(1, 1<<31-1)))
	}
	errs = append(errs, validateLabels(spec.NodeSelector, fldPath.Child("nodeSelector"))...)
	if spec.ServiceAccountName != "" {
		errs = append(errs, dnsSubdomain(spec.ServiceAccountName, fldPath.Child("serviceAccountName"))...)
	}
	if spec.NodeName != "" {
		errs = append(errs, dnsSubdomain(spec.NodeName, fldPath.Child("nodeName"))...)
	}
	if spec.Hostname != "" {
		errs = append(errs, dnsLabel(spec.Hostname, fldPath.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, dnsLabel(spec.Subdomain, fldPath.Child("subdomain"))...)
	}
	if spec.SchedulerName != "" {
		errs = append(errs, dnsSubdomain(spec.SchedulerName, fldPath.Child("schedulerName"))...)
	}
	if spec.SecurityContext != nil {
		errs = append(errs, validatePodSecurityContext(spec.SecurityContext, fldPath.Child("securityContext"))...)
	}
	errs = append(errs, validateTolerations(spec.Tolerations, fldPath.Child("tolerations"))...)
	errs = append(errs, validateAffinity(spec.Affinity, fldPath.Child("affinity"))...)
	errs = append(errs, validateTopologySpread(spec.TopologySpreadConstraints, fldPath.Child("topologySpreadConstraints"))...)
	for i, g := range spec.ReadinessGates {
		errs = append(errs, qualifiedName(string(g.ConditionType), fldPath.Child("readinessGates").Index(i).Child("conditionType"))...)
	}
	gates := sets.New[string]()
	for i, g := range spec.SchedulingGates {
		p := fldPath.Child("schedulingGates").Index(i).Child("name")
		errs = append(errs, qualifiedName(g.Name, p)...)
		if gates.Has(g.Name) {
			errs = append(errs, field.Duplicate(p, g.Name))
		}
		gates.Insert(g.Name)
	}
	for i, ps := range spec.ImagePullSecrets {
		if ps.Name == "" {
			errs = append(errs, field.Required(fldPath.Child("imagePullSecrets").Index(i).Child("name"), ""))
		}
	}
	return errs
}

// contains reports whether v is one of list.
func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// volumeSourceCount counts the set sources of a volume.
func volumeSourceCount(src *corev1.VolumeSource) int {
	n := 0
	v := reflect.ValueOf(src).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}

// validateVolumes checks volume names (unique DNS labels) and sources, and
// returns the set of names for volumeMounts to refer to.
func validateVolumes(volumes []corev1.Volume, fldPath *field.Path) (sets.Set[string], field.ErrorList) {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range volumes {
		v := &volumes[i]
		p := fldPath.Index(i)
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case names.Has(v.Name):
			errs = append(errs, field.Duplicate(p.Child("name"), v.Name))
		default:
			errs = append(errs, dnsLabel(v.Name, p.Child("name"))...)
		}
		names.Insert(v.Name)
		switch volumeSourceCount(&v.VolumeSource) {
		case 0:
			errs = append(errs, field.Required(p, "must specify a volume type"))
		case 1:
		default:
			errs = append(errs, field.Forbidden(p, "may not specify more than 1 volume type"))
		}
		switch {
		case v.HostPath != nil:
			if v.HostPath.Path == "" {
				errs = append(errs, field.Required(p.Child("hostPath", "path"), ""))
			}
		case v.Secret != nil:
			if v.Secret.SecretName == "" {
				errs = append(errs, field.Required(p.Child("secret", "secretName"), ""))
			}
			errs = append(errs, validateKeyToPaths(v.Secret.Items, p.Child("secret", "items"))...)
			errs = append(errs, validateFileMode(v.Secret.DefaultMode, p.Child("secret", "defaultMode"))...)
		case v.ConfigMap != nil:
			if v.ConfigMap.Name == "" {
				errs = append(errs, field.Required(p.Child("configMap", "name"), ""))
			}
			errs = append(errs, validateKeyToPaths(v.ConfigMap.Items, p.Child("configMap", "items"))...)
			errs = append(errs, validateFileMode(v.ConfigMap.DefaultMode, p.Child("configMap", "defaultMode"))...)
		case v.PersistentVolumeClaim != nil:
			if v.PersistentVolumeClaim.ClaimName == "" {
				errs = append(errs, field.Required(p.Child("persistentVolumeClaim", "claimName"), ""))
			}
		case v.EmptyDir != nil:
			if v.EmptyDir.SizeLimit != nil {
				errs = append(errs, quantityNonNegative(*v.EmptyDir.SizeLimit, p.Child("emptyDir", "sizeLimit"))...)
			}
		}
	}
	return names, errs
}

// validateKeyToPaths checks secret and configMap volume items.
func validateKeyToPaths(items []corev1.KeyToPath, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, it := range items {
		p := fldPath.Index(i)
		if it.Key == "" {
			errs = append(errs, field.Required(p.Child("key"), ""))
		}
		errs = append(errs, validateLocalPath(it.Path, p.Child("path"))...)
		errs = append(errs, validateFileMode(it.Mode, p.Child("mode"))...)
	}
	return errs
}

// validateLocalPath requires a relative path without "..".
func validateLocalPath(pth string, fldPath *field.Path) field.ErrorList {
	switch {
	case pth == "":
		return field.ErrorList{field.Required(fldPath, "")}
	case path.IsAbs(pth):
		return field.ErrorList{field.Invalid(fldPath, pth, "must be a relative path")}
	}
	for _, part := range strings.Split(pth, "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(fldPath, pth, "must not contain '..'")}
		}
	}
	return nil
}

// validateFileMode requires 0 to 0777.
func validateFileMode(mode *int32, fldPath *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		return field.ErrorList{field.Invalid(fldPath, *mode, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}

// validateContainerName requires a unique DNS label.
func validateContainerName(name string, names sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case name == "":
		errs = append(errs, field.Required(fldPath, ""))
	case names.Has(name):
		errs = append(errs, field.Duplicate(fldPath, name))
	default:
		errs = append(errs, dnsLabel(name, fldPath)...)
	}
	names.Insert(name)
	return errs
}

// validateContainer checks one container or init container.
func validateContainer(c *corev1.Container, init bool, volumes, names, hostPorts sets.Set[string], fldPath *field.Path) field.ErrorList {
	errs := validateContainerName(c.Name, names, fldPath.Child("name"))
	switch {
	case c.Image == "":
		errs = append(errs, field.Required(fldPath.Child("image"), ""))
	case c.Image != strings.TrimSpace(c.Image):
		errs = append(errs, field.Invalid(fldPath.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	switch {
	case c.ImagePullPolicy == "":
		errs = append(errs, field.Required(fldPath.Child("imagePullPolicy"), ""))
	case !contains(supportedPullPolicies, c.ImagePullPolicy):
		errs = append(errs, field.NotSupported(fldPath.Child("imagePullPolicy"), c.ImagePullPolicy, supportedPullPolicies))
	}
	switch {
	case c.TerminationMessagePolicy == "":
		errs = append(errs, field.Required(fldPath.Child("terminationMessagePolicy"), ""))
	case !contains(supportedTermMessagePolicies, c.TerminationMessagePolicy):
		errs = append(errs, field.NotSupported(fldPath.Child("terminationMessagePolicy"), c.TerminationMessagePolicy, supportedTermMessagePolicies))
	}
	errs = append(errs, validateContainerPorts(c.Ports, hostPorts, fldPath.Child("ports"))...)
	errs = append(errs, validateEnv(c.Env, fldPath.Child("env"))...)
	errs = append(errs, validateEnvFrom(c.EnvFrom, fldPath.Child("envFrom"))...)
	errs = append(errs, validateVolumeMounts(c.VolumeMounts, volumes, fldPath.Child("volumeMounts"))...)
	errs = append(errs, validateResources(&c.Resources, fldPath.Child("resources"))...)

	sidecar := init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
	if c.RestartPolicy != nil {
		p := fldPath.Child("restartPolicy")
		switch {
		case !init:
			errs = append(errs, field.Forbidden(p, "may not be set for non-init containers"))
		case *c.RestartPolicy != corev1.ContainerRestartPolicyAlways:
			errs = append(errs, field.NotSupported(p, *c.RestartPolicy, []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways}))
		}
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}}
	for _, pr := range probes {
		if pr.probe == nil {
			continue
		}
		p := fldPath.Child(pr.name)
		if init && !sidecar {
			errs = append(errs, field.Forbidden(p, "may not be set for init containers without restartPolicy=Always"))
			continue
		}
		errs = append(errs, validateProbe(pr.probe, p)...)
		if pr.name != "readinessProbe" && pr.probe.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(p.Child("successThreshold"), pr.probe.SuccessThreshold, "must be 1"))
		}
	}
	if c.Lifecycle != nil {
		p := fldPath.Child("lifecycle")
		if init && !sidecar {
			errs = append(errs, field.Forbidden(p, "may not be set for init containers without restartPolicy=Always"))
		} else {
			if c.Lifecycle.PostStart != nil {
				errs = append(errs, validateHandler(c.Lifecycle.PostStart, p.Child("postStart"))...)
			}
			if c.Lifecycle.PreStop != nil {
				errs = append(errs, validateHandler(c.Lifecycle.PreStop, p.Child("preStop"))...)
			}
		}
	}
	if sc := c.SecurityContext; sc != nil {
		p := fldPath.Child("securityContext")
		if sc.RunAsUser != nil {
			errs = append(errs, invalidEach(p.Child("runAsUser"), *sc.RunAsUser, validation.IsValidUserID(*sc.RunAsUser))...)
		}
		if sc.RunAsGroup != nil {
			errs = append(errs, invalidEach(p.Child("runAsGroup"), *sc.RunAsGroup, validation.IsValidGroupID(*sc.RunAsGroup))...)
		}
		if sc.Privileged != nil && *sc.Privileged && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			errs = append(errs, field.Invalid(p, *sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
		}
	}
	return errs
}

// validatePodSecurityContext checks user and group ids.
func validatePodSecurityContext(sc *corev1.PodSecurityContext, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sc.RunAsUser != nil {
		errs = append(errs, invalidEach(fldPath.Child("runAsUser"), *sc.RunAsUser, validation.IsValidUserID(*sc.RunAsUser))...)
	}
	if sc.RunAsGroup != nil {
		errs = append(errs, invalidEach(fldPath.Child("runAsGroup"), *sc.RunAsGroup, validation.IsValidGroupID(*sc.RunAsGroup))...)
	}
	if sc.FSGroup != nil {
		errs = append(errs, invalidEach(fldPath.Child("fsGroup"), *sc.FSGroup, validation.IsValidGroupID(*sc.FSGroup))...)
	}
	for i, g := range sc.SupplementalGroups {
		errs = append(errs, invalidEach(fldPath.Child("supplementalGroups").Index(i), g, validation.IsValidGroupID(g))...)
	}
	return errs
}

// validateContainerPorts checks ports: numbers, protocol, unique names and
// host ports unique in the pod.
func validateContainerPorts(ports []corev1.ContainerPort, hostPorts sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i, port := range ports {
		p := fldPath.Index(i)
		if port.Name != "" {
			errs = append(errs, invalidEach(p.Child("name"), port.Name, validation.IsValidPortName(port.Name))...)
			if names.Has(port.Name) {
				errs = append(errs, field.Duplicate(p.Child("name"), port.Name))
			}
			names.Insert(port.Name)
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(p.Child("containerPort"), ""))
		} else {
			errs = append(errs, portNumber(port.ContainerPort, p.Child("containerPort"))...)
		}
		if port.HostPort != 0 {
			errs = append(errs, portNumber(port.HostPort, p.Child("hostPort"))...)
			key := fmt.Sprintf("%s/%s/%d", port.HostIP, port.Protocol, port.HostPort)
			if hostPorts.Has(key) {
				errs = append(errs, field.Duplicate(p.Child("hostPort"), fmt.Sprintf("%d/%s", port.HostPort, port.Protocol)))
			}
			hostPorts.Insert(key)
		}
		if port.HostIP != "" {
			errs = append(errs, validation.IsValidIP(p.Child("hostIP"), port.HostIP)...)
		}
		errs = append(errs, protocol(port.Protocol, p.Child("protocol"))...)
	}
	return errs
}

// validateEnv checks env var names and value sources.
func validateEnv(env []corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range env {
		p := fldPath.Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else {
			errs = append(errs, invalidEach(p.Child("name"), ev.Name, validation.IsRelaxedEnvVarName(ev.Name))...)
		}
		if ev.ValueFrom == nil {
			continue
		}
		vp := p.Child("valueFrom")
		if ev.Value != "" {
			errs = append(errs, field.Invalid(vp, "", "may not be specified when `value` is not empty"))
		}
		n := 0
		if f := ev.ValueFrom.FieldRef; f != nil {
			n++
			if f.FieldPath == "" {
				errs = append(errs, field.Required(vp.Child("fieldRef", "fieldPath"), ""))
			}
			if f.APIVersion == "" {
				errs = append(errs, field.Required(vp.Child("fieldRef", "apiVersion"), ""))
			}
		}
		if r := ev.ValueFrom.ResourceFieldRef; r != nil {
			n++
			if r.Resource == "" {
				errs = append(errs, field.Required(vp.Child("resourceFieldRef", "resource"), ""))
			}
		}
		if r := ev.ValueFrom.ConfigMapKeyRef; r != nil {
			n++
			errs = append(errs, validateKeyRef(r.Name, r.Key, vp.Child("configMapKeyRef"))...)
		}
		if r := ev.ValueFrom.SecretKeyRef; r != nil {
			n++
			errs = append(errs, validateKeyRef(r.Name, r.Key, vp.Child("secretKeyRef"))...)
		}
		if ev.ValueFrom.FileKeyRef != nil {
			n++
		}
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(vp, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

// validateKeyRef checks a configMap or secret key reference.
func validateKeyRef(name, key string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	}
	if key == "" {
		errs = append(errs, field.Required(fldPath.Child("key"), ""))
	} else {
		errs = append(errs, invalidEach(fldPath.Child("key"), key, validation.IsConfigMapKey(key))...)
	}
	return errs
}

// validateEnvFrom checks envFrom sources.
func validateEnvFrom(from []corev1.EnvFromSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ef := range from {
		p := fldPath.Index(i)
		n := 0
		if ef.ConfigMapRef != nil {
			n++
			if ef.ConfigMapRef.Name == "" {
				errs = append(errs, field.Required(p.Child("configMapRef", "name"), ""))
			}
		}
		if ef.SecretRef != nil {
			n++
			if ef.SecretRef.Name == "" {
				errs = append(errs, field.Required(p.Child("secretRef", "name"), ""))
			}
		}
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

// validateVolumeMounts checks mounts refer to declared volumes and have
// unique paths.
func validateVolumeMounts(mounts []corev1.VolumeMount, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := sets.New[string]()
	for i, m := range mounts {
		p := fldPath.Index(i)
		switch {
		case m.Name == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case !volumes.Has(m.Name):
			errs = append(errs, field.NotFound(p.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(p.Child("mountPath"), ""))
		} else if paths.Has(m.MountPath) {
			errs = append(errs, field.Invalid(p.Child("mountPath"), m.MountPath, "must be unique"))
		}
		paths.Insert(m.MountPath)
		if m.SubPath != "" {
			if path.IsAbs(m.SubPath) || contains(strings.Split(m.SubPath, "/"), "..") {
				errs = append(errs, field.Invalid(p.Child("subPath"), m.SubPath, "must be a relative path without '..'"))
			}
		}
	}
	return errs
}

// validateResourceName accepts cpu, memory, ephemeral-storage, hugepages-*
// and domain-qualified extended resources.
func validateResourceName(name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	s := string(name)
	if standardResources.Has(name) || strings.HasPrefix(s, corev1.ResourceHugePagesPrefix) {
		return nil
	}
	errs := qualifiedName(s, fldPath)
	if len(errs) == 0 && !strings.Contains(s, "/") {
		errs = append(errs, field.Invalid(fldPath, s, "must be a standard resource type or fully qualified"))
	}
	return errs
}

// validateResources checks quantities are non-negative and requests do not
// exceed limits.
func validateResources(r *corev1.ResourceRequirements, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sortedResourceNames(r.Limits) {
		q := r.Limits[name]
		p := fldPath.Child("limits").Key(string(name))
		errs = append(errs, validateResourceName(name, p)...)
		errs = append(errs, quantityNonNegative(q, p)...)
	}
	for _, name := range sortedResourceNames(r.Requests) {
		q := r.Requests[name]
		p := fldPath.Child("requests").Key(string(name))
		errs = append(errs, validateResourceName(name, p)...)
		errs = append(errs, quantityNonNegative(q, p)...)
		if limit, ok := r.Limits[name]; ok && q.Cmp(limit) > 0 {
			errs = append(errs, field.Invalid(p, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
		}
	}
	return errs
}

// sortedResourceNames returns a list's names in order, for stable errors.
func sortedResourceNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, string(n))
	}
	out := make([]corev1.ResourceName, 0, len(names))
	for _, n := range sets.List(sets.New(names...)) {
		out = append(out, corev1.ResourceName(n))
	}
	return out
}

// validateProbe checks a probe's handler and numbers.
func validateProbe(pr *corev1.Probe, fldPath *field.Path) field.ErrorList {
	errs := validateProbeHandler(&pr.ProbeHandler, fldPath)
	errs = append(errs, nonNegative(int64(pr.InitialDelaySeconds), fldPath.Child("initialDelaySeconds"))...)
	errs = append(errs, positive(int64(pr.TimeoutSeconds), fldPath.Child("timeoutSeconds"))...)
	errs = append(errs, positive(int64(pr.PeriodSeconds), fldPath.Child("periodSeconds"))...)
	errs = append(errs, positive(int64(pr.SuccessThreshold), fldPath.Child("successThreshold"))...)
	errs = append(errs, positive(int64(pr.FailureThreshold), fldPath.Child("failureThreshold"))...)
	if g := pr.TerminationGracePeriodSeconds; g != nil && *g <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("terminationGracePeriodSeconds"), *g, isNotPositiveErrorMsg))
	}
	return errs
}

// validateProbeHandler requires exactly one of exec, httpGet, tcpSocket, grpc.
func validateProbeHandler(h *corev1.ProbeHandler, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if h.Exec != nil {
		n++
		errs = append(errs, validateExec(h.Exec, fldPath.Child("exec"))...)
	}
	if h.HTTPGet != nil {
		n++
		errs = append(errs, validateHTTPGet(h.HTTPGet, fldPath.Child("httpGet"))...)
	}
	if h.TCPSocket != nil {
		n++
		errs = append(errs, portNumOrName(h.TCPSocket.Port, fldPath.Child("tcpSocket", "port"))...)
	}
	if h.GRPC != nil {
		n++
		errs = append(errs, portNumber(h.GRPC.Port, fldPath.Child("grpc", "port"))...)
	}
	return append(errs, handlerCount(n, fldPath)...)
}

// validateHandler requires exactly one of exec, httpGet, tcpSocket, sleep.
func validateHandler(h *corev1.LifecycleHandler, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if h.Exec != nil {
		n++
		errs = append(errs, validateExec(h.Exec, fldPath.Child("exec"))...)
	}
	if h.HTTPGet != nil {
		n++
		errs = append(errs, validateHTTPGet(h.HTTPGet, fldPath.Child("httpGet"))...)
	}
	if h.TCPSocket != nil {
		n++
		errs = append(errs, portNumOrName(h.TCPSocket.Port, fldPath.Child("tcpSocket", "port"))...)
	}
	if h.Sleep != nil {
		n++
		errs = append(errs, nonNegative(h.Sleep.Seconds, fldPath.Child("sleep", "seconds"))...)
	}
	return append(errs, handlerCount(n, fldPath)...)
}

func handlerCount(n int, fldPath *field.Path) field.ErrorList {
	switch {
	case n == 0:
		return field.ErrorList{field.Required(fldPath, "must specify a handler type")}
	case n > 1:
		return field.ErrorList{field.Forbidden(fldPath, "may not specify more than 1 handler type")}
	}
	return nil
}

func validateExec(e *corev1.ExecAction, fldPath *field.Path) field.ErrorList {
	if len(e.Command) == 0 {
		return field.ErrorList{field.Required(fldPath.Child("command"), "")}
	}
	return nil
}

func validateHTTPGet(g *corev1.HTTPGetAction, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if g.Path == "" {
		errs = append(errs, field.Required(fldPath.Child("path"), ""))
	}
	errs = append(errs, portNumOrName(g.Port, fldPath.Child("port"))...)
	if !contains(supportedURISchemes, g.Scheme) {
		errs = append(errs, field.NotSupported(fldPath.Child("scheme"), g.Scheme, supportedURISchemes))
	}
	for i, h := range g.HTTPHeaders {
		errs = append(errs, invalidEach(fldPath.Child("httpHeaders").Index(i).Child("name"), h.Name, validation.IsHTTPHeaderName(h.Name))...)
	}
	return errs
}

// validateTolerations checks operators, effects and keys.
func validateTolerations(tolerations []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range tolerations {
		p := fldPath.Index(i)
		if t.Key != "" {
			errs = append(errs, qualifiedName(t.Key, p.Child("key"))...)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(p.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			errs = append(errs, invalidEach(p.Child("value"), t.Value, validation.IsValidLabelValue(t.Value))...)
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(p.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), t.Operator, supportedTolerationOperators))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(p.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		if t.Effect != "" && !contains(supportedTaintEffects, t.Effect) {
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, supportedTaintEffects))
		}
	}
	return errs
}
