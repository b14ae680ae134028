package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/drover/drover/internal/events"
	"github.com/drover/drover/internal/metrics"
)

// Defaults for Options.
const (
	DefaultSchedulerName  = corev1.DefaultSchedulerName // "default-scheduler"
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 10 * time.Second
	DefaultBindWorkers    = 16
)

// eventWorkers is how many events the scheduler posts at once (each pod's
// on one worker, in order).
const eventWorkers = 8

// Event reasons and the PodScheduled condition reason, upstream's.
const (
	EventReasonScheduled         = "Scheduled"
	EventReasonFailedScheduling  = "FailedScheduling"
	ConditionReasonUnschedulable = corev1.PodReasonUnschedulable   // "Unschedulable"
	ConditionReasonGated         = corev1.PodReasonSchedulingGated // "SchedulingGated"
	// MessageGated is upstream's message for a pod with scheduling gates.
	MessageGated = "Scheduling is blocked due to non-empty scheduling gates"
)

// Options configure Run. The zero value is upstream's behaviour.
type Options struct {
	// SchedulerName: the scheduler takes the pods whose spec.schedulerName
	// is this (DefaultSchedulerName if empty); it is also the events'
	// source component.
	SchedulerName string
	// InitialBackoff and MaxBackoff bound the wait before a pod that failed
	// is tried again: InitialBackoff, doubling per attempt, at most
	// MaxBackoff (defaults 1s and 10s, as upstream).
	InitialBackoff, MaxBackoff time.Duration
	// BindWorkers is the number of bindings (and status updates) in flight
	// at once; placement itself is serial. Default DefaultBindWorkers.
	BindWorkers int
	// PercentageOfNodesToScore: see Config (0: upstream's adaptive default).
	PercentageOfNodesToScore int
	// Informers, if set, is a factory shared with other controllers: Run
	// registers its node and pod informers on it, then calls its Start
	// once, and leaves shutting it down to its owner. If nil, Run makes,
	// starts and stops its own.
	Informers informers.SharedInformerFactory
}

func (o *Options) defaults() {
	if o.SchedulerName == "" {
		o.SchedulerName = DefaultSchedulerName
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = DefaultInitialBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
	if o.BindWorkers <= 0 {
		o.BindWorkers = DefaultBindWorkers
	}
}

// Run schedules pods until ctx is done, then returns nil; it returns an
// error only if it cannot start. It watches nodes and pods, takes the pods
// with no spec.nodeName whose spec.schedulerName is opts.SchedulerName and
// that are not being deleted, places each on a node (Schedule over a Cache
// of the nodes and of the pods placed on them, including the ones it has
// bound but not yet seen bound) and binds it through pods/binding, with
// opts.BindWorkers bindings in flight. A pod that fits nowhere gets the
// PodScheduled=False condition (reason Unschedulable, upstream's message)
// and a FailedScheduling event, and waits in the queue until a node is
// added or changed or a placed pod goes, after a backoff.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger, opts Options) error {
	opts.defaults()
	if logger == nil {
		logger = slog.Default()
	}
	s := &scheduler{
		client: client,
		opts:   opts,
		log:    logger.With("component", "scheduler"),
		cache: NewCache(Config{
			PercentageOfNodesToScore: opts.PercentageOfNodesToScore,
			Rand:                     rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)),
		}),
		queue: NewQueue(opts.InitialBackoff, opts.MaxBackoff, nil),
		tasks: make(chan func(), opts.BindWorkers*4),
	}

	// Not tied to ctx: events queued when ctx ends still go out while the
	// loops stop; Shutdown (deferred), then the sink's end, drop the rest.
	// The sink posts from several workers: one at a time, a Scheduled
	// event per bind fell behind a few hundred binds a second and the
	// broadcaster dropped a quarter of them.
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	sink := events.NewAsyncSink(sinkCtx, events.NewPoster(sinkCtx, client.CoreV1()), eventWorkers, s.log)
	defer sink.Wait() // its workers end with Run
	defer stopSink()
	broadcaster := record.NewBroadcaster()
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(sink)
	s.recorder = events.NewRecorder(broadcaster, scheme.Scheme, corev1.EventSource{Component: opts.SchedulerName})

	factory, own := opts.Informers, opts.Informers == nil
	if own {
		factory = informers.NewSharedInformerFactory(client, 0)
	}
	nodes := factory.Core().V1().Nodes().Informer()
	pods := factory.Core().V1().Pods().Informer()
	if _, err := nodes.AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.nodeChanged(nil, obj) },
		UpdateFunc: s.nodeChanged,
		DeleteFunc: s.nodeDeleted,
	}, 0); err != nil {
		return fmt.Errorf("scheduler: watching nodes: %w", err)
	}
	if _, err := pods.AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.podChanged,
		UpdateFunc: func(_, obj any) { s.podChanged(obj) },
		DeleteFunc: s.podDeleted,
	}, 0); err != nil {
		return fmt.Errorf("scheduler: watching pods: %w", err)
	}
	factory.Start(ctx.Done())
	if own {
		defer factory.Shutdown()
	}
	defer s.queue.Close()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.HasSynced, pods.HasSynced) {
		return nil // ctx done before the caches synced
	}
	s.log.Info("scheduler started", "schedulerName", opts.SchedulerName, "bindWorkers", opts.BindWorkers)

	var wg sync.WaitGroup
	wg.Go(func() { s.queue.Run(ctx.Done(), time.Second) })
	for range opts.BindWorkers {
		wg.Go(func() {
			for task := range s.tasks {
				task()
			}
		})
	}
	wg.Go(func() {
		<-ctx.Done()
		s.queue.Close()
	})
	for s.scheduleOne(ctx) {
	}
	close(s.tasks)
	wg.Wait()
	return nil
}

type scheduler struct {
	client   kubernetes.Interface
	opts     Options
	log      *slog.Logger
	recorder record.EventRecorder
	queue    *Queue
	tasks    chan func()

	mu    sync.Mutex // guards cache
	cache *Cache
}

// scheduleOne places the next pod and hands its binding (or its failure
// report) to the workers; false when the queue is closed.
func (s *scheduler) scheduleOne(ctx context.Context) bool {
	qp, ok := s.queue.Pop()
	if !ok {
		return false
	}
	pod := qp.Pod
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
		s.queue.Done(qp.Key)
		return true
	}
	if len(pod.Spec.SchedulingGates) > 0 {
		// Waits out of the queue until an update removes its gates.
		s.tasks <- func() {
			defer s.queue.Done(qp.Key)
			s.setCondition(ctx, qp, corev1.PodCondition{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: ConditionReasonGated, Message: MessageGated,
			})
		}
		return true
	}
	start := time.Now()
	s.mu.Lock()
	node, err := s.cache.Schedule(pod)
	if err == nil {
		err = s.cache.Assume(pod, node)
	}
	s.mu.Unlock()
	var fit *FitError
	switch {
	case err == nil:
		metrics.ObserveSchedulingAttempt(metrics.ResultScheduled, time.Since(start))
		s.tasks <- func() { s.bind(ctx, qp, node) }
	case errors.As(err, &fit), errors.Is(err, ErrNoNodesAvailable):
		metrics.ObserveSchedulingAttempt(metrics.ResultUnschedulable, time.Since(start))
		s.tasks <- func() { s.unschedulable(ctx, qp, err.Error()) }
	default: // already placed: the watch will tell
		s.log.Debug("pod already placed", "pod", qp.Key, "err", err)
		s.queue.Done(qp.Key)
	}
	return true
}

// bind binds an assumed pod; on failure the assumption is forgotten.
func (s *scheduler) bind(ctx context.Context, qp *QueuedPod, node string) {
	pod := qp.Pod
	err := bindPod(ctx, s.client, pod, node)
	if err == nil {
		s.log.Debug("bound", "pod", qp.Key, "node", node)
		s.recorder.Eventf(pod, corev1.EventTypeNormal, EventReasonScheduled, "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node)
		s.queue.Done(qp.Key)
		return
	}
	s.mu.Lock()
	s.cache.Forget(pod)
	s.mu.Unlock()
	s.queue.MoveAll() // what it held is free again
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) || ctx.Err() != nil {
		// Bound by someone else, deleted, or being deleted: the watch says
		// what became of it.
		s.log.Debug("binding refused", "pod", qp.Key, "node", node, "err", err)
		s.queue.Done(qp.Key)
		return
	}
	s.log.Warn("binding failed, retrying", "pod", qp.Key, "node", node, "err", err)
	s.recorder.Eventf(pod, corev1.EventTypeWarning, EventReasonFailedScheduling, "Binding rejected: %v", err)
	s.queue.Requeue(qp, false)
}

// unschedulable reports that a pod fits nowhere (event, PodScheduled
// condition) and puts it back to wait.
func (s *scheduler) unschedulable(ctx context.Context, qp *QueuedPod, msg string) {
	defer s.queue.Requeue(qp, true)
	s.log.Debug("unschedulable", "pod", qp.Key, "reason", msg)
	s.recorder.Event(qp.Pod, corev1.EventTypeWarning, EventReasonFailedScheduling, msg)
	s.setCondition(ctx, qp, corev1.PodCondition{
		Type:    corev1.PodScheduled,
		Status:  corev1.ConditionFalse,
		Reason:  ConditionReasonUnschedulable,
		Message: msg,
	})
}

// setCondition sets a condition on an unbound pod's status unless it is
// there already, retrying on conflicts while the pod stays unbound.
func (s *scheduler) setCondition(ctx context.Context, qp *QueuedPod, cond corev1.PodCondition) {
	pod := qp.Pod
	for range 3 {
		next, changed := WithCondition(pod, cond, metav1.Now())
		if !changed {
			return
		}
		_, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		if !apierrors.IsConflict(err) {
			s.log.Warn("setting the PodScheduled condition failed", "pod", qp.Key, "reason", cond.Reason, "err", err)
			return
		}
		pod, err = s.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || pod.UID != qp.Pod.UID || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
			return
		}
	}
}

// WithCondition returns a copy of pod with condition c set, keeping the
// last transition time if the status does not change, and whether
// anything changed (type, status, reason, message), as upstream's
// UpdatePodCondition.
func WithCondition(pod *corev1.Pod, c corev1.PodCondition, now metav1.Time) (*corev1.Pod, bool) {
	c.LastTransitionTime = now
	for i, old := range pod.Status.Conditions {
		if old.Type != c.Type {
			continue
		}
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return pod, false
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		out := pod.DeepCopy()
		out.Status.Conditions[i] = c
		return out, true
	}
	out := pod.DeepCopy()
	out.Status.Conditions = append(out.Status.Conditions, c)
	return out, true
}

func (s *scheduler) nodeChanged(oldObj, obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	s.mu.Lock()
	s.cache.SetNode(n)
	s.mu.Unlock()
	old, _ := oldObj.(*corev1.Node)
	if old == nil || NodeChangeMayHelp(old, n) {
		s.queue.MoveAll()
	}
}

func (s *scheduler) nodeDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if n, ok := obj.(*corev1.Node); ok {
		s.mu.Lock()
		s.cache.RemoveNode(n.Name)
		s.mu.Unlock()
	}
}

// NodeChangeMayHelp reports whether a node update changed what the filters
// look at: allocatable, labels, taints, cordon, readiness.
func NodeChangeMayHelp(old, n *corev1.Node) bool {
	return !equality.Semantic.DeepEqual(old.Status.Allocatable, n.Status.Allocatable) ||
		!equality.Semantic.DeepEqual(old.Labels, n.Labels) ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, n.Spec.Taints) ||
		old.Spec.Unschedulable != n.Spec.Unschedulable ||
		readyStatus(old) != readyStatus(n)
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func (s *scheduler) podChanged(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := podKey(pod)
	if pod.Spec.NodeName != "" {
		terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
		s.mu.Lock()
		freed := terminal && s.cache.pods[pod.UID] != nil
		s.cache.AddPod(pod)
		s.mu.Unlock()
		s.queue.Delete(key)
		if freed {
			s.queue.MoveAll()
		}
		return
	}
	if pod.Spec.SchedulerName == s.opts.SchedulerName && pod.DeletionTimestamp == nil &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		s.queue.Add(key, pod)
		return
	}
	s.queue.Delete(key)
}

func (s *scheduler) podDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	s.queue.Delete(podKey(pod))
	s.mu.Lock()
	placed := s.cache.pods[pod.UID] != nil
	s.cache.RemovePod(pod)
	s.mu.Unlock()
	if placed {
		s.queue.MoveAll()
	}
}
