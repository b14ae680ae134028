package registry

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Upstream's default values for pods.
const (
	defaultTerminationGracePeriodSeconds = int64(30)
	defaultSchedulerName                 = "default-scheduler"
	defaultVolumeMode                    = int32(0o644)
)

// defaultPod applies upstream's Pod defaulting: the spec's, plus service
// links and requests taken from limits (pods only, not templates).
func defaultPod(pod *corev1.Pod) {
	syncPodStatusIPs(&pod.Status)
	if pod.Spec.EnableServiceLinks == nil {
		t := corev1.DefaultEnableServiceLinks
		pod.Spec.EnableServiceLinks = &t
	}
	if pod.Spec.HostNetwork {
		defaultHostNetworkPorts(pod.Spec.InitContainers)
		defaultHostNetworkPorts(pod.Spec.Containers)
	}
	for i := range pod.Spec.InitContainers {
		defaultRequestsFromLimits(&pod.Spec.InitContainers[i].Resources)
	}
	for i := range pod.Spec.Containers {
		defaultRequestsFromLimits(&pod.Spec.Containers[i].Resources)
	}
	if pod.Spec.Resources != nil {
		defaultRequestsFromLimits(pod.Spec.Resources)
	}
	defaultPodSpec(&pod.Spec)
}

// defaultRequestsFromLimits sets each unset request to its limit.
func defaultRequestsFromLimits(r *corev1.ResourceRequirements) {
	for name, limit := range r.Limits {
		if _, ok := r.Requests[name]; ok {
			continue
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Requests[name] = limit.DeepCopy()
	}
}

// defaultHostNetworkPorts sets hostPort = containerPort on the host network.
func defaultHostNetworkPorts(containers []corev1.Container) {
	for i := range containers {
		for j := range containers[i].Ports {
			if containers[i].Ports[j].HostPort == 0 {
				containers[i].Ports[j].HostPort = containers[i].Ports[j].ContainerPort
			}
		}
	}
}

// defaultPodTemplate applies the defaults a pod template gets.
func defaultPodTemplate(t *corev1.PodTemplateSpec) {
	defaultPodSpec(&t.Spec)
}

// defaultPodSpec applies upstream's PodSpec, Container, Probe and Volume defaulting.
func defaultPodSpec(spec *corev1.PodSpec) {
	// serviceAccount is the deprecated alias of serviceAccountName.
	if spec.ServiceAccountName == "" {
		spec.ServiceAccountName = spec.DeprecatedServiceAccount
	}
	spec.DeprecatedServiceAccount = spec.ServiceAccountName
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		g := defaultTerminationGracePeriodSeconds
		spec.TerminationGracePeriodSeconds = &g
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = defaultSchedulerName
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		c := corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
		defaultContainer(&c)
		spec.EphemeralContainers[i].EphemeralContainerCommon = corev1.EphemeralContainerCommon(c)
	}
	for i := range spec.Volumes {
		defaultVolume(&spec.Volumes[i])
	}
}

// defaultContainer applies container defaults.
func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if f := c.Env[i].ValueFrom; f != nil && f.FieldRef != nil && f.FieldRef.APIVersion == "" {
			f.FieldRef.APIVersion = "v1"
		}
	}
	defaultProbe(c.LivenessProbe)
	defaultProbe(c.ReadinessProbe)
	defaultProbe(c.StartupProbe)
	if c.Lifecycle != nil {
		defaultHandler(c.Lifecycle.PostStart)
		defaultHandler(c.Lifecycle.PreStop)
	}
}

// defaultPullPolicy is Always for ":latest" or an image without tag or
// digest, IfNotPresent otherwise.
func defaultPullPolicy(image string) corev1.PullPolicy {
	if _, tag, digest := splitImage(image); tag == "latest" || (tag == "" && digest == "") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// splitImage splits "repo[:tag][@digest]"; a ':' before the last '/' is a
// registry port, not a tag.
func splitImage(image string) (repo, tag, digest string) {
	repo = image
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

// defaultProbe applies probe defaults.
func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	defaultHTTPGet(p.HTTPGet)
	if p.GRPC != nil && p.GRPC.Service == nil {
		s := ""
		p.GRPC.Service = &s
	}
}

// defaultHandler applies lifecycle handler defaults.
func defaultHandler(h *corev1.LifecycleHandler) {
	if h != nil {
		defaultHTTPGet(h.HTTPGet)
	}
}

// defaultHTTPGet sets path "/" and scheme HTTP.
func defaultHTTPGet(g *corev1.HTTPGetAction) {
	if g == nil {
		return
	}
	if g.Path == "" {
		g.Path = "/"
	}
	if g.Scheme == "" {
		g.Scheme = corev1.URISchemeHTTP
	}
}

// defaultVolume makes a source-less volume an emptyDir and sets file modes.
func defaultVolume(v *corev1.Volume) {
	if volumeSourceCount(&v.VolumeSource) == 0 {
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	mode := func(m **int32) {
		if *m == nil {
			d := defaultVolumeMode
			*m = &d
		}
	}
	switch {
	case v.Secret != nil:
		mode(&v.Secret.DefaultMode)
	case v.ConfigMap != nil:
		mode(&v.ConfigMap.DefaultMode)
	case v.DownwardAPI != nil:
		mode(&v.DownwardAPI.DefaultMode)
		for i := range v.DownwardAPI.Items {
			if f := v.DownwardAPI.Items[i].FieldRef; f != nil && f.APIVersion == "" {
				f.APIVersion = "v1"
			}
		}
	case v.Projected != nil:
		mode(&v.Projected.DefaultMode)
	case v.HostPath != nil:
		if v.HostPath.Type == nil {
			t := corev1.HostPathUnset
			v.HostPath.Type = &t
		}
	case v.EmptyDir != nil, v.PersistentVolumeClaim != nil:
	}
}

// defaultServicePortTarget sets an unset targetPort to the port.
func defaultServicePortTarget(p *corev1.ServicePort) {
	if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
		p.TargetPort = intstr.FromInt32(p.Port)
	}
}

// syncPodStatusIPs keeps the singular podIP/hostIP and the plural lists in
// step, as upstream's conversion does: the list wins when both are set.
func syncPodStatusIPs(s *corev1.PodStatus) {
	switch {
	case len(s.PodIPs) > 0:
		s.PodIP = s.PodIPs[0].IP
	case s.PodIP != "":
		s.PodIPs = []corev1.PodIP{{IP: s.PodIP}}
	}
	switch {
	case len(s.HostIPs) > 0:
		s.HostIP = s.HostIPs[0].IP
	case s.HostIP != "":
		s.HostIPs = []corev1.HostIP{{IP: s.HostIP}}
	}
}
