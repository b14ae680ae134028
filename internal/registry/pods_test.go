package registry

import (
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func newPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: podSpec()}
}

func TestPodDefaults(t *testing.T) {
	pod := newPod()
	pod.Spec.Containers = append(pod.Spec.Containers,
		corev1.Container{Name: "latest", Image: "busybox"},
		corev1.Container{Name: "tagged-latest", Image: "registry:5000/busybox:latest"},
		corev1.Container{Name: "digest", Image: "busybox@sha256:abc"},
		corev1.Container{Name: "port-registry", Image: "localhost:5000/app"},
		corev1.Container{
			Name: "probed", Image: "app:v1",
			LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			},
		},
	)
	Pods().Default(pod)
	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyAlways || s.DNSPolicy != corev1.DNSClusterFirst ||
		s.SchedulerName != "default-scheduler" || s.SecurityContext == nil ||
		s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds != 30 ||
		s.EnableServiceLinks == nil || !*s.EnableServiceLinks {
		t.Errorf("pod spec defaults wrong: %+v", s)
	}
	c := s.Containers[0]
	if c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
		t.Errorf("termination message defaults: %q %q", c.TerminationMessagePath, c.TerminationMessagePolicy)
	}
	if c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("port protocol = %q, want TCP", c.Ports[0].Protocol)
	}
	wantPull := map[string]corev1.PullPolicy{
		"web": corev1.PullIfNotPresent, "latest": corev1.PullAlways, "tagged-latest": corev1.PullAlways,
		"digest": corev1.PullIfNotPresent, "port-registry": corev1.PullAlways, "probed": corev1.PullIfNotPresent,
	}
	for _, c := range s.Containers {
		if c.ImagePullPolicy != wantPull[c.Name] {
			t.Errorf("%s (%s): imagePullPolicy = %s, want %s", c.Name, c.Image, c.ImagePullPolicy, wantPull[c.Name])
		}
	}
	probed := s.Containers[5]
	p := probed.LivenessProbe
	if p.TimeoutSeconds != 1 || p.PeriodSeconds != 10 || p.SuccessThreshold != 1 || p.FailureThreshold != 3 ||
		p.HTTPGet.Path != "/" || p.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("probe defaults wrong: %+v", p)
	}
	if got := probed.Resources.Requests[corev1.ResourceMemory]; got.String() != "64Mi" {
		t.Errorf("memory request = %s, want defaulted from limit 64Mi", got.String())
	}
	if got := probed.Resources.Requests[corev1.ResourceCPU]; got.String() != "100m" {
		t.Errorf("cpu request = %s, want the given 100m kept", got.String())
	}
}

func TestPodDefaultsVolumes(t *testing.T) {
	pod := newPod()
	pod.Spec.Volumes = []corev1.Volume{{Name: "scratch"}, {Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}}
	Pods().Default(pod)
	if pod.Spec.Volumes[0].EmptyDir == nil {
		t.Error("source-less volume did not become an emptyDir")
	}
	if m := pod.Spec.Volumes[1].ConfigMap.DefaultMode; m == nil || *m != 0o644 {
		t.Errorf("configMap defaultMode = %v, want 0644", m)
	}
}

func TestPodPrepareForCreateQOS(t *testing.T) {
	guaranteed := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	tests := []struct {
		name string
		res  corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		{"best effort", corev1.ResourceRequirements{}, corev1.PodQOSBestEffort},
		{"guaranteed from limits", corev1.ResourceRequirements{Limits: guaranteed}, corev1.PodQOSGuaranteed},
		{"burstable", corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}, corev1.PodQOSBurstable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newPod()
			pod.Spec.Containers[0].Resources = tt.res
			pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"}
			requireNoErrors(t, create(Pods(), pod))
			if pod.Status.Phase != corev1.PodPending || pod.Status.PodIP != "" {
				t.Errorf("status not reset: %+v", pod.Status)
			}
			if pod.Status.QOSClass != tt.want {
				t.Errorf("QOS = %s, want %s", pod.Status.QOSClass, tt.want)
			}
		})
	}
}

func TestPodValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.Pod)
		path   string
		typ    field.ErrorType
	}{
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, "spec.containers", field.ErrorTypeRequired},
		{"no image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, "spec.containers[0].image", field.ErrorTypeRequired},
		{"bad container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Web_1" }, "spec.containers[0].name", field.ErrorTypeInvalid},
		{"missing container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }, "spec.containers[0].name", field.ErrorTypeRequired},
		{"duplicate container name", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "web", Image: "x"})
		}, "spec.containers[1].name", field.ErrorTypeDuplicate},
		{"init and app share a name", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "web", Image: "x"}}
		}, "spec.containers[0].name", field.ErrorTypeDuplicate},
		{"port zero", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 0 }, "spec.containers[0].ports[0].containerPort", field.ErrorTypeRequired},
		{"port too big", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 70000 }, "spec.containers[0].ports[0].containerPort", field.ErrorTypeInvalid},
		{"bad protocol", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "HTTP" }, "spec.containers[0].ports[0].protocol", field.ErrorTypeNotSupported},
		{"duplicate port name", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "http", ContainerPort: 81})
		}, "spec.containers[0].ports[1].name", field.ErrorTypeDuplicate},
		{"host port conflict", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports[0].HostPort = 8080
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "two", Image: "x", Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}})
		}, "spec.containers[1].ports[0].hostPort", field.ErrorTypeDuplicate},
		{"env name with =", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A=B", Value: "x"}}
		}, "spec.containers[0].env[0].name", field.ErrorTypeInvalid},
		{"env name empty", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Value: "x"}}
		}, "spec.containers[0].env[0].name", field.ErrorTypeRequired},
		{"env value and valueFrom", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "x", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		}, "spec.containers[0].env[0].valueFrom", field.ErrorTypeInvalid},
		{"secret key ref without key", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}}
		}, "spec.containers[0].env[0].valueFrom.secretKeyRef.key", field.ErrorTypeRequired},
		{"negative cpu", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}
		}, "spec.containers[0].resources.requests[cpu]", field.ErrorTypeInvalid},
		{"request over limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			}
		}, "spec.containers[0].resources.requests[memory]", field.ErrorTypeInvalid},
		{"unqualified resource name", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"gpu": resource.MustParse("1")}
		}, "spec.containers[0].resources.limits[gpu]", field.ErrorTypeInvalid},
		{"restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, "spec.restartPolicy", field.ErrorTypeNotSupported},
		{"dns policy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }, "spec.dnsPolicy", field.ErrorTypeNotSupported},
		{"pull policy", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, "spec.containers[0].imagePullPolicy", field.ErrorTypeNotSupported},
		{"duplicate volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v"}, {Name: "v"}}
		}, "spec.volumes[1].name", field.ErrorTypeDuplicate},
		{"bad volume name", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "V"}} }, "spec.volumes[0].name", field.ErrorTypeInvalid},
		{"two volume sources", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}, HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}}}
		}, "spec.volumes[0]", field.ErrorTypeForbidden},
		{"hostPath without path", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{}}}}
		}, "spec.volumes[0].hostPath.path", field.ErrorTypeRequired},
		{"mount of unknown volume", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}, "spec.containers[0].volumeMounts[0].name", field.ErrorTypeNotFound},
		{"mount without path", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data"}}
		}, "spec.containers[0].volumeMounts[0].mountPath", field.ErrorTypeRequired},
		{"probe without handler", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{}
		}, "spec.containers[0].livenessProbe", field.ErrorTypeRequired},
		{"probe with two handlers", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				Exec: &corev1.ExecAction{Command: []string{"true"}}, TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)},
			}}
		}, "spec.containers[0].readinessProbe", field.ErrorTypeForbidden},
		{"probe bad port", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(0)}}}
		}, "spec.containers[0].readinessProbe.httpGet.port", field.ErrorTypeInvalid},
		{"probe negative delay", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{InitialDelaySeconds: -1, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}, "spec.containers[0].livenessProbe.initialDelaySeconds", field.ErrorTypeInvalid},
		{"liveness success threshold", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{SuccessThreshold: 2, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}, "spec.containers[0].livenessProbe.successThreshold", field.ErrorTypeInvalid},
		{"probe on init container", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "x", ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}}
		}, "spec.initContainers[0].readinessProbe", field.ErrorTypeForbidden},
		{"toleration operator", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: "Maybe"}}
		}, "spec.tolerations[0].operator", field.ErrorTypeNotSupported},
		{"node selector", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"bad key!": "x"} }, "spec.nodeSelector", field.ErrorTypeInvalid},
		{"negative grace period", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptrTo(int64(-5)) }, "spec.terminationGracePeriodSeconds", field.ErrorTypeInvalid},
		{"node affinity operator", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: "Near"}}}},
			}}}
		}, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator", field.ErrorTypeNotSupported},
		{"node affinity In without values", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
				Weight: 10, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn}}},
			}}}}
		}, "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].values", field.ErrorTypeRequired},
		{"anti-affinity without topology key", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			}}}}
		}, "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey", field.ErrorTypeRequired},
		{"spread maxSkew", func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule}}
		}, "spec.topologySpreadConstraints[0].maxSkew", field.ErrorTypeInvalid},
		{"zero deadline", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(0)) }, "spec.activeDeadlineSeconds", field.ErrorTypeInvalid},
	}
	requireNoErrors(t, create(Pods(), newPod()))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newPod()
			tt.mutate(pod)
			requireError(t, create(Pods(), pod), tt.path, tt.typ)
		})
	}
}

func TestPodValidationMessages(t *testing.T) {
	pod := newPod()
	pod.Spec.Containers[0].Image = ""
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
	}
	errs := create(Pods(), pod)
	requireMessage(t, errs, "spec.containers[0].image: Required value")
	requireMessage(t, errs, "must be less than or equal to cpu limit of 1")
	if len(errs) != 2 {
		t.Errorf("want exactly 2 errors, got %v", errs)
	}
}

func TestPodUpdate(t *testing.T) {
	old := newPod()
	requireNoErrors(t, create(Pods(), old))

	tests := []struct {
		name    string
		mutate  func(*corev1.Pod)
		allowed bool
		path    string
	}{
		{"image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }, true, ""},
		{"add toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists})
		}, true, ""},
		{"set activeDeadlineSeconds", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(60)) }, true, ""},
		{"labels only", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }, true, ""},
		{"ports", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 81 }, false, "spec"},
		{"restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }, false, "spec"},
		{"node name", func(p *corev1.Pod) { p.Spec.NodeName = "node-1" }, false, "spec"},
		{"add container", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Image: "b"})
		}, false, "spec.containers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := old.DeepCopy()
			tt.mutate(pod)
			errs := update(Pods(), pod, old)
			if tt.allowed {
				requireNoErrors(t, errs)
				return
			}
			requireError(t, errs, tt.path, field.ErrorTypeForbidden)
		})
	}
	pod := old.DeepCopy()
	pod.Spec.Containers[0].Ports[0].ContainerPort = 81
	requireMessage(t, update(Pods(), pod, old), "pod updates may not change fields other than `spec.containers[*].image`")

	withDeadline := old.DeepCopy()
	withDeadline.Spec.ActiveDeadlineSeconds = ptrTo(int64(60))
	longer := withDeadline.DeepCopy()
	longer.Spec.ActiveDeadlineSeconds = ptrTo(int64(120))
	requireError(t, update(Pods(), longer, withDeadline), "spec.activeDeadlineSeconds", field.ErrorTypeInvalid)
}

func TestPodStatusUpdate(t *testing.T) {
	old := newPod()
	old.Status.Phase = corev1.PodSucceeded
	pod := old.DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	requireError(t, Pods().ValidateStatus(pod, old), "status.phase", field.ErrorTypeForbidden)

	old.Status.Phase = corev1.PodPending
	pod.Status.PodIP = "not-an-ip"
	requireError(t, Pods().ValidateStatus(pod, old), "status.podIP", field.ErrorTypeInvalid)
	pod.Status.PodIP = "10.1.2.3"
	requireNoErrors(t, Pods().ValidateStatus(pod, old))
}

func TestPodSelectableFields(t *testing.T) {
	pod := newPod()
	Pods().Default(pod)
	pod.Spec.NodeName = "n1"
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "10.0.0.9"
	f := Pods().SelectableFields(pod)
	want := map[string]string{
		"spec.nodeName": "n1", "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
		"spec.serviceAccountName": "", "status.phase": "Running", "status.podIP": "10.0.0.9", "status.nominatedNodeName": "",
	}
	for k, v := range want {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("field %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
}

// TestPodFieldValue: FieldValue answers for every field SelectableFields
// returns, and for others, exactly as the set does, on pods that differ in
// every such field.
func TestPodFieldValue(t *testing.T) {
	pod := newPod()
	Pods().Default(pod)
	pod.Spec.NodeName, pod.Spec.ServiceAccountName, pod.Spec.SchedulerName = "n1", "builder", "other"
	pod.Spec.HostNetwork, pod.Spec.RestartPolicy = true, corev1.RestartPolicyNever
	pod.Status.Phase, pod.Status.PodIP, pod.Status.NominatedNodeName = corev1.PodSucceeded, "10.0.0.9", "n2"
	want := fields.Set{
		"spec.nodeName": "n1", "spec.restartPolicy": "Never", "spec.schedulerName": "other",
		"spec.serviceAccountName": "builder", "spec.hostNetwork": "true", "status.phase": "Succeeded",
		"status.podIP": "10.0.0.9", "status.nominatedNodeName": "n2",
	}
	if got := Pods().SelectableFields(pod); !maps.Equal(got, want) {
		t.Errorf("SelectableFields = %v, want %v", got, want)
	}
	for f, v := range want {
		if got, ok := Pods().FieldValue(pod, f); got != v || !ok {
			t.Errorf("FieldValue(%q) = %q, %v; want %q, true", f, got, ok, v)
		}
	}
	if got, ok := Pods().FieldValue(&corev1.Pod{}, "spec.hostNetwork"); got != "false" || !ok {
		t.Errorf("FieldValue(spec.hostNetwork) of an empty pod = %q, %v; want false, true", got, ok)
	}
	// The server answers metadata.* itself; anything else is not a field.
	for _, f := range []string{"metadata.name", "metadata.namespace", "spec.nodename", "status", "unknown.field", ""} {
		if got, ok := Pods().FieldValue(pod, f); ok {
			t.Errorf("FieldValue(%q) = %q, true; want no such field", f, got)
		}
	}
}

func TestPodTableStatus(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	tests := []struct {
		name          string
		mutate        func(*corev1.Pod)
		ready, status string
		restarts      string
	}{
		{"pending", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, "0/1", "Pending", "0"},
		{"running", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Ready: true, State: running}}
		}, "1/1", "Running", "0"},
		{"crash loop", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{
				Name: "web", RestartCount: 4,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(90 * time.Second)}},
			}}
		}, "0/1", "CrashLoopBackOff", "4 (90s ago)"},
		{"image pull", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}}}
		}, "0/1", "ErrImagePull", "0"},
		{"completed", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}
		}, "0/1", "Completed", "0"},
		{"exit code", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}}}
		}, "0/1", "ExitCode:2", "0"},
		{"terminating", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.DeletionTimestamp = ptrTo(ago(time.Second))
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Ready: true, State: running}}
		}, "1/1", "Terminating", "0"},
		{"deleted on lost node", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.Reason = "NodeLost"
			p.DeletionTimestamp = ptrTo(ago(time.Second))
		}, "0/1", "Unknown", "0"},
		{"init waiting", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "a", Image: "a"}, {Name: "b", Image: "b"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{
				{Name: "a", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
				{Name: "b", State: running},
			}
		}, "0/1", "Init:1/2", "0"},
		{"init crash", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "a", Image: "a"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "a", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
		}, "0/1", "Init:CrashLoopBackOff", "0"},
		{"sidecar counts", func(p *corev1.Pod) {
			always := corev1.ContainerRestartPolicyAlways
			p.Spec.InitContainers = []corev1.Container{{Name: "proxy", Image: "p", RestartPolicy: &always}}
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "proxy", Ready: true, Started: ptrTo(true), State: running}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Ready: true, State: running}}
		}, "2/2", "Running", "0"},
		{"scheduling gated", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}}
		}, "0/1", "SchedulingGated", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newPod()
			pod.CreationTimestamp = ago(5 * time.Minute)
			tt.mutate(pod)
			row := cells(t, Pods(), pod)
			if row[0] != tt.ready || row[1] != tt.status || row[2] != tt.restarts || row[3] != "5m" {
				t.Errorf("row = %v, want READY %s STATUS %s RESTARTS %s AGE 5m", row, tt.ready, tt.status, tt.restarts)
			}
		})
	}
}

func TestPodTableWide(t *testing.T) {
	pod := newPod()
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: "example.com/ready", Status: corev1.ConditionTrue}}
	row := cells(t, Pods(), pod)
	if got := strings.Join([]string{row[3].(string), row[4].(string), row[5].(string), row[6].(string), row[7].(string)}, " "); got != "<unknown> <none> <none> <none> 1/1" {
		t.Errorf("AGE and wide cells = %q", got)
	}
	pod.Spec.NodeName = "node-a"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.5"}}
	row = cells(t, Pods(), pod)
	if row[4] != "10.0.0.5" || row[5] != "node-a" {
		t.Errorf("IP/NODE = %v/%v", row[4], row[5])
	}
	for i, c := range Pods().TableColumns {
		if wantWide := i >= 4; (c.Priority == 1) != wantWide {
			t.Errorf("column %s priority %d", c.Name, c.Priority)
		}
	}
}

func TestPodHostNetwork(t *testing.T) {
	pod := newPod()
	pod.Spec.HostNetwork = true
	requireNoErrors(t, create(Pods(), pod))
	if got := pod.Spec.Containers[0].Ports[0].HostPort; got != 80 {
		t.Errorf("hostPort = %d, want defaulted to containerPort 80", got)
	}
	pod.Spec.Containers[0].Ports[0].HostPort = 8080
	requireError(t, Pods().Validate(pod), "spec.containers[0].ports[0].hostPort", field.ErrorTypeInvalid)
}

func TestPodGeneration(t *testing.T) {
	old := newPod()
	requireNoErrors(t, create(Pods(), old))
	if old.Generation != 1 {
		t.Fatalf("generation on create = %d", old.Generation)
	}
	pod := old.DeepCopy()
	pod.Spec.Containers[0].Image = "nginx:1.29"
	requireNoErrors(t, update(Pods(), pod, old))
	if pod.Generation != 2 {
		t.Errorf("generation after image change = %d, want 2", pod.Generation)
	}
}
