package agent

import (
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/drover/drover/internal/runtime"
)

func TestResolveEnv(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "node-1", ServiceAccountName: "sa"}}
	pod.Name, pod.Namespace, pod.UID = "web-1", "shop", "uid-9"
	pod.Labels = map[string]string{"app": "web"}
	lookup := envLookup{
		ConfigMap: func(ns, name string) (*corev1.ConfigMap, error) {
			if ns == "shop" && name == "cfg" {
				return &corev1.ConfigMap{Data: map[string]string{"MODE": "fast", "LEVEL": "3"}}, nil
			}
			return nil, errors.New("not found")
		},
		Secret: func(ns, name string) (*corev1.Secret, error) {
			if ns == "shop" && name == "creds" {
				return &corev1.Secret{Data: map[string][]byte{"password": []byte("s3cret")}}, nil
			}
			return nil, errors.New("not found")
		},
	}
	ec := envContext{PodIP: "10.0.0.7", HostIP: "192.168.0.1", NodeName: "node-1",
		NodeAllocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")}}
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	yes := true
	tests := []struct {
		name    string
		c       corev1.Container
		want    []runtime.EnvVar
		wantErr bool
	}{
		{"downward API", corev1.Container{Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: field("metadata.name")},
			{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
			{Name: "POD_IP", ValueFrom: field("status.podIP")},
			{Name: "NODE_NAME", ValueFrom: field("spec.nodeName")},
			{Name: "POD_UID", ValueFrom: field("metadata.uid")},
			{Name: "HOST_IP", ValueFrom: field("status.hostIP")},
			{Name: "APP", ValueFrom: field("metadata.labels['app']")},
		}}, []runtime.EnvVar{ev("POD_NAME", "web-1"), ev("POD_NAMESPACE", "shop"), ev("POD_IP", "10.0.0.7"), ev("NODE_NAME", "node-1"), ev("POD_UID", "uid-9"), ev("HOST_IP", "192.168.0.1"), ev("APP", "web")}, false},
		{"configMap and secret keys", corev1.Container{Env: []corev1.EnvVar{
			{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "MODE"}}},
			{Name: "PASS", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "x", Optional: &yes}}},
		}}, []runtime.EnvVar{ev("MODE", "fast"), ev("PASS", "s3cret")}, false},
		{"missing key is an error", corev1.Container{Env: []corev1.EnvVar{
			{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "NOPE"}}},
		}}, nil, true},
		{"missing secret is an error", corev1.Container{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}}}, nil, true},
		{"envFrom with prefix, env overrides and expands", corev1.Container{
			EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			Env: []corev1.EnvVar{
				{Name: "CFG_MODE", Value: "slow"},
				{Name: "URL", Value: "http://$(POD_IP):80/$(CFG_LEVEL)/$(UNKNOWN)/$$(ESCAPED)"},
			},
		}, []runtime.EnvVar{ev("CFG_LEVEL", "3"), ev("CFG_MODE", "slow"), ev("URL", "http://$(POD_IP):80/3/$(UNKNOWN)/$(ESCAPED)")}, false},
		{"resourceFieldRef: limit, request, node allocatable", corev1.Container{
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			},
			Env: []corev1.EnvVar{
				{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
				{Name: "CPU_REQ", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
				{Name: "CPU_LIM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			},
		}, []runtime.EnvVar{ev("MEM_MI", "128"), ev("CPU_REQ", "250"), ev("CPU_LIM", "4")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveEnv(pod, &tt.c, ec, lookup)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("env\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestExpandArgs(t *testing.T) {
	env := []runtime.EnvVar{ev("PORT", "8080")}
	got := expandAll([]string{"-addr=:$(PORT)", "$(MISSING)", "$$(PORT)", "plain"}, env)
	want := []string{"-addr=:8080", "$(MISSING)", "$(PORT)", "plain"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("expandAll = %v, want %v", got, want)
	}
}

func ev(name, value string) runtime.EnvVar { return runtime.EnvVar{Name: name, Value: value} }
