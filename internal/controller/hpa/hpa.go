// Package hpa is the Horizontal Pod Autoscaler controller for
// autoscaling/v2 (v1 objects are the same objects, stored as v2).
//
// Every SyncPeriod each HPA is reconciled as upstream's controller does:
// read the target's scale subresource, list the pods its selector
// selects, read their resource metrics (metrics.k8s.io, through the API
// server), and let Decide compute the replica count, stabilized and
// rate-limited by the HPA's behavior; then write the scale, the status
// and events. The arithmetic lives in pure functions (UtilizationReplicas,
// AverageValueReplicas, Decide) tested with tables; Run is the loop.
//
// Drover's defaults are quicker than upstream's, all configurable: a 5s
// sync period (upstream 15s), a 1 minute default scale-down stabilization
// (5 minutes), a 1 minute CPU initialization period (5 minutes) and a 10s
// initial readiness delay (30s). Scale-ups are as fast as upstream allows
// per behavior (none in the way by default); scale-downs still wait out
// every recommendation of the window, so load that comes and goes does
// not flap the replica count.
package hpa

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
)

// Defaults of Options.
const (
	DefaultSyncPeriod              = 5 * time.Second
	DefaultTolerance               = 0.1
	DefaultDownscaleStabilization  = time.Minute
	DefaultCPUInitializationPeriod = time.Minute
	DefaultInitialReadinessDelay   = 10 * time.Second
	DefaultWorkers                 = 5
)

// ControllerName is the source of the controller's events, as upstream.
const ControllerName = "horizontal-pod-autoscaler"

// Options tune the controller; zero values mean the defaults.
type Options struct {
	// SyncPeriod is how often each HPA is reconciled.
	SyncPeriod time.Duration
	// Tolerance is the usage ratio's dead band around 1.0.
	Tolerance float64
	// DownscaleStabilization is the scale-down stabilization window for
	// HPAs that do not set one.
	DownscaleStabilization time.Duration
	// CPUInitializationPeriod and InitialReadinessDelay judge the CPU of
	// pods that just started (see Readiness).
	CPUInitializationPeriod time.Duration
	InitialReadinessDelay   time.Duration
	// Workers is how many HPAs are reconciled at once.
	Workers int
	// Metrics reads pods' resource metrics; default the metrics.k8s.io
	// API through the API server at cfg (NewAPIMetrics).
	Metrics MetricsSource
	// Resync is the informers' resync period; default 10 minutes.
	Resync time.Duration
	// Informers, if set, is a factory shared with other controllers: Run
	// registers its informers and handlers on it, then calls its Start
	// once, and leaves shutting it down to its owner. If nil, Run makes,
	// starts and stops its own.
	Informers informers.SharedInformerFactory
}

// MetricsSource reads the resource metrics of the pods that selector
// selects in namespace.
type MetricsSource interface {
	PodMetrics(ctx context.Context, namespace string, selector labels.Selector) ([]metricsv1beta1.PodMetrics, error)
}

// apiMetrics reads metrics.k8s.io/v1beta1 PodMetrics with a REST client,
// as upstream's resource metrics client.
type apiMetrics struct{ c metricsclient.Interface }

// NewAPIMetrics is a MetricsSource reading the metrics.k8s.io API at cfg.
func NewAPIMetrics(cfg *rest.Config) (MetricsSource, error) {
	c, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("hpa: metrics client: %w", err)
	}
	return apiMetrics{c}, nil
}

func (m apiMetrics) PodMetrics(ctx context.Context, namespace string, selector labels.Selector) ([]metricsv1beta1.PodMetrics, error) {
	list, err := m.c.MetricsV1beta1().PodMetricses(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, fmt.Errorf("unable to fetch metrics from resource metrics API: %w", err)
	}
	return list.Items, nil
}

func (o *Options) setDefaults(cfg *rest.Config) error {
	if o.SyncPeriod <= 0 {
		o.SyncPeriod = DefaultSyncPeriod
	}
	if o.Tolerance <= 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.DownscaleStabilization <= 0 {
		o.DownscaleStabilization = DefaultDownscaleStabilization
	}
	if o.CPUInitializationPeriod <= 0 {
		o.CPUInitializationPeriod = DefaultCPUInitializationPeriod
	}
	if o.InitialReadinessDelay <= 0 {
		o.InitialReadinessDelay = DefaultInitialReadinessDelay
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Resync <= 0 {
		o.Resync = 10 * time.Minute
	}
	if o.Metrics == nil {
		m, err := NewAPIMetrics(cfg)
		if err != nil {
			return err
		}
		o.Metrics = m
	}
	return nil
}

// Run runs the controller until ctx is done, then returns nil. It returns
// an error only if it cannot start. client watches HPAs and pods and
// writes status and events; cfg reaches the scale subresources (and the
// metrics API unless opts.Metrics is set).
func Run(ctx context.Context, client kubernetes.Interface, cfg *rest.Config, logger *slog.Logger, opts Options) error {
	if logger == nil {
		logger = slog.Default()
	}
	// client-go's scale.NewForConfig sets fields of the config it is given:
	// not of the caller's, which other components share.
	cfg = rest.CopyConfig(cfg)
	if err := opts.setDefaults(cfg); err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(client.Discovery()))
	if err != nil {
		return fmt.Errorf("hpa: scale client: %w", err)
	}
	c := &controller{
		client: client,
		scales: scales,
		mapper: mapper,
		opts:   opts,
		log:    logger.With("controller", "hpa"),
		tuning: Tuning{
			Tolerance:              opts.Tolerance,
			DownscaleStabilization: opts.DownscaleStabilization,
			Readiness:              Readiness{CPUInitializationPeriod: opts.CPUInitializationPeriod, InitialReadinessDelay: opts.InitialReadinessDelay},
		},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, opts.SyncPeriod),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "hpa"}),
		state:     map[string]*hpaState{},
		selectors: map[string]labels.Selector{},
		now:       time.Now,
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown() // after the workers stop, so their events are sent
	c.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: ControllerName})

	factory, own := opts.Informers, opts.Informers == nil
	if own {
		factory = informers.NewSharedInformerFactory(client, opts.Resync)
	}
	hpaInf, podInf := factory.Autoscaling().V2().HorizontalPodAutoscalers(), factory.Core().V1().Pods()
	c.hpas, c.pods = hpaInf.Lister(), podInf.Lister()
	if _, err := hpaInf.Informer().AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			// Status writes and resyncs wait for the next period; a
			// changed spec is reconciled at once.
			if old.(*autoscalingv2.HorizontalPodAutoscaler).Generation != cur.(*autoscalingv2.HorizontalPodAutoscaler).Generation {
				c.enqueue(cur)
			}
		},
		DeleteFunc: c.enqueue,
	}, opts.Resync); err != nil {
		return fmt.Errorf("hpa: watching HPAs: %w", err)
	}
	factory.Start(ctx.Done())
	if own {
		defer factory.Shutdown()
	}
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), hpaInf.Informer().HasSynced, podInf.Informer().HasSynced) {
		return nil
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
	client   kubernetes.Interface
	scales   scale.ScalesGetter
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	opts     Options
	tuning   Tuning
	log      *slog.Logger
	recorder record.EventRecorder
	hpas     autoscalinglisters.HorizontalPodAutoscalerLister
	pods     corelisters.PodLister
	queue    workqueue.TypedRateLimitingInterface[string]
	now      func() time.Time

	mu        sync.Mutex
	state     map[string]*hpaState
	selectors map[string]labels.Selector // of each HPA's target, by HPA key
}

// hpaState is what the controller keeps per HPA between syncs.
type hpaState struct {
	hist       History
	due        time.Time // of the periodic sync scheduled last
	generation int64     // synced last
}

func (c *controller) enqueue(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *controller) stateFor(key string) *hpaState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state[key]
	if s == nil {
		s = &hpaState{}
		c.state[key] = s
	}
	return s
}

func (c *controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil && ctx.Err() == nil {
		c.log.Warn("reconciling HPA", "hpa", key, "err", err)
	}
	c.queue.Forget(key)
	return true
}

// sync reconciles one HPA and schedules its next periodic sync. A
// periodic sync made redundant by an earlier one (after a spec change)
// is dropped, so each HPA keeps exactly one periodic schedule.
func (c *controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	h, err := c.hpas.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.state, key)
		delete(c.selectors, key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	st := c.stateFor(key)
	now := c.now()
	if h.Generation == st.generation && !st.due.IsZero() && now.Before(st.due.Add(-c.opts.SyncPeriod/2)) {
		return nil // a stale periodic sync: a newer one is scheduled
	}
	st.generation, st.due = h.Generation, now.Add(c.opts.SyncPeriod)
	c.queue.AddAfter(key, c.opts.SyncPeriod)
	return c.reconcile(ctx, h.DeepCopy(), st, now)
}

func (c *controller) event(h *autoscalingv2.HorizontalPodAutoscaler, e Event) {
	c.recorder.Event(h, e.Type, e.Reason, e.Message)
}

// reconcile is one pass of upstream's reconcileAutoscaler around Decide.
func (c *controller) reconcile(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler, st *hpaState, now time.Time) error {
	old := h.Status.DeepCopy()
	ref := h.Spec.ScaleTargetRef
	sc, gr, err := c.getScale(ctx, h)
	if err != nil {
		status, ev := ScaleUnavailable(h, err, now)
		c.event(h, ev)
		return c.writeStatus(ctx, h, old, status, fmt.Errorf("getting the scale of %s %s/%s: %w", ref.Kind, h.Namespace, ref.Name, err))
	}
	in := Input{
		HPA:    h,
		Scale:  Scale{SpecReplicas: sc.Spec.Replicas, StatusReplicas: sc.Status.Replicas, Selector: sc.Status.Selector},
		Now:    now,
		Tuning: c.tuning,
	}
	if sel, err := labels.Parse(sc.Status.Selector); err == nil && sc.Status.Selector != "" {
		if in.Pods, err = c.pods.Pods(h.Namespace).List(sel); err != nil {
			return err
		}
		key := h.Namespace + "/" + h.Name
		c.mu.Lock()
		c.selectors[key] = sel
		in.SelectingHPAs = SelectingHPAs(h.Namespace, in.Pods, c.selectors)
		c.mu.Unlock()
		if needsResourceMetrics(h) {
			in.PodMetrics, in.MetricsErr = c.opts.Metrics.PodMetrics(ctx, h.Namespace, sel)
		}
	}
	d := Decide(in, &st.hist)
	for _, e := range d.Events {
		c.event(h, e)
	}
	status := d.Status
	if d.Rescale {
		sc.Spec.Replicas = d.Desired
		if _, err := c.scales.Scales(h.Namespace).Update(ctx, gr, sc, metav1.UpdateOptions{}); err != nil {
			var ev Event
			status, ev = d.RescaleFailed(*old, in.Scale.SpecReplicas, err, now)
			c.event(h, ev)
			return c.writeStatus(ctx, h, old, status, fmt.Errorf("rescaling %s %s/%s: %w", ref.Kind, h.Namespace, ref.Name, err))
		}
		c.event(h, d.Rescaled(h, &st.hist, in.Scale.SpecReplicas, now))
		c.log.Info("rescaled", "hpa", h.Namespace+"/"+h.Name, "from", in.Scale.SpecReplicas, "to", d.Desired, "reason", d.Reason)
	}
	return c.writeStatus(ctx, h, old, status, d.Err)
}

// writeStatus writes status if it changed, and returns cause (or the
// write's error).
func (c *controller) writeStatus(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler, old *autoscalingv2.HorizontalPodAutoscalerStatus, status autoscalingv2.HorizontalPodAutoscalerStatus, cause error) error {
	if apiequality.Semantic.DeepEqual(old, &status) {
		return cause
	}
	h.Status = status
	if _, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(h.Namespace).UpdateStatus(ctx, h, metav1.UpdateOptions{}); err != nil {
		c.event(h, Event{corev1.EventTypeWarning, "FailedUpdateStatus", err.Error()})
		return fmt.Errorf("updating status of HPA %s/%s: %w", h.Namespace, h.Name, err)
	}
	return cause
}

// getScale reads the target's scale subresource, trying each resource
// its kind maps to, as upstream.
func (c *controller) getScale(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.Scale, schema.GroupResource, error) {
	ref := h.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, schema.GroupResource{}, fmt.Errorf("invalid API version in scale target reference: %w", err)
	}
	mappings, err := c.mapper.RESTMappings(schema.GroupKind{Group: gv.Group, Kind: ref.Kind})
	if err != nil {
		c.mapper.Reset() // perhaps a kind added since discovery was read
		return nil, schema.GroupResource{}, fmt.Errorf("unable to determine resource for scale target reference: %w", err)
	}
	var firstErr error
	for _, m := range mappings {
		gr := m.Resource.GroupResource()
		sc, err := c.scales.Scales(h.Namespace).Get(ctx, gr, ref.Name, metav1.GetOptions{})
		if err == nil {
			return sc, gr, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("unrecognized resource")
	}
	return nil, schema.GroupResource{}, firstErr
}

func needsResourceMetrics(h *autoscalingv2.HorizontalPodAutoscaler) bool {
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType || m.Type == autoscalingv2.ContainerResourceMetricSourceType {
			return true
		}
	}
	return false
}

// SelectingHPAs are the keys (namespace/name, sorted) of the HPAs in
// namespace whose target selectors select any of pods.
func SelectingHPAs(namespace string, pods []*corev1.Pod, selectors map[string]labels.Selector) []string {
	var keys []string
	for key, sel := range selectors {
		if !strings.HasPrefix(key, namespace+"/") {
			continue
		}
		for _, p := range pods {
			if sel.Matches(labels.Set(p.Labels)) {
				keys = append(keys, key)
				break
			}
		}
	}
	sort.Strings(keys)
	return keys
}
