// Package endpoints is the Endpoints and EndpointSlice controllers. For
// every Service with a selector it keeps, as upstream's
// pkg/controller/endpoint and pkg/controller/endpointslice do:
//
//   - an Endpoints object of the service's name: ready pods' addresses in
//     addresses, unready ones in notReadyAddresses (all in addresses with
//     publishNotReadyAddresses), terminating pods left out, ports resolved
//     per pod from the service's target ports, subsets in canonical order,
//     the last-change-trigger-time annotation; deleted with the service;
//   - EndpointSlices (discovery.k8s.io/v1) named after and owned by the
//     service, at most Options.MaxEndpointsPerSlice endpoints each, with
//     ready, serving and terminating conditions (terminating pods stay, not
//     ready), rewritten in place with as little churn as possible. They go
//     with the service through the garbage collector (ownerReference).
//
// Services without a selector (endpoints managed by their users) and
// ExternalName services are left alone.
//
// The decisions are pure functions (Subsets, RepackSubsets,
// DesiredEndpoints, PlanSlices); Run is the loop around them. Pod changes
// reach the services selecting the pod through a per-namespace selector
// index, and are synced at once (no batching delay unless
// Options.BatchPeriod asks for one): a pod that stops being ready, or
// starts terminating, leaves the ready endpoints as fast as the API
// allows, since proxies route only to ready endpoints.
package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Options tune the controllers; zero values take the defaults.
type Options struct {
	// Workers is how many services each controller syncs at once
	// (default 5, upstream's).
	Workers int
	// MaxEndpointsPerSlice caps the endpoints of one EndpointSlice
	// (default 100, upstream's).
	MaxEndpointsPerSlice int
	// BatchPeriod delays the syncs pod changes cause, to fold several
	// changes into one write (default 0: sync at once).
	BatchPeriod time.Duration
	// Resync is the informers' resync period (default 10 minutes).
	Resync time.Duration
	// Informers, if set, is a factory shared with other controllers: Run
	// registers its informers and handlers on it, then calls its Start
	// once, and leaves shutting it down to its owner. If nil, Run makes,
	// starts and stops its own.
	Informers informers.SharedInformerFactory
}

const (
	// maxRetries is how often a failing service is retried (with
	// exponential backoff from 5ms) before it is dropped until its next
	// change, as upstream.
	maxRetries = 15
	// sliceChangeDelay delays the sync a change of a managed slice by
	// someone else causes, as upstream's endpointSliceChangeMinSyncDelay.
	sliceChangeDelay = time.Second
	// leaderAnnotation marks the Endpoints of old-style leader elections,
	// which have no service and must not be deleted.
	leaderAnnotation = "control-plane.alpha.kubernetes.io/leader"
)

// Event reasons, as upstream.
const (
	ReasonFailedToCreateEndpoint       = "FailedToCreateEndpoint"
	ReasonFailedToUpdateEndpoint       = "FailedToUpdateEndpoint"
	ReasonFailedToUpdateEndpointSlices = "FailedToUpdateEndpointSlices"
)

// Run runs the Endpoints and the EndpointSlice controllers until ctx is
// done, then returns nil. It returns an error only if it cannot start.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger, opts Options) error {
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = 5
	}
	if opts.MaxEndpointsPerSlice <= 0 {
		opts.MaxEndpointsPerSlice = DefaultMaxEndpointsPerSlice
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Minute
	}
	newQueue := func(name string) workqueue.TypedRateLimitingInterface[string] {
		return workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
	}
	c := &controller{
		client:       client,
		log:          logger.With("controller", "endpoints"),
		opts:         opts,
		index:        NewSelectorIndex(),
		epQueue:      newQueue("endpoint"),
		sliceQueue:   newQueue("endpointslice"),
		epTimes:      NewTriggerTimes(),
		sliceTimes:   NewTriggerTimes(),
		staleEps:     newStaleEndpoints(),
		sliceTracker: newSliceTracker(),
		epWaiting:    &waiting{keys: map[string]bool{}},
		sliceWaiting: &waiting{keys: map[string]bool{}},
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	c.epRecorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "endpoint-controller"})
	c.sliceRecorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "endpoint-slice-controller"})

	factory, own := opts.Informers, opts.Informers == nil
	if own {
		factory = informers.NewSharedInformerFactory(client, opts.Resync)
	}
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	epInf := factory.Core().V1().Endpoints()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	c.svcLister, c.podLister = svcInf.Lister(), podInf.Lister()
	c.epLister, c.sliceLister = epInf.Lister(), sliceInf.Lister()

	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{svcInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.serviceChanged,
			UpdateFunc: func(_, cur any) { c.serviceChanged(cur) },
			DeleteFunc: c.serviceDeleted,
		}},
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.podAdded,
			UpdateFunc: c.podUpdated,
			DeleteFunc: c.podDeleted,
		}},
		{epInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.endpointsChanged,
			UpdateFunc: func(_, cur any) { c.endpointsChanged(cur) },
			DeleteFunc: c.endpointsDeleted,
		}},
		{sliceInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.sliceAdded,
			UpdateFunc: c.sliceUpdated,
			DeleteFunc: c.sliceDeleted,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandlerWithResyncPeriod(h.h, opts.Resync); err != nil {
			return fmt.Errorf("endpoints controller: adding event handler: %w", err)
		}
	}
	factory.Start(ctx.Done())
	if own {
		defer factory.Shutdown()
	}
	defer c.epQueue.ShutDown()
	defer c.sliceQueue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, podInf.Informer().HasSynced,
		epInf.Informer().HasSynced, sliceInf.Informer().HasSynced) {
		return nil // ctx done before the caches synced
	}
	c.log.Info("endpoints and endpointslice controllers started", "workers", opts.Workers)
	c.enqueueLeftoverEndpoints()

	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(func() {
			for c.processNext(ctx, c.epQueue, c.syncEndpoints) {
			}
		})
		wg.Go(func() {
			for c.processNext(ctx, c.sliceQueue, c.syncSlices) {
			}
		})
	}
	<-ctx.Done()
	c.epQueue.ShutDown()
	c.sliceQueue.ShutDown()
	wg.Wait()
	return nil
}

type controller struct {
	client        kubernetes.Interface
	log           *slog.Logger
	opts          Options
	index         *SelectorIndex
	epQueue       workqueue.TypedRateLimitingInterface[string]
	sliceQueue    workqueue.TypedRateLimitingInterface[string]
	epRecorder    record.EventRecorder
	sliceRecorder record.EventRecorder
	epTimes       *TriggerTimes
	sliceTimes    *TriggerTimes
	staleEps      *staleEndpoints
	sliceTracker  *sliceTracker
	epWaiting     *waiting
	sliceWaiting  *waiting
	svcLister     corelisters.ServiceLister
	podLister     corelisters.PodLister
	epLister      corelisters.EndpointsLister
	sliceLister   discoverylisters.EndpointSliceLister
}

func (c *controller) enqueueService(key string) {
	c.epQueue.Add(key)
	c.sliceQueue.Add(key)
}

func (c *controller) serviceChanged(obj any) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	c.index.Set(svc)
	c.enqueueService(svc.Namespace + "/" + svc.Name)
}

func (c *controller) serviceDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	c.index.Delete(svc.Namespace, svc.Name)
	c.enqueueService(svc.Namespace + "/" + svc.Name)
}

// podServices enqueues the services selecting a pod with the given labels.
func (c *controller) podServices(namespace string, podLabels map[string]string) {
	c.index.Matching(namespace, podLabels, func(key string) {
		if c.opts.BatchPeriod > 0 {
			c.epQueue.AddAfter(key, c.opts.BatchPeriod)
			c.sliceQueue.AddAfter(key, c.opts.BatchPeriod)
			return
		}
		c.enqueueService(key)
	})
}

func (c *controller) podAdded(obj any) {
	if p, ok := obj.(*corev1.Pod); ok {
		c.podServices(p.Namespace, p.Labels)
	}
}

func (c *controller) podUpdated(oldObj, curObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return // resync: the service resync covers it
	}
	changed, membership := podChange(old, cur)
	if !changed && !membership {
		return
	}
	c.podServices(cur.Namespace, cur.Labels)
	if membership {
		// Services that selected the old labels; a key in both sets is
		// queued once by the work queue.
		c.podServices(old.Namespace, old.Labels)
	}
}

func (c *controller) podDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		c.podServices(p.Namespace, p.Labels)
	}
}

// endpointsChanged queues a service waiting for the cache to catch up.
func (c *controller) endpointsChanged(obj any) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil && c.epWaiting.take(key) {
		c.epQueue.Add(key)
	}
}

// endpointsDeleted queues the service to recreate (or, gone, forget)
// its Endpoints; the controller's record of its last write no longer
// applies.
func (c *controller) endpointsDeleted(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	if namespace, name, err := cache.SplitMetaNamespaceKey(key); err == nil {
		c.staleEps.forget(namespace, name)
	}
	c.epWaiting.take(key)
	c.epQueue.Add(key)
}

func (c *controller) managed(es *discoveryv1.EndpointSlice) bool {
	return es.Labels[discoveryv1.LabelManagedBy] == ControllerName
}

func (c *controller) sliceServiceChanged(es *discoveryv1.EndpointSlice) {
	name := es.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return
	}
	c.sliceQueue.AddAfter(es.Namespace+"/"+name, max(sliceChangeDelay, c.opts.BatchPeriod))
}

// sliceCaughtUp queues the slice's service at once if it waits for the
// cache to catch up.
func (c *controller) sliceCaughtUp(es *discoveryv1.EndpointSlice) {
	if name := es.Labels[discoveryv1.LabelServiceName]; name != "" && c.sliceWaiting.take(es.Namespace+"/"+name) {
		c.sliceQueue.Add(es.Namespace + "/" + name)
	}
}

func (c *controller) sliceAdded(obj any) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	c.sliceCaughtUp(es)
	if c.managed(es) && c.sliceTracker.shouldSync(es) {
		c.sliceServiceChanged(es)
	}
}

func (c *controller) sliceUpdated(oldObj, curObj any) {
	old, ok1 := oldObj.(*discoveryv1.EndpointSlice)
	cur, ok2 := curObj.(*discoveryv1.EndpointSlice)
	if !ok1 || !ok2 {
		return
	}
	c.sliceCaughtUp(cur)
	if old.Labels[discoveryv1.LabelServiceName] != cur.Labels[discoveryv1.LabelServiceName] {
		c.sliceServiceChanged(old)
		c.sliceServiceChanged(cur)
		return
	}
	if c.managed(old) != c.managed(cur) || (c.managed(cur) && c.sliceTracker.shouldSync(cur)) {
		c.sliceServiceChanged(cur)
	}
}

func (c *controller) sliceDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	expected := c.sliceTracker.observedDeletion(es)
	c.sliceCaughtUp(es)
	if c.managed(es) && !expected {
		c.sliceServiceChanged(es)
	}
}

// enqueueLeftoverEndpoints queues every Endpoints object once at start,
// so those whose service went while the controller was down are deleted.
func (c *controller) enqueueLeftoverEndpoints() {
	all, err := c.epLister.List(labels.Everything())
	if err != nil {
		c.log.Warn("listing endpoints for leftovers", "err", err)
		return
	}
	for _, ep := range all {
		if _, ok := ep.Annotations[leaderAnnotation]; ok {
			continue
		}
		c.epQueue.Add(ep.Namespace + "/" + ep.Name)
	}
}

func (c *controller) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string) error) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	err := sync(ctx, key)
	switch {
	case err == nil:
		q.Forget(key)
	case ctx.Err() != nil:
	case q.NumRequeues(key) < maxRetries:
		c.log.Debug("sync failed, retrying", "service", key, "err", err)
		q.AddRateLimited(key)
	default:
		c.log.Warn("sync failed too often, dropping service until its next change", "service", key, "err", err)
		q.Forget(key)
	}
	return true
}

// waiting holds the services whose sync found the informer cache behind
// the controller's own last write: the informer event that brings the
// cache up to date queues them again at once (a retry with backoff
// would add latency to the next change).
type waiting struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (w *waiting) add(key string) {
	w.mu.Lock()
	w.keys[key] = true
	w.mu.Unlock()
}

// take reports whether key was waiting, and forgets it.
func (w *waiting) take(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ok := w.keys[key]
	delete(w.keys, key)
	return ok
}

// staleRecheck is when a service waiting for the cache is synced anyway,
// in case the awaited event never comes.
const staleRecheck = time.Second

// awaitCache parks a service until the cache catches up: stillStale is
// asked again after the service is marked, so an event that arrived in
// between is not missed.
func awaitCache(w *waiting, q workqueue.TypedRateLimitingInterface[string], key string, stillStale func() bool) {
	w.add(key)
	if !stillStale() && w.take(key) {
		q.Add(key)
		return
	}
	q.AddAfter(key, staleRecheck)
}

// service returns the service to sync, or nil if there is nothing to do
// for it (gone, ExternalName, no selector).
func (c *controller) service(namespace, name string) (*corev1.Service, bool, error) {
	svc, err := c.svcLister.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil, false, nil
	}
	return svc, false, nil
}

// syncEndpoints brings one service's Endpoints object in line.
func (c *controller) syncEndpoints(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, gone, err := c.service(namespace, name)
	if err != nil {
		return err
	}
	if gone {
		err := c.client.CoreV1().Endpoints(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting endpoints %s of a deleted service: %w", key, err)
		}
		c.epTimes.Forget(namespace, name)
		c.staleEps.forget(namespace, name)
		return nil
	}
	if svc == nil {
		return nil
	}
	pods, err := c.podLister.Pods(namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return err
	}
	current, err := c.epLister.Endpoints(namespace).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		current = nil
	case err != nil:
		return err
	}
	if c.staleEps.isStale(namespace, name, current) {
		awaitCache(c.epWaiting, c.epQueue, key, func() bool {
			cur, err := c.epLister.Endpoints(namespace).Get(name)
			if apierrors.IsNotFound(err) {
				cur, err = nil, nil
			}
			return err == nil && c.staleEps.isStale(namespace, name, cur)
		})
		return nil
	}
	trigger, seen := c.epTimes.Compute(svc, pods)
	want, write := DesiredEndpoints(svc, pods, current, trigger)
	if !write {
		seen()
		return nil
	}
	api := c.client.CoreV1().Endpoints(namespace)
	if current == nil {
		_, err = api.Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // the namespace is going: nothing to do
			}
			if !apierrors.IsAlreadyExists(err) {
				c.epRecorder.Eventf(want, corev1.EventTypeWarning, ReasonFailedToCreateEndpoint,
					"Failed to create endpoint for service %v/%v: %v", namespace, name, err)
			}
			return fmt.Errorf("creating endpoints %s: %w", key, err)
		}
		c.staleEps.created(namespace, name)
		seen()
		return nil
	}
	updated, err := api.Update(ctx, want, metav1.UpdateOptions{})
	if err != nil {
		if !apierrors.IsConflict(err) {
			c.epRecorder.Eventf(want, corev1.EventTypeWarning, ReasonFailedToUpdateEndpoint,
				"Failed to update endpoint %v/%v: %v", namespace, name, err)
		}
		return fmt.Errorf("updating endpoints %s: %w", key, err)
	}
	if updated.ResourceVersion != current.ResourceVersion {
		c.staleEps.replaced(current)
	}
	seen()
	return nil
}

// syncSlices brings one service's EndpointSlices in line.
func (c *controller) syncSlices(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, gone, err := c.service(namespace, name)
	if err != nil {
		return err
	}
	if gone {
		// The slices go with the service through the garbage collector.
		c.sliceTimes.Forget(namespace, name)
		c.sliceTracker.forget(types.NamespacedName{Namespace: namespace, Name: name})
		return nil
	}
	if svc == nil {
		return nil
	}
	pods, err := c.podLister.Pods(namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return err
	}
	live, err := c.managedSlices(namespace, name)
	if err != nil {
		return err
	}
	svcName := types.NamespacedName{Namespace: namespace, Name: name}
	if c.sliceTracker.stale(svcName, live) {
		awaitCache(c.sliceWaiting, c.sliceQueue, key, func() bool {
			now, err := c.managedSlices(namespace, name)
			return err == nil && c.sliceTracker.stale(svcName, now)
		})
		return nil
	}
	trigger, seen := c.sliceTimes.Compute(svc, pods)
	plan := PlanSlices(svc, pods, live, c.opts.MaxEndpointsPerSlice, trigger)
	if err := c.apply(ctx, svc, plan); err != nil {
		c.sliceRecorder.Eventf(svc, corev1.EventTypeWarning, ReasonFailedToUpdateEndpointSlices,
			"Error updating Endpoint Slices for Service %s/%s: %v", namespace, name, err)
		return err
	}
	seen()
	return nil
}

// managedSlices returns the cached slices the controller manages for a
// service, leaving out those being deleted.
func (c *controller) managedSlices(namespace, name string) ([]*discoveryv1.EndpointSlice, error) {
	all, err := c.sliceLister.EndpointSlices(namespace).List(labels.Set{
		discoveryv1.LabelServiceName: name,
		discoveryv1.LabelManagedBy:   ControllerName,
	}.AsSelectorPreValidated())
	if err != nil {
		return nil, err
	}
	live := all[:0:0]
	for _, es := range all {
		if es.DeletionTimestamp == nil {
			live = append(live, es)
		}
	}
	return live, nil
}

// apply carries out a slice plan: updates first (they carry the moved
// endpoints), then creations, then deletions.
func (c *controller) apply(ctx context.Context, svc *corev1.Service, plan SlicePlan) error {
	api := c.client.DiscoveryV1().EndpointSlices(svc.Namespace)
	for _, es := range plan.Update {
		updated, err := api.Update(ctx, es, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating endpointslice %s/%s: %w", es.Namespace, es.Name, err)
		}
		c.sliceTracker.written(updated)
	}
	for _, es := range plan.Create {
		created, err := api.Create(ctx, es, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			return fmt.Errorf("creating endpointslice for service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		c.sliceTracker.written(created)
	}
	for _, es := range plan.Delete {
		err := api.Delete(ctx, es.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting endpointslice %s/%s: %w", es.Namespace, es.Name, err)
		}
		if err == nil {
			c.sliceTracker.deleted(es)
		}
	}
	return nil
}
