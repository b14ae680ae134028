package authz

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
)

// ErrNotSynced is returned by a Cache read before its informers have synced.
var ErrNotSynced = errors.New("authorization cache not synced yet")

// podsByNode indexes pods by spec.nodeName.
const podsByNode = "spec.nodeName"

// Cache holds the roles, bindings and pods authorization reads, from
// informers over the API server. It is a RuleStore and a PodStore; reads
// fail with ErrNotSynced until Run has synced it. Safe for concurrent use.
type Cache struct {
	l atomic.Pointer[listers]
}

type listers struct {
	roles               rbaclisters.RoleLister
	clusterRoles        rbaclisters.ClusterRoleLister
	roleBindings        rbaclisters.RoleBindingLister
	clusterRoleBindings rbaclisters.ClusterRoleBindingLister
	pods                corelisters.PodLister
	podIndex            cache.Indexer
}

var (
	_ RuleStore = (*Cache)(nil)
	_ PodStore  = (*Cache)(nil)
)

// NewCache returns an empty Cache; Run fills it.
func NewCache() *Cache { return &Cache{} }

// Run starts informers with client (an identity that may list and watch
// roles, bindings and pods: the admin's loopback client), serves reads once
// they have synced, and returns when ctx ends. It returns an error only if
// ctx ends before the first sync.
func (c *Cache) Run(ctx context.Context, client kubernetes.Interface) error {
	if err := c.Start(ctx, client); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// Start starts informers with client, waits until they have synced and
// returns; the informers stop when ctx ends.
func (c *Cache) Start(ctx context.Context, client kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	if err := c.StartWith(ctx, factory); err != nil {
		factory.Shutdown()
		return err
	}
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	return nil
}

// StartWith is Start with the informers of a factory that other readers
// share (one watch of pods for all of them); the informers it starts stop
// when ctx ends, and the factory's owner shuts it down.
func (c *Cache) StartWith(ctx context.Context, factory informers.SharedInformerFactory) error {
	rbac := factory.Rbac().V1()
	podInformer := factory.Core().V1().Pods()
	if err := podInformer.Informer().AddIndexers(cache.Indexers{podsByNode: func(obj any) ([]string, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return nil, nil
		}
		return []string{pod.Spec.NodeName}, nil
	}}); err != nil {
		return fmt.Errorf("authz: pod index: %w", err)
	}
	l := &listers{
		roles:               rbac.Roles().Lister(),
		clusterRoles:        rbac.ClusterRoles().Lister(),
		roleBindings:        rbac.RoleBindings().Lister(),
		clusterRoleBindings: rbac.ClusterRoleBindings().Lister(),
		pods:                podInformer.Lister(),
		podIndex:            podInformer.Informer().GetIndexer(),
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("authz: %v informer did not sync: %w", typ, context.Cause(ctx))
		}
	}
	c.l.Store(l)
	return nil
}

// Synced reports whether reads are served.
func (c *Cache) Synced() bool { return c.l.Load() != nil }

func (c *Cache) get() (*listers, error) {
	l := c.l.Load()
	if l == nil {
		return nil, ErrNotSynced
	}
	return l, nil
}

// GetRole implements RuleStore.
func (c *Cache) GetRole(namespace, name string) (*rbacv1.Role, error) {
	l, err := c.get()
	if err != nil {
		return nil, err
	}
	return l.roles.Roles(namespace).Get(name)
}

// GetClusterRole implements RuleStore.
func (c *Cache) GetClusterRole(name string) (*rbacv1.ClusterRole, error) {
	l, err := c.get()
	if err != nil {
		return nil, err
	}
	return l.clusterRoles.Get(name)
}

// ListClusterRoles implements RuleStore.
func (c *Cache) ListClusterRoles() ([]*rbacv1.ClusterRole, error) {
	l, err := c.get()
	if err != nil {
		return nil, err
	}
	return l.clusterRoles.List(labels.Everything())
}

// ListRoleBindings implements RuleStore.
func (c *Cache) ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error) {
	l, err := c.get()
	if err != nil {
		return nil, err
	}
	return l.roleBindings.RoleBindings(namespace).List(labels.Everything())
}

// ListClusterRoleBindings implements RuleStore.
func (c *Cache) ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error) {
	l, err := c.get()
	if err != nil {
		return nil, err
	}
	return l.clusterRoleBindings.List(labels.Everything())
}

// PodsOnNode implements PodStore.
func (c *Cache) PodsOnNode(node string) ([]*corev1.Pod, error) {
	l, err := c.get()
	if err != nil {
		return nil, err
	}
	objs, err := l.podIndex.ByIndex(podsByNode, node)
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// GetPod implements PodStore.
func (c *Cache) GetPod(namespace, name string) (*corev1.Pod, error) {
	l, err := c.get()
	if err != nil {
		return nil, err
	}
	return l.pods.Pods(namespace).Get(name)
}
