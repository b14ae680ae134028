package controlplane

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
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

// localMetadataClient is a metadata client whose watches are served by the
// API server of this process (apiserver.Server.WatchMetadata), as
// localWatchClient's pod watches are: for the garbage collector's
// informers, which watch every kind. Kinds that server does not serve
// itself are watched through the client.
type localMetadataClient struct {
	metadata.Interface
	watch watchFunc
}

func (c localMetadataClient) Resource(gvr schema.GroupVersionResource) metadata.Getter {
	return localMetadataGetter{Getter: c.Interface.Resource(gvr), gvr: gvr, watch: c.watch}
}

type localMetadataGetter struct {
	metadata.Getter
	gvr   schema.GroupVersionResource
	watch watchFunc
}

func (g localMetadataGetter) Namespace(namespace string) metadata.ResourceInterface {
	return localMetadataResource{ResourceInterface: g.Getter.Namespace(namespace), gvr: g.gvr, namespace: namespace, watch: g.watch}
}

func (g localMetadataGetter) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return watchLocally(ctx, g.watch, g.gvr, "", opts, g.Getter.Watch)
}

type localMetadataResource struct {
	metadata.ResourceInterface
	gvr       schema.GroupVersionResource
	namespace string
	watch     watchFunc
}

func (r localMetadataResource) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return watchLocally(ctx, r.watch, r.gvr, r.namespace, opts, r.ResourceInterface.Watch)
}

// watchLocally watches through local, or through remote when the local
// server does not serve gvr.
func watchLocally(ctx context.Context, local watchFunc, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions,
	remote func(context.Context, metav1.ListOptions) (watch.Interface, error)) (watch.Interface, error) {
	w, err := local(ctx, gvr, namespace, opts)
	if apierrors.IsNotFound(err) {
		return remote(ctx, opts)
	}
	return w, err
}
