package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/drover/drover/internal/dns"
	"github.com/drover/drover/internal/metrics"
	"github.com/drover/drover/internal/runtime"
)

// managedBy is the value of runtime.LabelManagedBy on everything the agent
// creates.
const managedBy = "drover"

// errVolumes marks a failure to set up a pod's volumes.
var errVolumes = errors.New("volumes")

// logDirectoryMaker is implemented by runtimes that make a sandbox's log
// directory themselves (sim, which writes a log only once it is read); the
// agent makes it for the others before running the sandbox.
type logDirectoryMaker interface {
	MakesLogDirectory() bool
}

// changeForecaster is implemented by runtimes whose containers change by
// themselves only as scripted (sim): NextChange is when a running
// container will next change state by itself, zero if it will not. The
// agent looks at the pod then, rather than waiting for its resync.
type changeForecaster interface {
	NextChange(id runtime.ContainerID) time.Time
}

// defaultGrace is the termination grace period when a pod names none.
const defaultGrace = 30 * time.Second

// podManager runs the pods bound to the node: a work queue of pod keys
// (namespace/name), each synced by one worker at a time against the
// runtime, and requeued when its next probe, restart or resync is due.
type podManager struct {
	a       *agent
	rt      runtime.Runtime
	backoff Backoff
	prober  *prober
	lister  corelisters.PodLister
	// synced is set once lister is set and synced: readers on other
	// goroutines (the stats endpoint) check it first.
	synced atomic.Bool
	queue  workqueue.TypedRateLimitingInterface[string]

	mu     sync.Mutex
	states map[string]*podState
	terms  sync.WaitGroup // terminations in flight
}

// podState is what the agent remembers about a pod between syncs; all of
// it can be lost (agent restart) without harm.
type podState struct {
	uid         types.UID
	uidLabels   map[string]string // uidLabels(uid), which the runtime lists by
	seen        time.Time         // first sync, for the pod start metric
	probes      map[probeKey]ProbeState
	backoff     map[string]BackoffEntry
	volumes     map[string]string
	terminating bool
	written     *corev1.PodStatus
	writtenEnc  []byte // written in protobuf, as sameStatus compares
	// writtenRV is the resourceVersion the server returned for the
	// agent's last status write: the informer's copy may not have caught
	// up with it yet, and writing from the older one would conflict.
	writtenRV string
	// syncedRV is the resourceVersion of the pod as the last sync left it
	// (its status write's, if it wrote) and nextSync when that sync asked
	// to look again: a sync of the same pod before then has nothing to do.
	syncedRV string
	nextSync time.Time
	// echoRV is writtenRV for ownWrite, which runs on the informer's
	// goroutine: guarded by podManager.mu.
	echoRV string
	// lastBackoffEvent is the exit a BackOff event was sent for.
	lastBackoffEvent BackoffEntry
}

type probeKey struct {
	container string
	kind      ProbeKind
}

func newPodManager(a *agent) *podManager {
	queueName := "pods"
	if a.cfg.NoQueueMetrics {
		queueName = "" // a queue without a name has no metrics
	}
	return &podManager{
		a:       a,
		rt:      a.cfg.Runtime,
		backoff: Backoff{Base: a.cfg.BackoffBase, Cap: a.cfg.BackoffCap, Reset: a.cfg.BackoffReset},
		prober:  newProber(a.cfg.Runtime),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: queueName}),
		states: map[string]*podState{},
	}
}

// run watches the node's pods and syncs them until ctx ends.
func (m *podManager) run(ctx context.Context) error {
	defer m.queue.ShutDown()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			m.queue.Add(key)
		}
	}
	base := cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(_, obj any) {
			if !m.ownWrite(obj) {
				enqueue(obj)
			}
		},
		DeleteFunc: enqueue,
	}
	var handler cache.ResourceEventHandler = base
	var informer cache.SharedIndexInformer
	if src := m.a.cfg.Pods; src != nil {
		informer, m.lister = src.Informer, src.Lister
		handler = cache.FilteringResourceEventHandler{FilterFunc: m.onNode, Handler: handler}
	} else {
		selector := fields.OneTermEqualSelector("spec.nodeName", m.a.cfg.NodeName).String()
		factory := informers.NewSharedInformerFactoryWithOptions(m.a.cfg.Client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
		inf := factory.Core().V1().Pods()
		informer, m.lister = inf.Informer(), inf.Lister()
		factory.Start(ctx.Done())
		defer factory.Shutdown()
	}
	hasSynced := informer.HasSynced
	if src := m.a.cfg.Pods; src != nil && src.Subscribe != nil {
		// The fleet's dispatcher calls the unfiltered handler with this
		// node's pods only.
		defer src.Subscribe(m.a.cfg.NodeName, base)()
	} else {
		reg, err := informer.AddEventHandler(handler)
		if err != nil {
			return fmt.Errorf("watching pods: %w", err)
		}
		defer informer.RemoveEventHandler(reg)
		hasSynced = reg.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), hasSynced) {
		return nil // ctx ended
	}
	m.synced.Store(true)
	m.cleanupOrphans(ctx)

	var wg sync.WaitGroup
	for range m.a.cfg.Workers {
		wg.Go(func() {
			for m.work(ctx) {
			}
		})
	}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			m.cleanupOrphans(ctx)
		}
	}
	m.queue.ShutDown()
	wg.Wait()
	m.terms.Wait()
	return nil
}

// onNode tells whether obj (a pod or its tombstone) is bound to this node.
func (m *podManager) onNode(obj any) bool {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	return ok && p.Spec.NodeName == m.a.cfg.NodeName
}

// ownWrite tells whether obj is the pod as the agent's last status write
// left it: the watch's echo of that write, which holds nothing the agent
// did not know when it wrote, so syncing it again would find nothing to do.
// Any other change to the pod comes with a resourceVersion of its own.
func (m *podManager) ownWrite(obj any) bool {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.DeletionTimestamp != nil {
		return false
	}
	key, err := cache.MetaNamespaceKeyFunc(p)
	if err != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.states[key]
	return st != nil && st.uid == p.UID && st.echoRV != "" && st.echoRV == p.ResourceVersion
}

// work syncs one pod key; false once the queue is shut down.
func (m *podManager) work(ctx context.Context) bool {
	key, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(key)
	after, err := m.sync(ctx, key)
	if ctx.Err() != nil {
		return true
	}
	if err != nil {
		m.a.log.Warn("pod sync failed", "pod", key, "err", err)
		m.queue.AddRateLimited(key)
		return true
	}
	m.queue.Forget(key)
	if m.a.cfg.requeued != nil {
		m.a.cfg.requeued(key, after)
	}
	if after > 0 {
		m.queue.AddAfter(key, after)
	}
	return true
}

func (m *podManager) state(key string) *podState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.states[key]
}

// sync brings one pod's runtime state toward its spec and reports its
// status; it returns when to look at the pod again.
func (m *podManager) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := m.lister.Pods(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	m.mu.Lock()
	st := m.states[key]
	if st != nil && (pod == nil || st.uid != pod.UID) {
		// Gone from the API (or replaced by a pod of the same name):
		// remove what ran for it, unless a termination is doing that.
		if !st.terminating {
			delete(m.states, key)
			m.mu.Unlock()
			if err := m.killPod(ctx, st.uid, 0); err != nil {
				return 0, err
			}
			m.mu.Lock()
		}
		st = nil
	}
	if pod == nil {
		m.mu.Unlock()
		return 0, nil
	}
	if st == nil {
		st = &podState{uid: pod.UID, uidLabels: uidLabels(pod.UID), seen: time.Now(), probes: map[probeKey]ProbeState{}, backoff: map[string]BackoffEntry{}}
		m.states[key] = st
	}
	if pod.DeletionTimestamp != nil {
		if !st.terminating {
			st.terminating = true
			m.terms.Go(func() { m.terminate(ctx, key, pod.DeepCopy(), st) })
		}
		m.mu.Unlock()
		return 0, nil
	}
	m.mu.Unlock()
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0, m.stopSandboxes(ctx, pod.UID)
	}
	return m.syncPod(ctx, pod, st)
}

func uidLabels(uid types.UID) map[string]string {
	return map[string]string{runtime.LabelPodUID: string(uid)}
}

// sandboxConfig is the sandbox configuration of a pod; CreateContainer
// needs the same one the sandbox was run with.
func (m *podManager) sandboxConfig(pod *corev1.Pod, attempt uint32) runtime.PodSandboxConfig {
	labels := maps.Clone(pod.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[runtime.LabelPodName] = pod.Name
	labels[runtime.LabelPodNamespace] = pod.Namespace
	labels[runtime.LabelPodUID] = string(pod.UID)
	labels[runtime.LabelManagedBy] = managedBy
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	cfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID), Attempt: attempt},
		Hostname:     hostname,
		LogDirectory: runtime.PodLogDirectory(m.a.logsDir(), pod.Namespace, pod.Name, string(pod.UID)),
		HostNetwork:  pod.Spec.HostNetwork,
		Labels:       labels,
		Annotations:  maps.Clone(pod.Annotations),
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				cfg.PortMappings = append(cfg.PortMappings, runtime.PortMapping{
					Protocol: runtime.Protocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP})
			}
		}
	}
	return cfg
}

// podDNS is a pod's resolver configuration, as the kubelet computes it
// from its dnsPolicy and dnsConfig with the cluster DNS servers (see
// dns.ForPod); nil, the host's own file, when no cluster DNS is
// configured and the pod asks for nothing else.
func (m *podManager) podDNS(pod *corev1.Pod) *runtime.DNSConfig {
	cfg := m.a.cfg
	if len(cfg.ClusterDNS) == 0 && pod.Spec.DNSConfig == nil && pod.Spec.DNSPolicy != corev1.DNSNone {
		return nil
	}
	path := cfg.ResolvConf
	if path == "" {
		path = dns.DefaultResolvConf
	}
	host, err := dns.ReadResolvConf(path)
	if err != nil {
		m.a.log.Warn("pod DNS: the host's resolver configuration is unreadable; pods get none of it", "err", err)
	}
	c := dns.ForPod(pod, cfg.ClusterDNS, cfg.ClusterDomain, host)
	return &runtime.DNSConfig{Servers: c.Servers, Searches: c.Searches, Options: c.Options}
}

// instances groups a pod's containers by name, newest attempt first.
func instances(cs []runtime.Container) map[string][]runtime.Container {
	out := map[string][]runtime.Container{}
	for _, c := range cs {
		name := c.Labels[runtime.LabelContainerName]
		if name == "" {
			name = c.Name
		}
		out[name] = append(out[name], c)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Attempt > list[j].Attempt })
	}
	return out
}

// podRun is one sync of one pod.
type podRun struct {
	m    *podManager
	pod  *corev1.Pod
	st   *podState
	now  time.Time
	next time.Time
	sb   runtime.SandboxID
	// sbCfg is the configuration sb was run with, made when first needed
	// (sbCfgOK): a sync of a running pod creates no container.
	sbCfg     runtime.PodSandboxConfig
	sbCfgOK   bool
	sbAttempt uint32
	podIP     string
	insts     map[string][]runtime.Container
	views     map[string]containerView
	lookup    envLookup
}

func (r *podRun) wakeAt(t time.Time) {
	if t.Before(r.next) {
		r.next = t
	}
}

// syncPod is the kubelet's SyncPod: sandbox, init containers in order, app
// containers, probes, restarts, status.
func (m *podManager) syncPod(ctx context.Context, pod *corev1.Pod, st *podState) (time.Duration, error) {
	now := time.Now()
	if pod.ResourceVersion == st.syncedRV && now.Before(st.nextSync) {
		// Nothing changed since the last sync (this is the watch's echo of
		// its status write) and nothing is due before it said: look again
		// when it said.
		return st.nextSync.Sub(now), nil
	}
	st.syncedRV = ""
	r := &podRun{m: m, pod: pod, st: st, now: now, next: now.Add(m.a.cfg.ResyncInterval), views: map[string]containerView{}}
	r.lookup = envLookup{
		ConfigMap: func(ns, name string) (*corev1.ConfigMap, error) {
			return m.a.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		},
		Secret: func(ns, name string) (*corev1.Secret, error) {
			return m.a.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		},
	}
	if err := r.ensureSandbox(ctx); err != nil {
		// Say so on the pod (its containers wait in ContainerCreating, as
		// with the kubelet) and try again with backoff.
		reason := "FailedCreatePodSandBox"
		if errors.Is(err, errVolumes) {
			reason = "FailedMount"
		}
		m.a.event(pod, corev1.EventTypeWarning, reason, "%v", err)
		status := computeStatus(latestStatus(pod, st), podView{HostIP: m.a.cfg.NodeIP, RuntimeName: m.a.runtimeName, Now: now})
		if _, werr := m.writeStatus(ctx, pod, st, status); werr != nil {
			m.a.log.Warn("update status", "pod", pod.Namespace+"/"+pod.Name, "err", werr)
		}
		return 0, err
	}
	cs, err := m.rt.ListContainers(ctx, runtime.ContainerFilter{Labels: st.uidLabels})
	if err != nil {
		return 0, err
	}
	r.insts = instances(cs)

	inited := true
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		v, err := r.view(ctx, c.Name)
		if err != nil {
			return 0, err
		}
		if succeeded(v.Current) {
			r.views[c.Name] = v
			continue
		}
		inited = false
		r.views[c.Name] = r.drive(ctx, c, v, true)
		break
	}
	if inited {
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			v, err := r.view(ctx, c.Name)
			if err != nil {
				return 0, err
			}
			r.views[c.Name] = r.drive(ctx, c, v, false)
		}
	}
	r.removeOld(ctx)

	var ips []string
	if r.podIP != "" {
		ips = []string{r.podIP}
	}
	status := computeStatus(latestStatus(pod, st), podView{
		SandboxReady: true,
		PodIPs:       ips,
		HostIP:       m.a.cfg.NodeIP,
		RuntimeName:  m.a.runtimeName,
		Containers:   r.views,
		Now:          now,
	})
	wrote, err := m.writeStatus(ctx, pod, st, status)
	if err != nil {
		return 0, err
	}
	if m.a.cfg.synced != nil {
		m.a.cfg.synced(pod.Namespace+"/"+pod.Name, wrote)
	}
	st.syncedRV, st.nextSync = pod.ResourceVersion, r.next
	if wrote {
		st.syncedRV = st.writtenRV
	}
	return max(time.Until(r.next), 10*time.Millisecond), nil
}

// ensureSandbox finds the pod's ready sandbox or runs a new one (after
// setting up volumes), and learns its IP.
func (r *podRun) ensureSandbox(ctx context.Context) error {
	m, pod := r.m, r.pod
	sbs, err := m.rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: r.st.uidLabels})
	if err != nil {
		return err
	}
	var ready *runtime.PodSandbox
	next := uint32(0)
	for i := range sbs {
		s := &sbs[i]
		if s.Metadata.Attempt >= next {
			next = s.Metadata.Attempt + 1
		}
		if s.State == runtime.SandboxReady && (ready == nil || s.Metadata.Attempt > ready.Metadata.Attempt) {
			ready = s
		}
	}
	if r.st.volumes == nil {
		paths, skipped, err := setupVolumes(m.a.volumesDir(pod.UID), pod, r.lookup)
		if err != nil {
			return fmt.Errorf("%w: %w", errVolumes, err)
		}
		if len(skipped) > 0 {
			m.a.log.Debug("volumes not supported, not mounted", "pod", pod.Namespace+"/"+pod.Name, "volumes", skipped)
		}
		r.st.volumes = paths
	}
	if ready == nil {
		// A sandbox that died (its pause process, its network) takes its
		// containers down with it; a new one starts them again. The old
		// ones stay listed, stopped, so attempts keep counting.
		for _, s := range sbs {
			if err := m.rt.StopPodSandbox(ctx, s.ID); err != nil {
				return err
			}
		}
		r.sbCfg, r.sbCfgOK = m.sandboxConfig(pod, next), true
		// Only a new sandbox takes a resolver configuration: no need to
		// read the host's on every sync of a running pod.
		r.sbCfg.DNS = m.podDNS(pod)
		if lm, ok := m.rt.(logDirectoryMaker); !ok || !lm.MakesLogDirectory() {
			if err := os.MkdirAll(r.sbCfg.LogDirectory, 0o755); err != nil {
				return fmt.Errorf("log directory: %w", err)
			}
		}
		id, err := m.rt.RunPodSandbox(ctx, r.sbCfg)
		if err != nil {
			return err
		}
		m.a.log.Info("sandbox started", "pod", pod.Namespace+"/"+pod.Name, "attempt", next)
		r.sb = id
	} else {
		r.sb, r.sbAttempt = ready.ID, ready.Metadata.Attempt
	}
	sst, err := m.rt.PodSandboxStatus(ctx, r.sb)
	if err != nil {
		return err
	}
	r.podIP = sst.IP
	if pod.Spec.HostNetwork || r.podIP == "" {
		r.podIP = m.a.cfg.NodeIP
	}
	return nil
}

// view loads the current and previous instance of a container.
func (r *podRun) view(ctx context.Context, name string) (containerView, error) {
	var v containerView
	list := r.insts[name]
	for i, dst := range []**runtime.ContainerStatus{&v.Current, &v.Previous} {
		if i >= len(list) {
			break
		}
		s, err := r.m.rt.ContainerStatus(ctx, list[i].ID)
		if errors.Is(err, runtime.ErrNotFound) {
			continue
		}
		if err != nil {
			return v, err
		}
		*dst = &s
	}
	return v, nil
}

// drive moves one container toward running (or completed, for init
// containers and restart policies that say so) and probes it.
func (r *podRun) drive(ctx context.Context, c *corev1.Container, v containerView, isInit bool) containerView {
	v = r.act(ctx, c, v, isInit)
	if f, ok := r.m.rt.(changeForecaster); ok && v.Current != nil && v.Current.State == runtime.ContainerRunning {
		if t := f.NextChange(v.Current.ID); !t.IsZero() {
			r.wakeAt(t)
		}
	}
	if !isInit && v.Current != nil && v.Current.State == runtime.ContainerRunning {
		// Probes that are due run now, even on a container just started,
		// so a pod can go Running and Ready in one status write.
		return r.probe(ctx, c, v)
	}
	return v
}

// act starts, restarts or leaves a container as its state and the restart
// policy say.
func (r *podRun) act(ctx context.Context, c *corev1.Container, v containerView, isInit bool) containerView {
	cur := v.Current
	switch {
	case cur == nil:
		return r.start(ctx, c, v, 0)
	case cur.State == runtime.ContainerCreated:
		if err := r.m.rt.StartContainer(ctx, cur.ID); err != nil {
			v.Waiting = &corev1.ContainerStateWaiting{Reason: "RunContainerError", Message: err.Error()}
			return v
		}
		return r.refresh(ctx, v)
	case cur.State == runtime.ContainerRunning:
		return v
	case cur.State == runtime.ContainerExited:
		if !shouldRestart(r.pod.Spec.RestartPolicy, cur.ExitCode, isInit) {
			return v
		}
		at, delay, entry := r.m.backoff.RestartAt(r.st.backoff[c.Name], cur.StartedAt, cur.FinishedAt)
		r.st.backoff[c.Name] = entry
		if r.now.Before(at) {
			if entry != r.st.lastBackoffEvent {
				r.st.lastBackoffEvent = entry
				r.m.a.event(r.pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, r.pod.Name, r.pod.Namespace, r.pod.UID)
			}
			v.Waiting = &corev1.ContainerStateWaiting{
				Reason:  ReasonCrashLoopBackOff,
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, r.pod.Name, r.pod.Namespace, r.pod.UID),
			}
			r.wakeAt(at)
			return v
		}
		return r.start(ctx, c, v, cur.Attempt+1)
	}
	return v
}

// shouldRestart applies the restart policy to an exited container; init
// containers are restarted on failure unless the policy is Never.
func shouldRestart(policy corev1.RestartPolicy, exitCode int32, isInit bool) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	if isInit {
		return exitCode != 0
	}
	return true
}

// refresh reloads v.Current after a change.
func (r *podRun) refresh(ctx context.Context, v containerView) containerView {
	if s, err := r.m.rt.ContainerStatus(ctx, v.Current.ID); err == nil {
		v.Current = &s
	}
	return v
}

// start creates and starts instance attempt of a container.
func (r *podRun) start(ctx context.Context, c *corev1.Container, v containerView, attempt uint32) containerView {
	m, pod := r.m, r.pod
	env, err := resolveEnv(pod, c, envContext{PodIP: r.podIP, HostIP: m.a.cfg.NodeIP, NodeName: m.a.cfg.NodeName, NodeAllocatable: m.a.host.Capacity}, r.lookup)
	if err != nil {
		v.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonCreateContainerConfigError, Message: err.Error()}
		m.a.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return v
	}
	if err := m.ensureImage(ctx, c); err != nil {
		v.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonErrImagePull, Message: err.Error()}
		m.a.event(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		r.wakeAt(r.now.Add(5 * time.Second))
		return v
	}
	cfg := runtime.ContainerConfig{
		Name:       c.Name,
		Attempt:    attempt,
		Image:      c.Image,
		Command:    expandAll(c.Command, env),
		Args:       expandAll(c.Args, env),
		Env:        env,
		WorkingDir: c.WorkingDir,
		Mounts:     mountsFor(c, r.st.volumes),
		Resources:  runtime.ResourcesFor(c.Resources),
		LogPath:    runtime.ContainerLogPath(c.Name, attempt),
		Labels: map[string]string{
			runtime.LabelPodName:       pod.Name,
			runtime.LabelPodNamespace:  pod.Namespace,
			runtime.LabelPodUID:        string(pod.UID),
			runtime.LabelContainerName: c.Name,
			runtime.LabelManagedBy:     managedBy,
		},
	}
	if !r.sbCfgOK {
		r.sbCfg, r.sbCfgOK = m.sandboxConfig(pod, r.sbAttempt), true
	}
	id, err := m.rt.CreateContainer(ctx, r.sb, r.sbCfg, cfg)
	if err != nil {
		v.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonCreateContainerError, Message: err.Error()}
		m.a.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return v
	}
	if err := m.rt.StartContainer(ctx, id); err != nil {
		v.Waiting = &corev1.ContainerStateWaiting{Reason: "RunContainerError", Message: err.Error()}
		return v
	}
	m.a.log.Info("container started", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "attempt", attempt)
	m.a.event(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	s, err := m.rt.ContainerStatus(ctx, id)
	if err != nil {
		return v
	}
	if v.Current != nil {
		v.Previous = v.Current
	}
	v.Current = &s
	v.Waiting = nil
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := m.prober.runHook(hctx, c.Lifecycle.PostStart, c, id, r.podIP); err != nil {
			m.a.log.Warn("postStart hook failed", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "err", err)
		}
		cancel()
	}
	// Probe the new instance from scratch; a quick first look soon, to see
	// it exit early. A runtime that forecasts its containers' exits (sim)
	// needs none: drive wakes for the exit and the probes for themselves.
	if _, ok := m.rt.(changeForecaster); !ok {
		r.wakeAt(r.now.Add(100 * time.Millisecond))
	}
	return v
}

// ensureImage makes sure the image is present on runtimes with images,
// pulling it when missing or when the policy says Always.
func (m *podManager) ensureImage(ctx context.Context, c *corev1.Container) error {
	is, ok := m.rt.(runtime.ImageService)
	if !ok {
		return nil
	}
	if c.ImagePullPolicy != corev1.PullAlways {
		if _, err := is.ImageStatus(ctx, c.Image); err == nil {
			return nil
		} else if !errors.Is(err, runtime.ErrNotFound) {
			return err
		}
		if c.ImagePullPolicy == corev1.PullNever {
			return fmt.Errorf("container image %q is not present with pull policy of Never", c.Image)
		}
	}
	_, err := is.PullImage(ctx, c.Image)
	return err
}

// probe runs the running container's due probes and kills it when its
// liveness or startup probe has failed.
func (r *podRun) probe(ctx context.Context, c *corev1.Container, v containerView) containerView {
	_, answerer := r.m.rt.(probeAnswerer)
	readiness := c.ReadinessProbe
	if readiness == nil && answerer {
		// The sim runtime decides readiness even without a probe.
		readiness = &corev1.Probe{PeriodSeconds: 1}
	}
	startedOK := true
	if c.StartupProbe != nil {
		ps := r.runProbe(ctx, c, v, Startup, c.StartupProbe)
		startedOK = ps.OK
		if !ps.OK && ps.Failures >= TimingOf(c.StartupProbe).FailureThreshold {
			return r.kill(ctx, c, v, "startup")
		}
	}
	v.Started = startedOK
	if !startedOK {
		return v
	}
	if c.LivenessProbe != nil {
		if ps := r.runProbe(ctx, c, v, Liveness, c.LivenessProbe); !ps.OK {
			return r.kill(ctx, c, v, "liveness")
		}
	}
	v.Ready = true
	if readiness != nil && !r.readyForGood(c, v) {
		v.Ready = r.runProbe(ctx, c, v, Readiness, readiness).OK
	}
	return v
}

// readyForGood reports that a container the sim runtime decides readiness
// for (it has no readiness probe of its own) was found ready already: its
// script cannot make it unready again, so it is not asked every second.
// A simulated fleet of thousands of pods otherwise synced each pod once a
// second for nothing.
func (r *podRun) readyForGood(c *corev1.Container, v containerView) bool {
	if c.ReadinessProbe != nil {
		return false
	}
	ps, ok := r.st.probes[probeKey{c.Name, Readiness}]
	return ok && ps.Container == v.Current.ID && ps.OK
}

// runProbe runs one probe if it is due and returns its state.
func (r *podRun) runProbe(ctx context.Context, c *corev1.Container, v containerView, kind ProbeKind, p *corev1.Probe) ProbeState {
	key := probeKey{c.Name, kind}
	id := v.Current.ID
	ps, ok := r.st.probes[key]
	if !ok || ps.Container != id {
		ps = NewProbeState(kind, id)
		// An agent that restarts keeps the verdicts it reported for this
		// very instance, so no Ready pod flaps.
		for _, cs := range r.pod.Status.ContainerStatuses {
			if cs.Name == c.Name && cs.ContainerID == r.m.a.runtimeName+"://"+string(id) {
				switch kind {
				case Readiness:
					ps.OK = cs.Ready
				case Startup:
					ps.OK = cs.Started != nil && *cs.Started
				}
			}
		}
	}
	if kind == Startup && ps.OK {
		r.st.probes[key] = ps
		return ps
	}
	timing := TimingOf(p)
	due := ps.NextRun(timing, v.Current.StartedAt)
	now := r.now
	if kind == Readiness && c.ReadinessProbe == nil {
		// The sim runtime's own verdict costs nothing to ask: ask it now,
		// so a container started in this sync is reported ready in this
		// sync's status write, not in a second one a moment later.
		now = time.Now()
	}
	if !now.Before(due) {
		okProbe, err := r.m.prober.probe(ctx, kind, p, c, id, r.podIP)
		if err != nil {
			r.m.a.log.Debug("probe error", "pod", r.pod.Namespace+"/"+r.pod.Name, "container", c.Name, "probe", kind, "err", err)
		}
		before := ps.OK
		ps = ps.Observe(timing, okProbe && err == nil, time.Now())
		if !okProbe && kind != Startup || err != nil {
			msg := "probe failed"
			if err != nil {
				msg = err.Error()
			}
			r.m.a.event(r.pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", probeTitle(kind), msg)
		}
		if before != ps.OK {
			r.m.a.log.Info("probe verdict changed", "pod", r.pod.Namespace+"/"+r.pod.Name, "container", c.Name, "probe", kind, "ok", ps.OK)
		}
		due = ps.NextRun(timing, v.Current.StartedAt)
	}
	r.st.probes[key] = ps
	if kind == Readiness && c.ReadinessProbe == nil && ps.OK {
		// Ready for good (see readyForGood): not asked again.
		return ps
	}
	r.wakeAt(due)
	return ps
}

// kill stops a container whose liveness or startup probe failed; the next
// sync restarts it as its restart policy says.
func (r *podRun) kill(ctx context.Context, c *corev1.Container, v containerView, why string) containerView {
	r.m.a.log.Info("container failed its probe, restarting", "pod", r.pod.Namespace+"/"+r.pod.Name, "container", c.Name, "probe", why)
	r.m.a.event(r.pod, corev1.EventTypeNormal, "Killing", "Container %s failed %s probe, will be restarted", c.Name, why)
	if err := r.m.rt.StopContainer(ctx, v.Current.ID, gracePeriod(r.pod, false)); err != nil {
		r.m.a.log.Warn("stop container", "err", err)
	}
	delete(r.st.probes, probeKey{c.Name, Liveness})
	delete(r.st.probes, probeKey{c.Name, Startup})
	delete(r.st.probes, probeKey{c.Name, Readiness})
	v = r.refresh(ctx, v)
	v.Ready, v.Started = false, false
	r.wakeAt(r.now)
	return v
}

// removeOld removes container instances older than the previous one of
// each container (the previous stays for `logs --previous`).
func (r *podRun) removeOld(ctx context.Context) {
	for _, list := range r.insts {
		for _, c := range list[min(2, len(list)):] {
			if c.State == runtime.ContainerRunning {
				continue
			}
			if err := r.m.rt.RemoveContainer(ctx, c.ID); err != nil {
				r.m.a.log.Warn("remove old container", "err", err)
			}
		}
	}
}

// writeStatus writes status when it differs from the pod's and from what
// was last written.
func (m *podManager) writeStatus(ctx context.Context, pod *corev1.Pod, st *podState, status corev1.PodStatus) (bool, error) {
	// Marshal fails only on a malformed status; then enc is nil and the
	// write goes ahead.
	enc, _ := status.Marshal()
	if enc != nil && (sameStatus(enc, &pod.Status) || st.written != nil && bytes.Equal(enc, st.writtenEnc)) {
		return false, nil
	}
	// Only the status of a status write is taken, so the informer's copy
	// serves with the newer resourceVersion of its own and the one our last
	// write returned: the informer has often not yet seen that write.
	rv, err := putPodStatus(ctx, m.a.cfg.Client, pod, newerResourceVersion(pod.ResourceVersion, st.writtenRV), status)
	if apierrors.IsConflict(err) { // someone else wrote the pod meanwhile
		fresh, gerr := m.a.cfg.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(gerr) {
			return false, nil
		}
		if gerr != nil {
			return false, fmt.Errorf("update status: get: %w", gerr)
		}
		if fresh.UID != pod.UID {
			return false, nil
		}
		rv, err = putPodStatus(ctx, m.a.cfg.Client, fresh, fresh.ResourceVersion, status)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("update status: %w", err)
	}
	st.writtenRV = rv
	m.mu.Lock()
	st.echoRV = rv
	m.mu.Unlock()
	if status.Phase == corev1.PodRunning && pod.Status.Phase != corev1.PodRunning && (st.written == nil || st.written.Phase != corev1.PodRunning) {
		metrics.ObservePodStart(time.Since(st.seen))
	}
	st.written, st.writtenEnc = &status, enc
	return true, nil
}

// sameStatus reports whether a status encoded in protobuf (enc) is what
// the API server already stores as cur: the encoding is the stored form,
// times in whole seconds. It is the agent's check on every sync that a
// write is needed, and a reflective semantic comparison of two statuses
// cost a simulated fleet a fifth of its CPU.
func sameStatus(enc []byte, cur *corev1.PodStatus) bool {
	curEnc, err := cur.Marshal()
	return err == nil && bytes.Equal(enc, curEnc)
}

// latestStatus returns pod with the newest status the agent knows of: the
// one it last wrote when the informer's copy has not yet caught up with
// that write. Computed from the informer's older status, conditions that
// changed since would get a new transition time on every sync while the
// watch lags, and each such status would be written again.
func latestStatus(pod *corev1.Pod, st *podState) *corev1.Pod {
	if st.written == nil || newerResourceVersion(pod.ResourceVersion, st.writtenRV) == pod.ResourceVersion {
		return pod
	}
	p := *pod // shallow: computeStatus copies the status it starts from
	p.Status = *st.written
	return &p
}

// newerResourceVersion returns the later of two resourceVersions (etcd
// revisions); b is ignored when empty or when either is not a number, as
// resourceVersions are opaque to clients in general.
func newerResourceVersion(a, b string) string {
	if b == "" {
		return a
	}
	na, erra := strconv.ParseUint(a, 10, 64)
	nb, errb := strconv.ParseUint(b, 10, 64)
	if erra != nil || errb != nil || nb <= na {
		return a
	}
	return b
}

// gracePeriod is the pod's termination grace period: the one the deletion
// set, else the spec's, else 30s.
func gracePeriod(pod *corev1.Pod, deleting bool) time.Duration {
	if deleting && pod.DeletionGracePeriodSeconds != nil {
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return defaultGrace
}

// terminate stops a pod being deleted: preStop hooks, then each container
// gets the rest of the grace period to stop, then the sandbox goes and the
// pod object is deleted for good.
func (m *podManager) terminate(ctx context.Context, key string, pod *corev1.Pod, st *podState) {
	log := m.a.log.With("pod", key)
	grace := gracePeriod(pod, true)
	deadline := time.Now().Add(grace)
	log.Info("stopping pod", "grace", grace)
	for _, c := range pod.Spec.Containers {
		m.a.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
	}
	m.drainEndpoints(ctx, pod, deadline)
	err := m.stopContainers(ctx, pod, deadline)
	if err == nil {
		err = m.killPod(ctx, pod.UID, 0)
	}
	if err == nil {
		zero := int64(0)
		err = m.a.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			err = nil
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		st.terminating = false
		if ctx.Err() == nil {
			log.Warn("pod termination failed, retrying", "err", err)
			m.queue.AddRateLimited(key)
		}
		return
	}
	if m.states[key] == st {
		delete(m.states, key)
	}
	log.Info("pod stopped and deleted")
}

// stopContainers runs preStop hooks and stops the pod's running
// containers in parallel, each by deadline.
func (m *podManager) stopContainers(ctx context.Context, pod *corev1.Pod, deadline time.Time) error {
	running := runtime.ContainerRunning
	cs, err := m.rt.ListContainers(ctx, runtime.ContainerFilter{Labels: uidLabels(pod.UID), State: &running})
	if err != nil {
		return err
	}
	specs := map[string]*corev1.Container{}
	for i := range pod.Spec.InitContainers {
		specs[pod.Spec.InitContainers[i].Name] = &pod.Spec.InitContainers[i]
	}
	for i := range pod.Spec.Containers {
		specs[pod.Spec.Containers[i].Name] = &pod.Spec.Containers[i]
	}
	podIP := pod.Status.PodIP
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Go(func() {
			if spec := specs[c.Labels[runtime.LabelContainerName]]; spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
				hctx, cancel := context.WithDeadline(ctx, deadline)
				if err := m.prober.runHook(hctx, spec.Lifecycle.PreStop, spec, c.ID, podIP); err != nil {
					m.a.log.Warn("preStop hook failed", "pod", pod.Namespace+"/"+pod.Name, "container", spec.Name, "err", err)
				}
				cancel()
			}
			errs[i] = m.rt.StopContainer(ctx, c.ID, max(time.Until(deadline), 0))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopSandboxes stops the ready sandboxes of a pod that has finished, so
// its address is freed; containers and logs stay until the pod is deleted.
func (m *podManager) stopSandboxes(ctx context.Context, uid types.UID) error {
	ready := runtime.SandboxReady
	sbs, err := m.rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: uidLabels(uid), State: &ready})
	if err != nil {
		return err
	}
	for _, s := range sbs {
		if err := m.rt.StopPodSandbox(ctx, s.ID); err != nil {
			return err
		}
	}
	return nil
}

// killPod removes every sandbox of a pod (its containers stopped with the
// given grace) and its files.
func (m *podManager) killPod(ctx context.Context, uid types.UID, grace time.Duration) error {
	sbs, err := m.rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: uidLabels(uid)})
	if err != nil {
		return err
	}
	for _, s := range sbs {
		cs, err := m.rt.ListContainers(ctx, runtime.ContainerFilter{SandboxID: s.ID})
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.State == runtime.ContainerRunning {
				if err := m.rt.StopContainer(ctx, c.ID, grace); err != nil {
					return err
				}
			}
		}
		if err := m.rt.StopPodSandbox(ctx, s.ID); err != nil {
			return err
		}
		if err := m.rt.RemovePodSandbox(ctx, s.ID); err != nil {
			return err
		}
		md := s.Metadata
		os.RemoveAll(runtime.PodLogDirectory(m.a.logsDir(), md.Namespace, md.Name, md.UID))
	}
	os.RemoveAll(m.a.podDir(uid))
	return nil
}

// cleanupOrphans removes sandboxes of pods that are no longer bound to the
// node (deleted while the agent was away, or force-deleted).
func (m *podManager) cleanupOrphans(ctx context.Context) {
	sbs, err := m.rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelManagedBy: managedBy}})
	if err != nil {
		m.a.log.Warn("list sandboxes", "err", err)
		return
	}
	pods, err := m.lister.List(labels.Everything())
	if err != nil {
		return
	}
	known := map[string]bool{}
	for _, p := range pods {
		known[string(p.UID)] = true
	}
	for _, s := range sbs {
		uid := s.Labels[runtime.LabelPodUID]
		if uid == "" || known[uid] {
			continue
		}
		m.a.log.Info("removing sandbox of a pod no longer on this node", "pod", s.Metadata.Namespace+"/"+s.Metadata.Name, "uid", uid)
		if err := m.killPod(ctx, types.UID(uid), 0); err != nil {
			m.a.log.Warn("remove orphaned pod", "err", err)
		}
	}
}

// probeTitle is a probe kind as events name it: "Readiness".
func probeTitle(k ProbeKind) string {
	return strings.ToUpper(string(k[:1])) + string(k[1:])
}
