// Package deployment is the Deployment controller. For each Deployment it
// keeps one ReplicaSet per pod template (named "<deployment>-<hash>", the
// pod-template-hash label on its selector, template and so pods), rolls
// from the old ReplicaSets to the new one with the RollingUpdate or
// Recreate strategy, scales them proportionally when the Deployment is
// resized mid-rollout, records revisions in the annotations kubectl reads
// (`kubectl rollout history|undo|status`), deletes old empty ReplicaSets
// beyond revisionHistoryLimit, and reports status and the Available and
// Progressing conditions with upstream's reasons and messages, including
// ProgressDeadlineExceeded when a rollout stalls.
//
// Beyond upstream, a Deployment annotated drover.io/auto-rollback: "true"
// is rolled back to its last fully rolled out revision when it exceeds its
// progress deadline (see AutoRollbackAnnotation).
//
// The decisions are pure functions over values (rollout.go, revision.go,
// status.go, autorollback.go, claim.go); Run is the loop around them.
package deployment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
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

	"github.com/drover/drover/internal/events"
)

// Options tune the controller; the zero value is ready to use.
type Options struct {
	// Workers is how many Deployments are synced at once (default 5).
	Workers int
	// Resync is the informers' resync period (default 0: none; progress
	// deadlines are re-checked with timers).
	Resync time.Duration
	// Informers, if set, is a factory shared with other controllers: Run
	// registers its informers and handlers on it, then calls its Start
	// once, and leaves shutting it down to its owner. If nil, Run makes,
	// starts and stops its own.
	Informers informers.SharedInformerFactory
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Component is the name events are recorded under.
const Component = "deployment-controller"

// Run runs the controller until ctx is done, then returns nil. It returns
// an error only if it cannot start.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger, opts Options) error {
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	broadcaster := record.NewBroadcaster() // shut down after the workers stop (WithContext would stop it first)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()

	c := &controller{
		client:   client,
		log:      logger.With("controller", "deployment"),
		now:      opts.Now,
		recorder: events.NewRecorder(broadcaster, scheme.Scheme, corev1.EventSource{Component: Component}),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment"}),
		written: map[string]uint64{},
	}
	factory, own := opts.Informers, opts.Informers == nil
	if own {
		factory = informers.NewSharedInformerFactory(client, opts.Resync)
	}
	dInf := factory.Apps().V1().Deployments()
	rsInf := factory.Apps().V1().ReplicaSets()
	podInf := factory.Core().V1().Pods()
	c.dLister, c.rsLister, c.podLister = dInf.Lister(), rsInf.Lister(), podInf.Lister()

	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{dInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueue,
			UpdateFunc: func(_, obj any) { c.enqueue(obj) },
			DeleteFunc: func(obj any) { c.forget("deployment", obj); c.enqueue(obj) },
		}},
		{rsInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.rsChanged,
			UpdateFunc: func(old, obj any) { c.rsChanged(old); c.rsChanged(obj) },
			DeleteFunc: func(obj any) { c.forget("replicaset", obj); c.rsChanged(obj) },
		}},
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{
			DeleteFunc: c.podDeleted,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandlerWithResyncPeriod(h.h, opts.Resync); err != nil {
			return fmt.Errorf("deployment controller: adding event handler: %w", err)
		}
	}
	factory.Start(ctx.Done())
	if own {
		defer factory.Shutdown()
	}
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced) {
		return nil // ctx done before the caches synced
	}
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
	client    kubernetes.Interface
	log       *slog.Logger
	now       func() time.Time
	recorder  record.EventRecorder
	queue     workqueue.TypedRateLimitingInterface[string]
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister

	// written holds, per object ("kind/ns/name"), the resourceVersion of
	// the controller's last write, so that a sync on a cache that has not
	// seen it yet is skipped rather than acting on stale sizes.
	mu      sync.Mutex
	written map[string]uint64
}

// errStale: the cache has not caught up with our own writes; the informer
// event that brings them requeues the Deployment.
var errStale = errors.New("cache has not seen the controller's last write yet")

func (c *controller) enqueue(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// rsChanged queues the Deployment controlling rs, or, for an orphan, every
// Deployment whose selector matches it (one of them may adopt it).
func (c *controller) rsChanged(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if ref.Kind == "Deployment" {
			c.queue.Add(rs.Namespace + "/" + ref.Name)
		}
		return
	}
	ds, err := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(rs.Labels)) {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}

// podDeleted queues a Recreate Deployment whose old pods go: it waits for
// them before starting the new ones.
func (c *controller) podDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
		if d, err := c.dLister.Deployments(pod.Namespace).Get(dref.Name); err == nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}

func (c *controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	switch {
	case errors.Is(err, errStale):
		c.queue.AddAfter(key, 250*time.Millisecond)
	case err != nil:
		if ctx.Err() == nil {
			level := slog.LevelWarn
			if apierrors.IsConflict(err) {
				level = slog.LevelDebug
			}
			c.log.Log(ctx, level, "sync failed, retrying", "deployment", key, "err", err)
		}
		c.queue.AddRateLimited(key)
	default:
		c.queue.Forget(key)
	}
	return true
}

// remember records the resourceVersion of an object the controller wrote.
func (c *controller) remember(kind string, obj metav1.Object) {
	rv, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
	if rv > c.written[key] {
		c.written[key] = rv
	}
}

// forget drops the record of writes to a deleted object.
func (c *controller) forget(kind string, obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.written, kind+"/"+key)
}

// fresh reports whether the cached obj is at least as new as our last
// write of it, forgetting the write once it is.
func (c *controller) fresh(kind string, obj metav1.Object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
	want, ok := c.written[key]
	if !ok {
		return true
	}
	rv, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	if err != nil || rv >= want {
		delete(c.written, key)
		return true
	}
	return false
}

// sync brings one Deployment one step closer to its spec.
func (c *controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading deployment %s: %w", key, err)
	}
	if !c.fresh("deployment", cached) {
		return errStale
	}
	d := cached.DeepCopy()
	s := &syncer{c: c, d: d, now: metav1.NewTime(c.now())}

	if sel := d.Spec.Selector; sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			return s.updateStatus(ctx)
		}
		return nil
	}
	rsList, err := s.claim(ctx)
	if err != nil {
		return err
	}
	for _, rs := range rsList {
		if !c.fresh("replicaset", rs) {
			return errStale
		}
	}
	if d.DeletionTimestamp != nil {
		return s.syncStatusOnly(ctx, rsList)
	}
	if st, changed := PausedCondition(d, s.now); changed {
		d.Status = st
		if err := s.updateStatus(ctx); err != nil {
			return err
		}
	}

	newRS, oldRSs := Split(d, rsList)
	dec := DecideAutoRollback(d, newRS, oldRSs)
	switch dec.Action {
	case RollbackToTarget:
		return s.rollback(ctx, dec)
	case RollbackClearMark:
		return s.patchAnnotations(ctx, map[string]*string{FailedRevisionHashAnnotation: nil})
	case RollbackHold:
		if err := s.setHoldCondition(ctx, dec); err != nil {
			return err
		}
		return s.scaleOnly(ctx, rsList, false)
	case RollbackNone:
		if dec.Message != "" {
			c.log.Debug("no automatic rollback", "deployment", key, "reason", dec.Message)
		}
	}
	if d.Spec.Paused {
		return s.scaleOnly(ctx, rsList, true)
	}
	if IsScalingEvent(d, append(oldRSs, newRS)) {
		return s.scaleOnly(ctx, rsList, false)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return s.recreate(ctx, rsList)
	}
	return s.rolling(ctx, rsList)
}

// syncer holds one sync's Deployment, kept current with our own writes.
type syncer struct {
	c   *controller
	d   *appsv1.Deployment
	now metav1.Time
}

// claim lists the namespace's ReplicaSets, adopts matching orphans and
// releases non-matching ones, and returns those the Deployment controls.
func (s *syncer) claim(ctx context.Context) ([]*appsv1.ReplicaSet, error) {
	d := s.d
	all, err := s.c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing replicasets: %w", err)
	}
	cl, err := Claim(d, all)
	if err != nil {
		return nil, err
	}
	owned := cl.Owned
	rsClient := s.c.client.AppsV1().ReplicaSets(d.Namespace)
	if len(cl.Adopt) > 0 {
		// As upstream: check with the API that d is still there and the same
		// before adopting for it.
		fresh, err := s.c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("rechecking deployment before adoption: %w", err)
		}
		if fresh.UID != d.UID || fresh.DeletionTimestamp != nil {
			return nil, fmt.Errorf("deployment %s/%s changed identity or is being deleted; not adopting", d.Namespace, d.Name)
		}
		for _, rs := range cl.Adopt {
			updated, err := rsClient.Update(ctx, Adopted(d, rs), metav1.UpdateOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("adopting replicaset %s: %w", rs.Name, err)
			}
			s.c.remember("replicaset", updated)
			owned = append(owned, updated)
		}
	}
	for _, rs := range cl.Release {
		updated, err := rsClient.Update(ctx, Released(d, rs), metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("releasing replicaset %s: %w", rs.Name, err)
		}
		if err == nil {
			s.c.remember("replicaset", updated)
		}
	}
	return owned, nil
}

// updateStatus writes s.d's status and keeps the result.
func (s *syncer) updateStatus(ctx context.Context) error {
	updated, err := s.c.client.AppsV1().Deployments(s.d.Namespace).UpdateStatus(ctx, s.d, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("updating deployment status: %w", err)
	}
	return s.keep(updated)
}

// keep takes a written Deployment as the sync's current one, unless its
// spec moved on meanwhile (then the sync stops; the change requeues it).
func (s *syncer) keep(updated *appsv1.Deployment) error {
	s.c.remember("deployment", updated)
	if updated.Generation != s.d.Generation {
		return errStale
	}
	s.d = updated.DeepCopy()
	return nil
}

// patchAnnotations sets (or, for nil values, removes) annotations on the
// Deployment. Upstream writes the revision annotation with a status
// update; Drover's API server keeps metadata out of status updates, so it
// is a merge patch of metadata only.
func (s *syncer) patchAnnotations(ctx context.Context, ann map[string]*string) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return err
	}
	updated, err := s.c.client.AppsV1().Deployments(s.d.Namespace).Patch(ctx, s.d.Name, types.MergePatchType, body, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("annotating deployment: %w", err)
	}
	return s.keep(updated)
}

// replicaSets syncs the new ReplicaSet's annotations and minReadySeconds,
// or creates it if create is set and it does not exist, and records the
// revision on the Deployment (upstream's getAllReplicaSetsAndSyncRevision).
func (s *syncer) replicaSets(ctx context.Context, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	d := s.d
	newRS, oldRSs := Split(d, rsList)
	newRevision := MaxRevision(oldRSs) + 1
	rsClient := s.c.client.AppsV1().ReplicaSets(d.Namespace)
	if newRS != nil {
		cp := newRS.DeepCopy()
		changed := SyncNewRSAnnotations(d, cp, newRevision, true)
		if changed || cp.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			cp.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			updated, err := rsClient.Update(ctx, cp, metav1.UpdateOptions{})
			if err != nil {
				return nil, nil, fmt.Errorf("updating new replicaset %s: %w", cp.Name, err)
			}
			s.c.remember("replicaset", updated)
			cp = updated
		}
		if rev := cp.Annotations[RevisionAnnotation]; d.Annotations[RevisionAnnotation] != rev {
			if err := s.patchAnnotations(ctx, map[string]*string{RevisionAnnotation: &rev}); err != nil {
				return nil, nil, err
			}
		}
		if HasProgressDeadline(s.d) && Condition(s.d.Status, appsv1.DeploymentProgressing) == nil {
			SetCondition(&s.d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS,
				fmt.Sprintf("Found new replica set %q", cp.Name), s.now))
			if err := s.updateStatus(ctx); err != nil {
				return nil, nil, err
			}
		}
		return cp, oldRSs, nil
	}
	if !create {
		return nil, oldRSs, nil
	}

	want := NewReplicaSet(d, oldRSs)
	created, err := rsClient.Create(ctx, want, metav1.CreateOptions{})
	existed := false
	switch {
	case apierrors.IsAlreadyExists(err):
		existed = true
		rs, getErr := rsClient.Get(ctx, want.Name, metav1.GetOptions{})
		if getErr != nil {
			return nil, nil, fmt.Errorf("reading existing replicaset %s: %w", want.Name, getErr)
		}
		if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == d.UID && EqualIgnoreHash(&d.Spec.Template, &rs.Spec.Template) {
			created = rs
			break
		}
		// A hash collision: another template has this name. Bump the
		// collision count so the next attempt hashes differently.
		n := int32(0)
		if d.Status.CollisionCount != nil {
			n = *d.Status.CollisionCount
		}
		n++
		s.d.Status.CollisionCount = &n
		if uerr := s.updateStatus(ctx); uerr != nil {
			return nil, nil, uerr
		}
		return nil, nil, fmt.Errorf("replicaset %s exists with another template (hash collision; collisionCount now %d)", want.Name, n)
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", want.Name, err)
		if HasProgressDeadline(d) {
			SetCondition(&s.d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonRSCreateError, msg, s.now))
			_ = s.updateStatus(ctx) // the creation error is the one to report
		}
		s.c.recorder.Event(d, corev1.EventTypeWarning, ReasonRSCreateError, msg)
		return nil, nil, fmt.Errorf("creating replicaset %s: %w", want.Name, err)
	}
	s.c.remember("replicaset", created)
	if !existed && size(created) > 0 {
		s.c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Name, size(created))
	}
	rev := strconv.FormatInt(newRevision, 10)
	if s.d.Annotations[RevisionAnnotation] != rev {
		if err := s.patchAnnotations(ctx, map[string]*string{RevisionAnnotation: &rev}); err != nil {
			return nil, nil, err
		}
	}
	if !existed && HasProgressDeadline(s.d) {
		SetCondition(&s.d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSCreated,
			fmt.Sprintf("Created new replica set %q", created.Name), s.now))
		if err := s.updateStatus(ctx); err != nil {
			return nil, nil, err
		}
	}
	return created, oldRSs, nil
}

// apply carries out scalings on the named ReplicaSets among rss, recording
// a ScalingReplicaSet event for each size change. It returns rss with the
// updated objects.
func (s *syncer) apply(ctx context.Context, rss []*appsv1.ReplicaSet, steps []Scaling) ([]*appsv1.ReplicaSet, error) {
	out := append([]*appsv1.ReplicaSet(nil), rss...)
	for _, st := range steps {
		for i, rs := range out {
			if rs == nil || rs.Name != st.Name {
				continue
			}
			cp := rs.DeepCopy()
			n := st.To
			cp.Spec.Replicas = &n
			setReplicasAnnotations(cp, replicas(s.d), replicas(s.d)+MaxSurge(s.d))
			updated, err := s.c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
			if err != nil {
				return nil, fmt.Errorf("scaling replicaset %s to %d: %w", cp.Name, n, err)
			}
			s.c.remember("replicaset", updated)
			if st.From != st.To {
				s.c.recorder.Event(s.d, corev1.EventTypeNormal, "ScalingReplicaSet", st.String())
				s.c.log.Debug("scaled", "deployment", s.d.Namespace+"/"+s.d.Name, "replicaset", cp.Name, "from", st.From, "to", st.To)
			}
			out[i] = updated
		}
	}
	return out, nil
}

// rolling is one step of a RollingUpdate rollout.
func (s *syncer) rolling(ctx context.Context, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := s.replicaSets(ctx, rsList, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	steps := RollingStep(s.d, newRS, oldRSs)
	all, err = s.apply(ctx, all, steps)
	if err != nil {
		return err
	}
	newRS = all[len(all)-1]
	oldRSs = all[:len(all)-1]
	if len(steps) == 0 && Complete(s.d, &s.d.Status) {
		if err := s.cleanup(ctx, oldRSs); err != nil {
			return err
		}
	}
	return s.rolloutStatus(ctx, all, newRS)
}

// recreate is one step of a Recreate rollout.
func (s *syncer) recreate(ctx context.Context, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := s.replicaSets(ctx, rsList, false)
	if err != nil {
		return err
	}
	running := false
	if len(Active(oldRSs)) == 0 {
		pods, err := s.podsByOwner(rsList)
		if err != nil {
			return err
		}
		newUID := ""
		if newRS != nil {
			newUID = string(newRS.UID)
		}
		running = OldPodsRunning(newUID, oldRSs, pods)
	}
	steps, createNew := RecreateStep(s.d, newRS, oldRSs, running)
	if createNew {
		if newRS, oldRSs, err = s.replicaSets(ctx, rsList, true); err != nil {
			return err
		}
		steps, _ = RecreateStep(s.d, newRS, oldRSs, false)
	}
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	if all, err = s.apply(ctx, all, steps); err != nil {
		return err
	}
	newRS = all[len(all)-1]
	if newRS != nil && Complete(s.d, &s.d.Status) {
		if err := s.cleanup(ctx, all[:len(all)-1]); err != nil {
			return err
		}
	}
	return s.rolloutStatus(ctx, all, newRS)
}

// podsByOwner groups the Deployment's pods by their controlling
// ReplicaSet's UID.
func (s *syncer) podsByOwner(rsList []*appsv1.ReplicaSet) (map[string][]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(s.d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := s.c.podLister.Pods(s.d.Namespace).List(sel)
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	ours := map[types.UID]bool{}
	for _, rs := range rsList {
		ours[rs.UID] = true
	}
	out := map[string][]*corev1.Pod{}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref != nil && ours[ref.UID] {
			out[string(ref.UID)] = append(out[string(ref.UID)], p)
		}
	}
	return out, nil
}

// scaleOnly handles a paused Deployment, a held template or a resize:
// ReplicaSets are sized, nothing rolls; a paused one is also cleaned up.
func (s *syncer) scaleOnly(ctx context.Context, rsList []*appsv1.ReplicaSet, cleanup bool) error {
	newRS, oldRSs, err := s.replicaSets(ctx, rsList, false)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	if all, err = s.apply(ctx, all, ScaleStep(s.d, newRS, oldRSs)); err != nil {
		return err
	}
	newRS = all[len(all)-1]
	if cleanup {
		if err := s.cleanup(ctx, all[:len(all)-1]); err != nil {
			return err
		}
	}
	st := CalculateStatus(s.d, all, newRS, s.now)
	return s.writeStatus(ctx, st, newRS)
}

func (s *syncer) syncStatusOnly(ctx context.Context, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs := Split(s.d, rsList)
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	return s.writeStatus(ctx, CalculateStatus(s.d, all, newRS, s.now), newRS)
}

// rolloutStatus writes the status with the Progressing condition and
// schedules the deadline re-check.
func (s *syncer) rolloutStatus(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	st := RolloutStatus(s.d, all, newRS, s.now)
	return s.writeStatus(ctx, st, newRS)
}

// writeStatus records the last good revision when st completes the
// rollout, writes st if it differs, and otherwise schedules the progress
// deadline re-check.
func (s *syncer) writeStatus(ctx context.Context, st appsv1.DeploymentStatus, newRS *appsv1.ReplicaSet) error {
	if rev, ok := LastGoodUpdate(s.d, newRS, &st); ok {
		if err := s.patchAnnotations(ctx, map[string]*string{LastGoodRevisionAnnotation: &rev}); err != nil {
			return err
		}
	}
	if apiequality.Semantic.DeepEqual(s.d.Status, st) {
		if after := RecheckAfter(s.d, &st, s.now.Time); after >= 0 {
			key := s.d.Namespace + "/" + s.d.Name
			if after == 0 {
				s.c.queue.AddRateLimited(key)
			} else {
				s.c.queue.AddAfter(key, after)
			}
		}
		return nil
	}
	s.d.Status = st
	return s.updateStatus(ctx)
}

// cleanup deletes old empty ReplicaSets beyond revisionHistoryLimit.
func (s *syncer) cleanup(ctx context.Context, oldRSs []*appsv1.ReplicaSet) error {
	var live []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs != nil {
			live = append(live, rs)
		}
	}
	for _, rs := range ToDelete(s.d, live) {
		err := s.c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &rs.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting old replicaset %s: %w", rs.Name, err)
		}
	}
	return nil
}

// rollback carries out an automatic rollback.
func (s *syncer) rollback(ctx context.Context, dec RollbackDecision) error {
	next := RolledBack(s.d, dec, s.now)
	updated, err := s.c.client.AppsV1().Deployments(s.d.Namespace).Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("rolling back deployment template: %w", err)
	}
	s.c.remember("deployment", updated)
	updated.Status = next.Status
	st, err := s.c.client.AppsV1().Deployments(s.d.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("recording automatic rollback: %w", err)
	}
	s.c.remember("deployment", st)
	s.c.recorder.Event(s.d, corev1.EventTypeWarning, ReasonAutoRollback, dec.Message)
	s.c.log.Info("automatic rollback", "deployment", s.d.Namespace+"/"+s.d.Name, "failedRevision", dec.FailedRevision,
		"failedHash", dec.FailedHash, "to", dec.Target.Name)
	return nil
}

// setHoldCondition records that the failed template is held.
func (s *syncer) setHoldCondition(ctx context.Context, dec RollbackDecision) error {
	c := Condition(s.d.Status, ConditionAutoRollback)
	if c != nil && c.Reason == ReasonFailedTemplateHeld && c.Message == dec.Message {
		return nil
	}
	RemoveCondition(&s.d.Status, ConditionAutoRollback)
	SetCondition(&s.d.Status, NewCondition(ConditionAutoRollback, corev1.ConditionTrue, ReasonFailedTemplateHeld, dec.Message, s.now))
	s.c.recorder.Event(s.d, corev1.EventTypeWarning, ReasonFailedTemplateHeld, dec.Message)
	return s.updateStatus(ctx)
}
