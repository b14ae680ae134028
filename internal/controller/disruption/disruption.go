// Package disruption is the PodDisruptionBudget controller (policy/v1): it
// keeps each budget's status current — the pods its selector matches that
// are healthy (ready, not being deleted, not just evicted), how many must
// be, how many pods are expected (from the scale of their controllers for
// percentages and maxUnavailable), and so how many disruptions are allowed —
// with the DisruptionAllowed condition, as upstream's disruption controller
// does. The eviction subresource of the API server reads that status,
// decrements disruptionsAllowed and records the pods it evicts in
// status.disruptedPods; this controller forgets them once they are being
// deleted or DeletionTimeout has passed.
//
// The arithmetic is the pure functions of decide.go; Run is the loop.
package disruption

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Tuning.
const (
	Workers   = 2
	RetryBase = 50 * time.Millisecond
	RetryMax  = 30 * time.Second
	Resync    = 5 * time.Minute
)

// Run runs the controller until ctx is done, then returns nil; an error only
// if it cannot start. It makes, starts and stops its own informers.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger) error {
	return RunShared(ctx, client, nil, logger)
}

// RunShared is Run with informers from factory, shared with other
// controllers: it registers its informers and handlers on factory, then
// calls its Start once, and leaves shutting it down to its owner. A nil
// factory is Run.
func RunShared(ctx context.Context, client kubernetes.Interface, factory informers.SharedInformerFactory, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	c := &controller{
		client: client,
		log:    logger.With("controller", "disruption"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](RetryBase, RetryMax),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "disruption"}),
	}
	own := factory == nil
	if own {
		factory = informers.NewSharedInformerFactory(client, Resync)
	}
	pdbs := factory.Policy().V1().PodDisruptionBudgets()
	pods := factory.Core().V1().Pods()
	rss := factory.Apps().V1().ReplicaSets()
	deps := factory.Apps().V1().Deployments()
	c.pdbs, c.pods, c.rss, c.deps = pdbs.Lister(), pods.Lister(), rss.Lister(), deps.Lister()

	enqueuePDB := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{pdbs.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: enqueuePDB, UpdateFunc: func(_, obj any) { enqueuePDB(obj) }, DeleteFunc: enqueuePDB,
		}},
		{pods.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: c.podChanged,
			UpdateFunc: func(old, obj any) {
				c.podChanged(obj)
				if o, n := old.(*corev1.Pod), obj.(*corev1.Pod); !labels.Equals(o.Labels, n.Labels) {
					c.podChanged(old)
				}
			},
			DeleteFunc: c.podChanged,
		}},
		// A controller's scale sets expectedPods of budgets in percent or
		// maxUnavailable.
		{rss.Informer(), cache.ResourceEventHandlerFuncs{UpdateFunc: c.scaleChanged}},
		{deps.Informer(), cache.ResourceEventHandlerFuncs{UpdateFunc: c.scaleChanged}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandlerWithResyncPeriod(h.h, Resync); err != nil {
			return fmt.Errorf("disruption controller: event handler: %w", err)
		}
	}
	factory.Start(ctx.Done())
	if own {
		defer factory.Shutdown()
	}
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), pdbs.Informer().HasSynced, pods.Informer().HasSynced,
		rss.Informer().HasSynced, deps.Informer().HasSynced) {
		return nil
	}
	var wg sync.WaitGroup
	for range Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

type controller struct {
	client kubernetes.Interface
	log    *slog.Logger
	pdbs   policylisters.PodDisruptionBudgetLister
	pods   corelisters.PodLister
	rss    appslisters.ReplicaSetLister
	deps   appslisters.DeploymentLister
	queue  workqueue.TypedRateLimitingInterface[string]
}

// podChanged queues the budgets whose selector matches the pod.
func (c *controller) podChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	list, err := c.pdbs.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pdb := range list {
		sel, err := Selector(pdb)
		if err == nil && sel.Matches(labels.Set(pod.Labels)) {
			c.queue.Add(pdb.Namespace + "/" + pdb.Name)
		}
	}
}

// scaleChanged queues the scale-relative budgets of the namespace when a
// controller's replicas change.
func (c *controller) scaleChanged(old, obj any) {
	var ns string
	switch o := obj.(type) {
	case *appsv1.ReplicaSet:
		if *o.Spec.Replicas == *old.(*appsv1.ReplicaSet).Spec.Replicas {
			return
		}
		ns = o.Namespace
	case *appsv1.Deployment:
		if *o.Spec.Replicas == *old.(*appsv1.Deployment).Spec.Replicas {
			return
		}
		ns = o.Namespace
	default:
		return
	}
	list, _ := c.pdbs.PodDisruptionBudgets(ns).List(labels.Everything())
	for _, pdb := range list {
		if NeedsScale(pdb.Spec) {
			c.queue.Add(pdb.Namespace + "/" + pdb.Name)
		}
	}
}

func (c *controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	recheck, err := c.sync(ctx, key)
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case apierrors.IsConflict(err):
			// The cache was behind (an eviction took a disruption).
			c.log.Debug("PodDisruptionBudget changed meanwhile, retrying", "pdb", key)
		default:
			c.log.Warn("syncing PodDisruptionBudget, retrying", "pdb", key, "err", err)
		}
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	if !recheck.IsZero() {
		c.queue.AddAfter(key, time.Until(recheck))
	}
	return true
}

func (c *controller) sync(ctx context.Context, key string) (time.Time, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return time.Time{}, nil
	}
	pdb, err := c.pdbs.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	status, recheck, err := c.compute(ctx, pdb, now)
	if err != nil {
		c.log.Info("PodDisruptionBudget status fails safe", "pdb", key, "err", err)
		status, recheck = FailSafe(pdb, err, now), time.Time{}
	}
	if apiequality.Semantic.DeepEqual(status, pdb.Status) {
		return recheck, err
	}
	next := pdb.DeepCopy()
	next.Status = status
	_, uerr := c.client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	switch {
	case apierrors.IsNotFound(uerr):
		return time.Time{}, nil
	case uerr != nil:
		return time.Time{}, fmt.Errorf("updating status: %w", uerr)
	}
	return recheck, err
}

// compute gathers the budget's pods and their controllers' scale.
func (c *controller) compute(ctx context.Context, pdb *policyv1.PodDisruptionBudget, now time.Time) (policyv1.PodDisruptionBudgetStatus, time.Time, error) {
	sel, err := Selector(pdb)
	if err != nil {
		return policyv1.PodDisruptionBudgetStatus{}, time.Time{}, fmt.Errorf("selector: %w", err)
	}
	pods, err := c.pods.Pods(pdb.Namespace).List(sel)
	if err != nil {
		return policyv1.PodDisruptionBudgetStatus{}, time.Time{}, err
	}
	var scale int32
	if NeedsScale(pdb.Spec) {
		if scale, err = c.expectedScale(ctx, pods); err != nil {
			return policyv1.PodDisruptionBudgetStatus{}, time.Time{}, err
		}
	}
	return Compute(pdb, pods, scale, now)
}

// expectedScale sums the replicas of the pods' controllers, each counted
// once; a ReplicaSet managed by a Deployment counts as the Deployment.
// Pods without a controller are left out, as upstream does.
func (c *controller) expectedScale(ctx context.Context, pods []*corev1.Pod) (int32, error) {
	scales := map[types.UID]int32{}
	seen := map[types.UID]bool{}
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if ref == nil || seen[ref.UID] {
			continue
		}
		seen[ref.UID] = true
		uid, n, err := c.scaleOf(ctx, pod.Namespace, ref)
		if err != nil {
			return 0, fmt.Errorf("found no controllers for pod %q: %w", pod.Name, err)
		}
		scales[uid] = n
	}
	var total int32
	for _, n := range scales {
		total += n
	}
	return total, nil
}

var errUIDMismatch = errors.New("controller UID does not match the owner reference")

// scaleOf finds the controller a reference names and its replicas: from the
// caches for ReplicaSets and Deployments, through the scale subresource for
// any other kind.
func (c *controller) scaleOf(ctx context.Context, ns string, ref *metav1.OwnerReference) (types.UID, int32, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", 0, err
	}
	if gv.Group == appsv1.GroupName {
		switch ref.Kind {
		case "ReplicaSet":
			rs, err := c.rss.ReplicaSets(ns).Get(ref.Name)
			if err != nil {
				return "", 0, err
			}
			if rs.UID != ref.UID {
				return "", 0, errUIDMismatch
			}
			if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
				if dep, err := c.deps.Deployments(ns).Get(dref.Name); err == nil && dep.UID == dref.UID {
					return dep.UID, replicas(dep.Spec.Replicas), nil
				}
			}
			return rs.UID, replicas(rs.Spec.Replicas), nil
		case "Deployment":
			dep, err := c.deps.Deployments(ns).Get(ref.Name)
			if err != nil {
				return "", 0, err
			}
			if dep.UID != ref.UID {
				return "", 0, errUIDMismatch
			}
			return dep.UID, replicas(dep.Spec.Replicas), nil
		}
	}
	resource, err := c.resourceFor(gv, ref.Kind)
	if err != nil {
		return "", 0, err
	}
	path := "/apis/" + gv.Group + "/" + gv.Version
	if gv.Group == "" {
		path = "/api/" + gv.Version
	}
	sc := &autoscalingv1.Scale{}
	err = c.client.Discovery().RESTClient().Get().
		AbsPath(path, "namespaces", ns, resource, ref.Name, "scale").Do(ctx).Into(sc)
	if err != nil {
		return "", 0, err
	}
	if sc.UID != ref.UID {
		return "", 0, errUIDMismatch
	}
	return sc.UID, sc.Spec.Replicas, nil
}

// resourceFor finds the plural resource serving kind in gv, with a scale
// subresource.
func (c *controller) resourceFor(gv schema.GroupVersion, kind string) (string, error) {
	list, err := c.client.Discovery().ServerResourcesForGroupVersion(gv.String())
	if err != nil {
		return "", err
	}
	var plural string
	hasScale := map[string]bool{}
	for _, r := range list.APIResources {
		if r.Kind == kind && plural == "" && !strings.Contains(r.Name, "/") {
			plural = r.Name
		}
		if base, ok := strings.CutSuffix(r.Name, "/scale"); ok {
			hasScale[base] = true
		}
	}
	if plural == "" || !hasScale[plural] {
		return "", fmt.Errorf("%s %s has no scale subresource", gv, kind)
	}
	return plural, nil
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}
