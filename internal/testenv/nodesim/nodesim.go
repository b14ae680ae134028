// Package nodesim stands in for nodes and their agents in controller tests:
// it creates Ready Node objects, optionally binds unscheduled pods to them
// round-robin (when the test runs no scheduler), marks pods bound to them
// Running and Ready the way an agent would, and completes graceful
// deletions. All through the API, like a real agent.
//
// A pod annotated NeverReady ("true") runs but never becomes ready, for
// rollouts that must halt.
package nodesim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// NeverReady is the pod annotation that keeps a simulated pod unready.
const NeverReady = "nodesim.drover.io/never-ready"

// Options shape the simulation.
type Options struct {
	// Nodes names the nodes to create.
	Nodes []string
	// CPU and Memory are each node's capacity (defaults 4 and 8Gi).
	CPU, Memory string
	// Bind makes the simulation bind pods without spec.nodeName to its
	// nodes round-robin, for tests that run no scheduler.
	Bind bool
	// ReadyAfter delays readiness after a pod starts running (default 0).
	ReadyAfter time.Duration
	// Logger receives what the simulation does (default slog.Default()).
	Logger *slog.Logger
}

// Sim is a running simulation.
type Sim struct {
	client kubernetes.Interface
	opts   Options
	queue  workqueue.TypedRateLimitingInterface[string]
	nodes  map[string]bool
	lister cache.Indexer

	mu   sync.Mutex
	next int // round-robin binding
	ips  int // pod IPs handed out
}

// Start creates the nodes and runs the simulation until ctx is done.
func Start(ctx context.Context, client kubernetes.Interface, opts Options) (*Sim, error) {
	if opts.CPU == "" {
		opts.CPU = "4"
	}
	if opts.Memory == "" {
		opts.Memory = "8Gi"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Sim{
		client: client,
		opts:   opts,
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		nodes:  map[string]bool{},
	}
	for _, name := range opts.Nodes {
		if err := s.AddNode(ctx, name, opts.CPU, opts.Memory); err != nil {
			return nil, err
		}
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			s.queue.Add(key)
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	s.lister = inf.GetIndexer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("nodesim: pod informer did not sync")
	}
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for range 4 {
		go wait.UntilWithContext(ctx, s.work, time.Second)
	}
	return s, nil
}

// AddNode creates (or makes Ready again) a simulated node.
func (s *Sim) AddNode(ctx context.Context, name, cpu, memory string) error {
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(memory),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
	}
	created, err := s.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("nodesim: creating node %s: %w", name, err)
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity: rl, Allocatable: rl,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "simulated node is ready", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
	}
	if _, err := s.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("nodesim: node %s status: %w", name, err)
	}
	s.mu.Lock()
	s.nodes[name] = true
	s.mu.Unlock()
	return nil
}

func (s *Sim) work(ctx context.Context) {
	for {
		key, quit := s.queue.Get()
		if quit {
			return
		}
		err := s.sync(ctx, key)
		if err != nil && !apierrors.IsNotFound(err) {
			s.opts.Logger.Debug("nodesim: retrying", "pod", key, "err", err)
			s.queue.AddRateLimited(key)
		} else {
			s.queue.Forget(key)
		}
		s.queue.Done(key)
	}
}

func (s *Sim) sync(ctx context.Context, key string) error {
	obj, exists, err := s.lister.GetByKey(key)
	if err != nil || !exists {
		return err
	}
	pod := obj.(*corev1.Pod)
	pods := s.client.CoreV1().Pods(pod.Namespace)
	if pod.Spec.NodeName == "" {
		if !s.opts.Bind || pod.DeletionTimestamp != nil {
			return nil
		}
		s.mu.Lock()
		node := s.opts.Nodes[s.next%len(s.opts.Nodes)]
		s.next++
		s.mu.Unlock()
		err := pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
		if apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	s.mu.Lock()
	ours := s.nodes[pod.Spec.NodeName]
	s.mu.Unlock()
	if !ours {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		zero := int64(0)
		return pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	}
	want, requeue := s.status(pod)
	if requeue > 0 {
		s.queue.AddAfter(key, requeue)
	}
	if want == nil {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = *want
	_, err = pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

// status returns the status the pod should have now, or nil if it has it,
// and when to look again (for a pending ReadyAfter).
func (s *Sim) status(pod *corev1.Pod) (*corev1.PodStatus, time.Duration) {
	running := pod.Status.Phase == corev1.PodRunning
	ready := podReady(pod)
	neverReady := pod.Annotations[NeverReady] == "true"
	if running && (ready || neverReady) {
		return nil, 0
	}
	now := metav1.Now()
	st := pod.Status.DeepCopy()
	if !running {
		st.Phase = corev1.PodRunning
		st.HostIP = "127.0.0.1"
		s.mu.Lock()
		s.ips++
		n := s.ips
		s.mu.Unlock()
		st.PodIP = fmt.Sprintf("10.244.%d.%d", n/250, n%250+1)
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
		st.StartTime = &now
		st.ContainerStatuses = nil
		for _, c := range pod.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: "sim://" + c.Image, ContainerID: "sim://" + string(pod.UID) + "-" + c.Name,
				State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
				Started: ptrTo(true),
			})
		}
		setCondition(st, corev1.PodInitialized, corev1.ConditionTrue, now)
		setCondition(st, corev1.PodScheduled, corev1.ConditionTrue, now)
	}
	becomeReady := !neverReady
	var requeue time.Duration
	if becomeReady && s.opts.ReadyAfter > 0 {
		started := now.Time
		if pod.Status.StartTime != nil {
			started = pod.Status.StartTime.Time
		}
		if wait := time.Until(started.Add(s.opts.ReadyAfter)); wait > 0 {
			becomeReady, requeue = false, wait
		}
	}
	readyStatus := corev1.ConditionFalse
	if becomeReady {
		readyStatus = corev1.ConditionTrue
	}
	for i := range st.ContainerStatuses {
		st.ContainerStatuses[i].Ready = becomeReady
	}
	setCondition(st, corev1.ContainersReady, readyStatus, now)
	setCondition(st, corev1.PodReady, readyStatus, now)
	if running && !becomeReady {
		return nil, requeue
	}
	return st, requeue
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, status corev1.ConditionStatus, now metav1.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != status {
				st.Conditions[i].Status = status
				st.Conditions[i].LastTransitionTime = now
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: status, LastTransitionTime: now})
}

func ptrTo[T any](v T) *T { return &v }
