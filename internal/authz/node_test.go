package authz

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/auth"
)

// pods is a PodStore over fixed pods.
type pods []*corev1.Pod

func (p pods) PodsOnNode(node string) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, pod := range p {
		if pod.Spec.NodeName == node {
			out = append(out, pod)
		}
	}
	return out, nil
}

func (p pods) GetPod(namespace, name string) (*corev1.Pod, error) {
	for _, pod := range p {
		if pod.Namespace == namespace && pod.Name == name {
			return pod, nil
		}
	}
	return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
}

func TestNodeAuthorizer(t *testing.T) {
	onA := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: corev1.PodSpec{
		NodeName:         "a",
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		Volumes: []corev1.Volume{
			{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret"}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-cm"}}}},
			{Name: "p", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-secret"}}}}}}},
		},
		InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-cm"}}}}}},
		Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}, Key: "k"}}}}}},
	}}
	onB := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "b",
		Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "b-secret"}}}}}}
	z := NewNode(pods{onA, onB})
	nodeA := auth.User{Name: "system:node:a", Groups: []string{NodesGroup, AuthenticatedGroup}}

	allowed := []Attributes{
		res("get", "", "nodes", "", "", "b"),
		res("list", "", "nodes", "", "", ""),
		res("watch", "", "nodes", "", "", ""),
		res("create", "", "nodes", "", "", ""),
		res("update", "", "nodes", "", "", "a"),
		res("patch", "", "nodes", "status", "", "a"),
		res("delete", "", "nodes", "", "", "a"),
		res("list", "", "pods", "", "", ""),
		res("watch", "", "pods", "", "", ""),
		res("get", "", "pods", "", "ns", "db"),
		res("update", "", "pods", "status", "ns", "web"),
		res("patch", "", "pods", "status", "ns", "web"),
		res("delete", "", "pods", "", "ns", "web"),
		res("list", "", "services", "", "", ""),
		res("watch", "", "endpoints", "", "", ""),
		res("list", "discovery.k8s.io", "endpointslices", "", "", ""),
		res("get", "", "secrets", "", "ns", "pull"),
		res("get", "", "secrets", "", "ns", "vol-secret"),
		res("get", "", "secrets", "", "ns", "proj-secret"),
		res("get", "", "secrets", "", "ns", "env-secret"),
		res("get", "", "configmaps", "", "ns", "vol-cm"),
		res("get", "", "configmaps", "", "ns", "init-cm"),
		res("get", "", "persistentvolumeclaims", "", "ns", "data"),
		res("create", "coordination.k8s.io", "leases", "", "kube-node-lease", ""),
		res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "a"),
		res("get", "coordination.k8s.io", "leases", "", "kube-node-lease", "a"),
		res("create", "", "events", "", "ns", ""),
		res("patch", "events.k8s.io", "events", "", "ns", "e"),
	}
	for _, a := range allowed {
		a.User = nodeA
		if d, reason, err := z.Authorize(context.Background(), a); d != DecisionAllow || err != nil {
			t.Errorf("%s %s/%s %s/%s: %v %q %v, want Allow", a.Verb, a.Resource, a.Subresource, a.Namespace, a.Name, d, reason, err)
		}
	}

	refused := []struct {
		a      Attributes
		reason string
	}{
		{res("update", "", "nodes", "", "", "b"), "node 'a' cannot modify node 'b'"},
		{res("patch", "", "nodes", "status", "", "b"), "node 'a' cannot modify node 'b'"},
		{res("delete", "", "nodes", "", "", "b"), "node 'a' cannot modify node 'b'"},
		{res("update", "", "pods", "status", "ns", "db"), "no relationship found between node 'a' and this object"},
		{res("delete", "", "pods", "", "ns", "db"), "no relationship found between node 'a' and this object"},
		{res("delete", "", "pods", "", "ns", "missing"), "no relationship found between node 'a' and this object"},
		{res("update", "", "pods", "", "ns", "web"), ""},
		{res("create", "", "pods", "", "ns", ""), ""},
		{res("create", "", "pods", "eviction", "ns", "web"), ""},
		{res("get", "", "secrets", "", "ns", "b-secret"), "no relationship found between node 'a' and this object"},
		{res("get", "", "secrets", "", "other", "vol-secret"), "no relationship found between node 'a' and this object"},
		{res("list", "", "secrets", "", "ns", ""), "can only read resources of this type referenced by pods bound to the node"},
		{res("update", "", "configmaps", "", "ns", "vol-cm"), ""},
		{res("create", "", "services", "", "ns", ""), ""},
		{res("update", "discovery.k8s.io", "endpointslices", "", "ns", "e"), ""},
		{res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "b"), "can only access node lease with the same name as the requesting node"},
		{res("update", "coordination.k8s.io", "leases", "", "kube-system", "a"), "can only access leases in the kube-node-lease namespace"},
		{res("get", "apps", "deployments", "", "ns", "d"), ""},
		{res("delete", "", "namespaces", "", "", "ns"), ""},
	}
	for _, c := range refused {
		a := c.a
		a.User = nodeA
		if d, reason, _ := z.Authorize(context.Background(), a); d != DecisionNoOpinion || reason != c.reason {
			t.Errorf("%s %s/%s %s/%s: %v %q, want NoOpinion %q", a.Verb, a.Resource, a.Subresource, a.Namespace, a.Name, d, reason, c.reason)
		}
	}

	// Not a node identity: the name alone, or the group alone, is not enough.
	for _, u := range []auth.User{{Name: "system:node:a"}, {Name: "alice", Groups: []string{NodesGroup}}} {
		a := res("update", "", "nodes", "", "", "a")
		a.User = u
		if d, _, _ := z.Authorize(context.Background(), a); d != DecisionNoOpinion {
			t.Errorf("%+v: %v, want NoOpinion", u, d)
		}
	}
}

func TestPodReferences(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s1"}}}},
			Env: []corev1.EnvVar{{ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c1"}}}}}}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s2"}}}}}}},
	}}
	if got := PodReferences(p, "secrets"); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("secrets = %v", got)
	}
	if got := PodReferences(p, "configmaps"); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("configmaps = %v", got)
	}
	if got := PodReferences(p, "persistentvolumeclaims"); len(got) != 0 {
		t.Errorf("claims = %v", got)
	}
}
