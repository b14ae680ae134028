package simfleet

import (
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// nodeIndex indexes the shared pod informer by spec.nodeName.
const nodeIndex = "spec.nodeName"

func indexByNode(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return nil, nil
	}
	return []string{p.Spec.NodeName}, nil
}

// nodePods lists the pods of one node in the shared informer's indexer.
type nodePods struct {
	idx  cache.Indexer
	node string
}

var _ corelisters.PodLister = nodePods{}

func (l nodePods) List(sel labels.Selector) ([]*corev1.Pod, error) {
	return l.list("", sel)
}

func (l nodePods) list(ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	objs, err := l.idx.ByIndex(nodeIndex, l.node)
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for _, o := range objs {
		p := o.(*corev1.Pod)
		if (ns == "" || p.Namespace == ns) && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (l nodePods) Pods(ns string) corelisters.PodNamespaceLister { return nsPods{l, ns} }

// nsPods is nodePods in one namespace.
type nsPods struct {
	nodePods
	ns string
}

func (l nsPods) List(sel labels.Selector) ([]*corev1.Pod, error) { return l.list(l.ns, sel) }

// Get returns the pod if it is bound to the node, else NotFound, as the
// node's own field-selected watch would.
func (l nsPods) Get(name string) (*corev1.Pod, error) {
	o, ok, err := l.idx.GetByKey(l.ns + "/" + name)
	if err != nil {
		return nil, err
	}
	if p, _ := o.(*corev1.Pod); ok && p != nil && p.Spec.NodeName == l.node {
		return p, nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("pod"), name)
}
