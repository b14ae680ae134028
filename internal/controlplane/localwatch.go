package controlplane

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// watchFunc watches a resource in this process (apiserver.Server.Watch).
type watchFunc func(ctx context.Context, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) (watch.Interface, error)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// localWatchClient is a client whose pod watches are served by the API
// server of this process directly, with the objects its watch cache decoded
// for every watcher, rather than encoded, passed through the in-process
// transport and decoded again for each informer (a fifth of what the
// control plane allocated with 10,000 pods). Pods are what changes most;
// everything else, lists included, goes through the client. The objects
// are shared: for informers only, whose caches must not be modified anyway.
type localWatchClient struct {
	kubernetes.Interface
	watch watchFunc
}

func (c localWatchClient) CoreV1() corev1client.CoreV1Interface {
	return localCoreV1{CoreV1Interface: c.Interface.CoreV1(), watch: c.watch}
}

type localCoreV1 struct {
	corev1client.CoreV1Interface
	watch watchFunc
}

func (c localCoreV1) Pods(namespace string) corev1client.PodInterface {
	return localPods{PodInterface: c.CoreV1Interface.Pods(namespace), namespace: namespace, watch: c.watch}
}

type localPods struct {
	corev1client.PodInterface
	namespace string
	watch     watchFunc
}

func (p localPods) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return p.watch(ctx, podsGVR, p.namespace, opts)
}
