// Package replicaset is the ReplicaSet controller. It keeps
// spec.replicas active pods for every ReplicaSet: it creates pods from
// spec.template (named "<rs-name>-<random>", controlled by the ReplicaSet,
// blocking its foreground deletion), deletes the cheapest ones on
// scale-down, adopts orphan pods its selector matches and releases its
// pods that no longer match, and reports status (replicas,
// fullyLabeledReplicas, readyReplicas, availableReplicas after
// minReadySeconds, terminatingReplicas, observedGeneration, and the
// ReplicaFailure condition) as upstream does.
//
// Creations go in slow-start batches (1, 2, 4, ...) of at most
// Options.BurstReplicas per sync, and Expectations make sure a sync
// never acts again on a gap before the controller has seen its own
// previous creations and deletions.
//
// A sync reads only the ReplicaSet's own pods and its namespace's orphans
// (the pod informer is indexed by controller UID), and a change of pod
// status alone, or of the ReplicaSet's status, waits up to
// statusBatchPerPod per pod (at most statusBatchMax) so that one sync of a
// big ReplicaSet takes in many such changes; every change the controller
// must act on (a pod added, deleted, finished, relabelled, adopted or
// released; the spec) syncs at once.
//
// The decisions are pure functions (Decide, PodsToDelete, ComputeStatus,
// ClaimPod, NewPod); Run is the loop around them.
package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/drover/drover/internal/events"
)

// Options tune the controller; zero values take upstream's defaults.
type Options struct {
	// Workers is how many ReplicaSets sync at once (default 5).
	Workers int
	// BurstReplicas caps the pods created or deleted in one sync (default 500).
	BurstReplicas int
	// Resync is the informers' resync period (default 10 minutes).
	Resync time.Duration
	// Informers, if set, is a factory shared with other controllers: Run
	// registers its informers and handlers on it, then calls its Start
	// once, and leaves shutting it down to its owner. If nil, Run makes,
	// starts and stops its own.
	Informers informers.SharedInformerFactory

	// onSync, if set (by this package's tests and benchmarks), is called
	// after every sync with its key and how long it took.
	onSync func(key string, took time.Duration)
}

const (
	// statusBatchPerPod and statusBatchMax set how long a pod's
	// status-only change waits before its ReplicaSet syncs: per pod of the
	// ReplicaSet, at most the maximum. A sync walks all the ReplicaSet's
	// pods, so syncing on every status change of a big ReplicaSet costs
	// quadratic time (10,000 pods turning Ready: 10,000 syncs of 10,000
	// pods); waiting lets one sync take in many changes, while a small
	// ReplicaSet (3 pods: 750µs) still syncs at once. A sync costs 1.5-2.5µs
	// per pod on a loaded 2-core machine, so a wait proportional to the
	// pods keeps each ReplicaSet's syncs under 1% of a core whatever its
	// size; with the wait capped at 1s, ten ReplicaSets of 15,000 pods
	// took a quarter of the control plane's CPU (5,000 nodes, 150,000
	// pods). Status lags by the wait: 250ms at 1,000 pods, 2.5s at 10,000.
	statusBatchPerPod = 250 * time.Microsecond
	statusBatchMax    = 10 * time.Second

	slowStartInitialBatch = 1
	retryBase             = 5 * time.Millisecond
	retryMax              = 1000 * time.Second
	controllerName        = "replicaset-controller"
)

var rsKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Run runs the controller until ctx is done, then returns nil. It returns
// an error only if it cannot start.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger, opts Options) error {
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = 5
	}
	if opts.BurstReplicas <= 0 {
		opts.BurstReplicas = 500
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Minute
	}
	c := &controller{
		client:       client,
		log:          logger.With("controller", "replicaset"),
		opts:         opts,
		expectations: NewExpectations(nil),
		queue:        newQueue(clock.RealClock{}),
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	c.recorder = events.NewRecorder(broadcaster, scheme.Scheme, corev1.EventSource{Component: controllerName})

	factory, own := opts.Informers, opts.Informers == nil
	if own {
		factory = informers.NewSharedInformerFactory(client, opts.Resync)
	}
	rsInf := factory.Apps().V1().ReplicaSets()
	podInf := factory.Core().V1().Pods()
	c.rsLister, c.podLister = rsInf.Lister(), podInf.Lister()
	if err := rsInf.Informer().AddIndexers(cache.Indexers{controllerUIDIndex: controllerUIDIndexFunc}); err != nil {
		return fmt.Errorf("replicaset controller: indexing replicasets: %w", err)
	}
	if err := podInf.Informer().AddIndexers(cache.Indexers{controllerUIDIndex: podControllerUIDIndexFunc}); err != nil {
		return fmt.Errorf("replicaset controller: indexing pods: %w", err)
	}
	c.rsIndexer, c.podIndexer = rsInf.Informer().GetIndexer(), podInf.Informer().GetIndexer()
	if _, err := rsInf.Informer().AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: c.updateRS,
		DeleteFunc: c.deleteRS,
	}, opts.Resync); err != nil {
		return fmt.Errorf("replicaset controller: watching replicasets: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}, opts.Resync); err != nil {
		return fmt.Errorf("replicaset controller: watching pods: %w", err)
	}
	factory.Start(ctx.Done())
	if own {
		defer factory.Shutdown()
	}
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), rsInf.Informer().HasSynced, podInf.Informer().HasSynced) {
		return nil // ctx done before the caches synced
	}
	c.log.Info("replicaset controller started", "workers", opts.Workers)

	var wg sync.WaitGroup
	for range opts.Workers {
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
	client       kubernetes.Interface
	log          *slog.Logger
	opts         Options
	recorder     record.EventRecorder
	expectations *Expectations
	queue        workqueue.TypedRateLimitingInterface[string]
	rsLister     appslisters.ReplicaSetLister
	podLister    corelisters.PodLister
	rsIndexer    cache.Indexer
	podIndexer   cache.Indexer
}

// newQueue is the controller's work queue, its delays timed by clk.
func newQueue(clk clock.WithTicker) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](retryBase, retryMax),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "replicaset", Clock: clk})
}

// controllerUIDIndex indexes ReplicaSets and pods by their controller's
// UID; pods without a controller are indexed under orphanPodKey of their
// namespace (as upstream's podControllerUID index), so a sync reads its
// own pods and the orphans it may adopt, not every pod of the namespace.
const controllerUIDIndex = "controllerUID"

// orphanPodKey is the controllerUIDIndex value of the namespace's pods
// that have no controller.
func orphanPodKey(namespace string) string { return "_ORPHAN_POD/" + namespace }

func podControllerUIDIndexFunc(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return []string{orphanPodKey(p.Namespace)}, nil
}

func controllerUIDIndexFunc(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return nil, nil
}

func (c *controller) enqueue(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// updateRS queues the ReplicaSet. A change of its status alone (mostly
// the controller's own write, seen back) asks for nothing new: it waits
// statusSyncDelay like a pod's status change, or else every status write
// of a big ReplicaSet would start another sync over all its pods at once,
// defeating the batching of pod status changes. Resyncs (same resource
// version) still queue at once, as upstream, so a ReplicaSet whose
// creations failed is retried.
func (c *controller) updateRS(oldObj, newObj any) {
	old, cur := oldObj.(*appsv1.ReplicaSet), newObj.(*appsv1.ReplicaSet)
	if old.ResourceVersion != cur.ResourceVersion && statusOnly(old, cur) {
		c.queue.AddAfter(key(cur), statusSyncDelay(cur))
		return
	}
	c.enqueue(cur)
}

// statusOnly reports whether nothing but the status (and the resource
// version) differs between two versions of a ReplicaSet that the sync reads.
func statusOnly(old, cur *appsv1.ReplicaSet) bool {
	return old.Generation == cur.Generation &&
		old.UID == cur.UID &&
		old.DeletionTimestamp.Equal(cur.DeletionTimestamp) &&
		reflect.DeepEqual(old.Labels, cur.Labels) &&
		reflect.DeepEqual(old.OwnerReferences, cur.OwnerReferences) &&
		reflect.DeepEqual(old.Spec, cur.Spec)
}

func (c *controller) deleteRS(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.expectations.Delete(key)
	c.queue.Add(key)
}

// resolve returns the ReplicaSet a controller reference names, if it is
// the one the reference means.
func (c *controller) resolve(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref == nil || ref.Kind != rsKind.Kind {
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// selecting returns the ReplicaSets in the pod's namespace whose selector
// matches it (candidates to adopt an orphan).
func (c *controller) selecting(p *corev1.Pod) []*appsv1.ReplicaSet {
	all, err := c.rsLister.ReplicaSets(p.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		out = append(out, rs)
	}
	return out
}

func key(rs *appsv1.ReplicaSet) string { return rs.Namespace + "/" + rs.Name }

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func (c *controller) addPod(obj any) {
	p := obj.(*corev1.Pod)
	if p.DeletionTimestamp != nil {
		// Seen already being deleted (e.g. after a restart): a deletion.
		c.deletePod(p)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		if rs := c.resolve(p.Namespace, ref); rs != nil {
			c.expectations.CreationObserved(key(rs))
			c.enqueueObserved(rs)
		}
		return
	}
	for _, rs := range c.selecting(p) {
		c.queue.Add(key(rs))
	}
}

func (c *controller) updatePod(oldObj, newObj any) {
	old, cur := oldObj.(*corev1.Pod), newObj.(*corev1.Pod)
	if old.ResourceVersion == cur.ResourceVersion {
		return // resync: nothing changed
	}
	labelsChanged := !reflect.DeepEqual(old.Labels, cur.Labels)
	if cur.DeletionTimestamp != nil {
		c.deletePod(cur)
		if labelsChanged {
			c.deletePod(old)
		}
		return
	}
	oldRef, curRef := metav1.GetControllerOfNoCopy(old), metav1.GetControllerOfNoCopy(cur)
	refChanged := !reflect.DeepEqual(oldRef, curRef)
	if refChanged && oldRef != nil {
		if rs := c.resolve(old.Namespace, oldRef); rs != nil {
			c.queue.Add(key(rs))
		}
	}
	if curRef != nil {
		rs := c.resolve(cur.Namespace, curRef)
		if rs == nil {
			return
		}
		if !refChanged && !labelsChanged && IsPodActive(old) == IsPodActive(cur) {
			// Only what the status counts changed (readiness, mostly):
			// nothing to create or delete, so a big ReplicaSet waits a
			// little to take in many such changes in one sync. The
			// delaying queue keeps the earliest deadline of a key, so
			// further changes do not put the sync off.
			c.queue.AddAfter(key(rs), statusSyncDelay(rs))
			return
		}
		c.queue.Add(key(rs))
		return
	}
	if labelsChanged || refChanged {
		for _, rs := range c.selecting(cur) {
			c.queue.Add(key(rs))
		}
	}
}

// statusSyncDelay is how long a status-only pod change waits before rs
// syncs: statusBatchPerPod for each of its pods, at most statusBatchMax.
func statusSyncDelay(rs *appsv1.ReplicaSet) time.Duration {
	n := max(replicas(rs), rs.Status.Replicas, 0)
	return min(time.Duration(n)*statusBatchPerPod, statusBatchMax)
}

func (c *controller) deletePod(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if p, ok = tomb.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	rs := c.resolve(p.Namespace, metav1.GetControllerOfNoCopy(p))
	if rs == nil {
		return
	}
	c.expectations.DeletionObserved(key(rs), podKey(p))
	c.enqueueObserved(rs)
}

// enqueueObserved queues rs after one of its own creations or deletions
// was seen: at once when that was the last one it waited for (the next
// batch may go), else batched as a status change, since a sync that still
// waits on expectations only reports status. Without this, each of the
// 10,000 pods a big ReplicaSet creates set off a sync walking all of them.
func (c *controller) enqueueObserved(rs *appsv1.ReplicaSet) {
	k := key(rs)
	if c.expectations.Satisfied(k) {
		c.queue.Add(k)
		return
	}
	c.queue.AddAfter(k, statusSyncDelay(rs))
}

func (c *controller) processNext(ctx context.Context) bool {
	k, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(k)
	begin := time.Now()
	err := c.sync(ctx, k)
	if c.opts.onSync != nil {
		c.opts.onSync(k, time.Since(begin))
	}
	if err == nil {
		c.queue.Forget(k)
		return true
	}
	if ctx.Err() == nil {
		c.log.Warn("replicaset sync failed, retrying", "replicaset", k, "err", err)
	}
	c.queue.AddRateLimited(k)
	return true
}

// sync brings one ReplicaSet's pods and status in line.
func (c *controller) sync(ctx context.Context, k string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	cached, err := c.rsLister.ReplicaSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(k)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading replicaset %s: %w", k, err)
	}
	needsSync := c.expectations.Satisfied(k)
	sel, err := metav1.LabelSelectorAsSelector(cached.Spec.Selector)
	if err != nil {
		c.log.Error("replicaset has an invalid selector", "replicaset", k, "err", err)
		return nil // the API server validates selectors; nothing to retry
	}
	selector := NewMatcher(sel)
	all, err := c.candidatePods(cached)
	if err != nil {
		return fmt.Errorf("listing pods of %s: %w", k, err)
	}
	var active, terminating []*corev1.Pod
	for _, p := range all {
		switch {
		case IsPodActive(p):
			active = append(active, p)
		case IsPodTerminating(p):
			if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == cached.UID && selector.Matches(p.Labels) {
				terminating = append(terminating, p)
			}
		}
	}
	owned, err := c.claim(ctx, cached, selector, active)
	if err != nil {
		return err
	}
	var manageErr error
	if needsSync && cached.DeletionTimestamp == nil {
		manageErr = c.manage(ctx, cached, owned)
	}
	status, next := computeStatus(cached, owned, terminating, manageErr, metav1.Now(), &selector)
	updated, err := c.updateStatus(ctx, cached, status)
	if err != nil {
		return errors.Join(manageErr, err)
	}
	if manageErr == nil && next > 0 && updated.Status.ReadyReplicas > updated.Status.AvailableReplicas {
		c.queue.AddAfter(k, next)
	}
	return manageErr
}

// candidatePods returns the pods a sync of rs looks at: those it
// controls and the orphans of its namespace, which it may adopt. Pods of
// other controllers are none of its business (ClaimPod ignores them), so
// the index spares the sync from listing them.
func (c *controller) candidatePods(rs *appsv1.ReplicaSet) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, v := range []string{string(rs.UID), orphanPodKey(rs.Namespace)} {
		objs, err := c.podIndexer.ByIndex(controllerUIDIndex, v)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = make([]*corev1.Pod, 0, len(objs))
		}
		for _, obj := range objs {
			if p, ok := obj.(*corev1.Pod); ok && p.Namespace == rs.Namespace {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// claim adopts and releases pods as ClaimPod decides and returns the
// ReplicaSet's pods.
func (c *controller) claim(ctx context.Context, rs *appsv1.ReplicaSet, selector Matcher, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var owned []*corev1.Pod
	var errs []error
	var canAdopt *bool // checked once, against the API, before the first adoption
	for _, p := range pods {
		switch claimPod(rs, selector, p) {
		case Keep:
			owned = append(owned, p)
		case Adopt:
			if canAdopt == nil {
				ok, err := c.stillCurrent(ctx, rs)
				if err != nil {
					return nil, err
				}
				canAdopt = &ok
			}
			if !*canAdopt {
				continue
			}
			_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, AdoptPatch(rs, p), metav1.PatchOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				errs = append(errs, fmt.Errorf("adopting pod %s: %w", p.Name, err))
			default:
				c.log.Info("adopted orphan pod", "replicaset", key(rs), "pod", p.Name)
				owned = append(owned, p)
			}
		case Release:
			_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, ReleasePatch(rs, p), metav1.PatchOptions{})
			switch {
			case apierrors.IsNotFound(err), apierrors.IsInvalid(err):
			case err != nil:
				errs = append(errs, fmt.Errorf("releasing pod %s: %w", p.Name, err))
			default:
				c.log.Info("released pod no longer selected", "replicaset", key(rs), "pod", p.Name)
			}
		}
	}
	return owned, errors.Join(errs...)
}

// stillCurrent reads the ReplicaSet from the API (not the cache) to make
// sure it may adopt: the same object, not being deleted.
func (c *controller) stillCurrent(ctx context.Context, rs *appsv1.ReplicaSet) (bool, error) {
	fresh, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking replicaset %s before adopting: %w", key(rs), err)
	}
	return fresh.UID == rs.UID && fresh.DeletionTimestamp == nil, nil
}

// manage creates or deletes pods as Decide says, recording expectations
// first so the informer's events are counted against them.
func (c *controller) manage(ctx context.Context, rs *appsv1.ReplicaSet, owned []*corev1.Pod) error {
	k := key(rs)
	var related []*corev1.Pod
	if len(owned) > int(replicas(rs)) {
		related = c.relatedPods(rs, owned)
	}
	plan := Decide(rs, owned, related, c.opts.BurstReplicas, metav1.Now())
	switch {
	case plan.Create > 0:
		pod, err := NewPod(rs)
		if err != nil {
			return err
		}
		creator, err := newPodCreator(c.client, rs.Namespace, pod)
		if err != nil {
			return err
		}
		c.expectations.ExpectCreations(k, plan.Create)
		ok, err := SlowStart(plan.Create, slowStartInitialBatch, func() error {
			name, err := creator.create(ctx)
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil // the namespace is going; nothing to report
				}
				c.recorder.Eventf(rs, corev1.EventTypeWarning, ReasonFailedCreate, "Error creating: %v", err)
				return err
			}
			c.recorder.Eventf(rs, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created pod: %v", name)
			return nil
		})
		for range plan.Create - ok {
			c.expectations.CreationObserved(k) // never coming
		}
		if err != nil {
			return fmt.Errorf("creating pods for %s: %w", k, err)
		}
		c.log.Debug("created pods", "replicaset", k, "count", ok)
	case len(plan.Delete) > 0:
		keys := make([]string, len(plan.Delete))
		for i, p := range plan.Delete {
			keys[i] = podKey(p)
		}
		c.expectations.ExpectDeletions(k, keys)
		errs := make(chan error, len(plan.Delete))
		var wg sync.WaitGroup
		for _, p := range plan.Delete {
			wg.Go(func() {
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
				if err != nil {
					c.expectations.DeletionObserved(k, podKey(p))
					if !apierrors.IsNotFound(err) {
						c.recorder.Eventf(rs, corev1.EventTypeWarning, ReasonFailedDelete, "Error deleting: %v", err)
						errs <- fmt.Errorf("deleting pod %s: %w", p.Name, err)
					}
					return
				}
				c.recorder.Eventf(rs, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted pod: %v", p.Name)
			})
		}
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		if err := errors.Join(all...); err != nil {
			return err
		}
		c.log.Debug("deleted pods", "replicaset", k, "count", len(plan.Delete))
	}
	return nil
}

// relatedPods returns the active pods of the ReplicaSet and of the other
// ReplicaSets with the same controller (the Deployment's), for the
// co-location rank.
func (c *controller) relatedPods(rs *appsv1.ReplicaSet, owned []*corev1.Pod) []*corev1.Pod {
	ref := metav1.GetControllerOfNoCopy(rs)
	if ref == nil {
		return owned
	}
	siblings, err := c.rsIndexer.ByIndex(controllerUIDIndex, string(ref.UID))
	if err != nil {
		return owned
	}
	var out []*corev1.Pod
	for _, obj := range siblings {
		sib := obj.(*appsv1.ReplicaSet)
		pods, err := c.podIndexer.ByIndex(controllerUIDIndex, string(sib.UID))
		if err != nil {
			continue
		}
		for _, p := range pods {
			if pod := p.(*corev1.Pod); IsPodActive(pod) {
				out = append(out, pod)
			}
		}
	}
	return out
}

// updateStatus writes status if it differs from the ReplicaSet's,
// retrying once on a conflict with a fresh copy.
func (c *controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	if !StatusChanged(rs, status) {
		return rs, nil
	}
	api := c.client.AppsV1().ReplicaSets(rs.Namespace)
	next := rs.DeepCopy()
	for attempt := 0; ; attempt++ {
		// The failure condition's transition time is kept when unchanged.
		next.Status = status
		updated, err := api.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			return updated, nil
		}
		if !apierrors.IsConflict(err) || attempt > 0 {
			if apierrors.IsNotFound(err) {
				return rs, nil
			}
			return nil, fmt.Errorf("updating status of %s: %w", key(rs), err)
		}
		fresh, err := api.Get(ctx, rs.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return rs, nil // deleted meanwhile; nothing to report
		}
		if err != nil {
			return nil, fmt.Errorf("updating status of %s: %w", key(rs), err)
		}
		status.ObservedGeneration = fresh.Generation
		next = fresh
	}
}
