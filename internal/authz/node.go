package authz

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// PodStore is where the node authorizer finds the pods bound to a node.
type PodStore interface {
	// PodsOnNode returns the pods whose spec.nodeName is node.
	PodsOnNode(node string) ([]*corev1.Pod, error)
	// GetPod returns one pod, or a NotFound error.
	GetPod(namespace, name string) (*corev1.Pod, error)
}

// Node authorizes node identities (user system:node:<name> in group
// system:nodes) for what a kubelet needs, and nothing more: read nodes,
// pods, services, endpoints and endpoint slices; read a secret, config map
// or persistent volume claim only when a pod bound to the node refers to
// it; write its own Node (and status) and its own Lease in
// kube-node-lease; update the status of, and delete, pods bound to it;
// write events. It has no opinion on other users and on anything else
// (RBAC may still grant it), giving a reason where upstream's does.
//
// Creating a Node or a Lease carries no name in the URL; like upstream's
// node authorizer it allows the create and leaves the name to admission.
type Node struct{ pods PodStore }

var _ Authorizer = (*Node)(nil)

// NewNode returns a node authorizer that finds pods in pods.
func NewNode(pods PodStore) *Node { return &Node{pods: pods} }

// NodeName returns the node a user is the identity of, if any.
func NodeName(u *Attributes) (string, bool) {
	name, ok := strings.CutPrefix(u.User.Name, NodeUserPrefix)
	if !ok || name == "" || !contains(u.User.Groups, NodesGroup) {
		return "", false
	}
	return name, true
}

var (
	readVerbs  = []string{"get", "list", "watch"}
	writeVerbs = []string{"create", "update", "patch", "delete"}
)

// Authorize implements Authorizer.
func (n *Node) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	node, ok := NodeName(&a)
	if !ok || !a.ResourceRequest {
		return DecisionNoOpinion, "", nil
	}
	allow := func(cond bool, reason string) (Decision, string, error) {
		if cond {
			return DecisionAllow, "", nil
		}
		return DecisionNoOpinion, reason, nil
	}
	switch a.APIGroup + "/" + a.Resource {
	case "/nodes":
		switch {
		case a.Subresource == "" && contains(readVerbs, a.Verb), a.Subresource == "status" && a.Verb == "get":
			return DecisionAllow, "", nil
		case (a.Subresource == "" || a.Subresource == "status") && contains(writeVerbs, a.Verb):
			return allow(a.Name == node || (a.Verb == "create" && a.Name == ""), fmt.Sprintf("node '%s' cannot modify node '%s'", node, a.Name))
		}
		return DecisionNoOpinion, "", nil
	case "/pods":
		switch {
		case a.Subresource == "" && contains(readVerbs, a.Verb):
			return DecisionAllow, "", nil
		case a.Subresource == "status" && (a.Verb == "update" || a.Verb == "patch" || a.Verb == "get"),
			a.Subresource == "" && a.Verb == "delete":
			return n.boundPod(node, a)
		}
		return DecisionNoOpinion, "", nil
	case "/services", "/endpoints", "discovery.k8s.io/endpointslices":
		return allow(a.Subresource == "" && contains(readVerbs, a.Verb), "")
	case "/secrets", "/configmaps", "/persistentvolumeclaims":
		if a.Subresource != "" || !contains(readVerbs, a.Verb) {
			return DecisionNoOpinion, "", nil
		}
		if a.Verb != "get" || a.Name == "" {
			return DecisionNoOpinion, "can only read resources of this type referenced by pods bound to the node", nil
		}
		return n.referenced(node, a)
	case "coordination.k8s.io/leases":
		if a.Subresource != "" || !(a.Verb == "get" || contains(writeVerbs, a.Verb)) {
			return DecisionNoOpinion, "", nil
		}
		if a.Namespace != corev1.NamespaceNodeLease {
			return DecisionNoOpinion, "can only access leases in the kube-node-lease namespace", nil
		}
		return allow(a.Name == node || (a.Verb == "create" && a.Name == ""), "can only access node lease with the same name as the requesting node")
	case "/events", "events.k8s.io/events":
		return allow(a.Subresource == "" && (a.Verb == "create" || a.Verb == "update" || a.Verb == "patch"), "")
	}
	return DecisionNoOpinion, "", nil
}

// noRelationship is upstream's reason when an object is not tied to the node.
func noRelationship(node string) string {
	return fmt.Sprintf("no relationship found between node '%s' and this object", node)
}

// boundPod allows a request on a pod bound to node.
func (n *Node) boundPod(node string, a Attributes) (Decision, string, error) {
	pod, err := n.pods.GetPod(a.Namespace, a.Name)
	switch {
	case apierrors.IsNotFound(err):
		return DecisionNoOpinion, noRelationship(node), nil
	case err != nil:
		return DecisionNoOpinion, err.Error(), err
	case pod.Spec.NodeName != node:
		return DecisionNoOpinion, noRelationship(node), nil
	}
	return DecisionAllow, "", nil
}

// referenced allows a get of a secret, config map or claim that a pod
// bound to node refers to.
func (n *Node) referenced(node string, a Attributes) (Decision, string, error) {
	pods, err := n.pods.PodsOnNode(node)
	if err != nil {
		return DecisionNoOpinion, err.Error(), err
	}
	for _, p := range pods {
		if p.Namespace != a.Namespace {
			continue
		}
		if contains(PodReferences(p, a.Resource), a.Name) {
			return DecisionAllow, "", nil
		}
	}
	return DecisionNoOpinion, noRelationship(node), nil
}

// PodReferences returns the names of the objects of a kind ("secrets",
// "configmaps" or "persistentvolumeclaims") a pod refers to: through
// volumes (projected ones included), env and envFrom of every container
// (init and ephemeral too), and image pull secrets.
func PodReferences(p *corev1.Pod, resource string) []string {
	var out []string
	add := func(name string) {
		if name != "" {
			out = append(out, name)
		}
	}
	spec := &p.Spec
	if resource == "secrets" {
		for _, s := range spec.ImagePullSecrets {
			add(s.Name)
		}
	}
	for _, v := range spec.Volumes {
		switch resource {
		case "secrets":
			if v.Secret != nil {
				add(v.Secret.SecretName)
			}
		case "configmaps":
			if v.ConfigMap != nil {
				add(v.ConfigMap.Name)
			}
		case "persistentvolumeclaims":
			if v.PersistentVolumeClaim != nil {
				add(v.PersistentVolumeClaim.ClaimName)
			}
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				switch {
				case resource == "secrets" && src.Secret != nil:
					add(src.Secret.Name)
				case resource == "configmaps" && src.ConfigMap != nil:
					add(src.ConfigMap.Name)
				}
			}
		}
	}
	envRefs := func(env []corev1.EnvVar, envFrom []corev1.EnvFromSource) {
		for _, e := range envFrom {
			switch {
			case resource == "secrets" && e.SecretRef != nil:
				add(e.SecretRef.Name)
			case resource == "configmaps" && e.ConfigMapRef != nil:
				add(e.ConfigMapRef.Name)
			}
		}
		for _, e := range env {
			if e.ValueFrom == nil {
				continue
			}
			switch {
			case resource == "secrets" && e.ValueFrom.SecretKeyRef != nil:
				add(e.ValueFrom.SecretKeyRef.Name)
			case resource == "configmaps" && e.ValueFrom.ConfigMapKeyRef != nil:
				add(e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	}
	for _, c := range spec.InitContainers {
		envRefs(c.Env, c.EnvFrom)
	}
	for _, c := range spec.Containers {
		envRefs(c.Env, c.EnvFrom)
	}
	for _, c := range spec.EphemeralContainers {
		envRefs(c.Env, c.EnvFrom)
	}
	return out
}
