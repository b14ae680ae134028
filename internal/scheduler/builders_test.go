package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// nodeB builds a Ready node; mutate it with the methods.
type nodeB struct{ n *corev1.Node }

func mkNode(name, cpu, mem string) *nodeB {
	return &nodeB{&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(cpu),
				corev1.ResourceMemory: resource.MustParse(mem),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}}
}

func (b *nodeB) label(k, v string) *nodeB { b.n.Labels[k] = v; return b }
func (b *nodeB) taint(k, v string, e corev1.TaintEffect) *nodeB {
	b.n.Spec.Taints = append(b.n.Spec.Taints, corev1.Taint{Key: k, Value: v, Effect: e})
	return b
}
func (b *nodeB) cordon() *nodeB { b.n.Spec.Unschedulable = true; return b }
func (b *nodeB) ready(s corev1.ConditionStatus) *nodeB {
	b.n.Status.Conditions[0].Status = s
	return b
}
func (b *nodeB) maxPods(n string) *nodeB {
	b.n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse(n)
	return b
}
func (b *nodeB) scalar(name, q string) *nodeB {
	b.n.Status.Allocatable[corev1.ResourceName(name)] = resource.MustParse(q)
	return b
}
func (b *nodeB) obj() *corev1.Node { return b.n }

// podB builds a pod with one container.
type podB struct{ p *corev1.Pod }

var uidSeq int

func mkPod(name string) *podB {
	uidSeq++
	return &podB{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%s-%d", name, uidSeq))},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}}
}

func (b *podB) req(cpu, mem string) *podB {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	b.p.Spec.Containers[0].Resources.Requests = l
	return b
}
func (b *podB) tolerate(t corev1.Toleration) *podB {
	b.p.Spec.Tolerations = append(b.p.Spec.Tolerations, t)
	return b
}
func (b *podB) selector(k, v string) *podB {
	if b.p.Spec.NodeSelector == nil {
		b.p.Spec.NodeSelector = map[string]string{}
	}
	b.p.Spec.NodeSelector[k] = v
	return b
}
func (b *podB) required(terms ...corev1.NodeSelectorTerm) *podB {
	b.affinity().RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: terms}
	return b
}
func (b *podB) preferred(w int32, t corev1.NodeSelectorTerm) *podB {
	a := b.affinity()
	a.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.PreferredSchedulingTerm{Weight: w, Preference: t})
	return b
}
func (b *podB) affinity() *corev1.NodeAffinity {
	if b.p.Spec.Affinity == nil {
		b.p.Spec.Affinity = &corev1.Affinity{}
	}
	if b.p.Spec.Affinity.NodeAffinity == nil {
		b.p.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	return b.p.Spec.Affinity.NodeAffinity
}
func (b *podB) hostPort(port int32, ip string) *podB {
	c := &b.p.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: port, HostPort: port, HostIP: ip})
	return b
}
func (b *podB) owner(uid string) *podB {
	t := true
	b.p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: types.UID(uid), Controller: &t}}
	return b
}
func (b *podB) scalar(name, q string) *podB {
	c := &b.p.Spec.Containers[0]
	if c.Resources.Requests == nil {
		c.Resources.Requests = corev1.ResourceList{}
	}
	c.Resources.Requests[corev1.ResourceName(name)] = resource.MustParse(q)
	return b
}
func (b *podB) on(node string) *podB { b.p.Spec.NodeName = node; return b }
func (b *podB) obj() *corev1.Pod     { return b.p }

func expr(key string, op corev1.NodeSelectorOperator, vals ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
}
