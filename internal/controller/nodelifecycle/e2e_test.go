package nodelifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drover/drover/internal/controller/nodelifecycle"
	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/scheduler"
	"github.com/drover/drover/internal/testenv"
	"github.com/drover/drover/internal/testenv/nodesim"
)

// Test timings: a 1.5s grace, checked every 100ms; live agents renew every
// 200ms.
var fast = nodelifecycle.Options{
	NodeMonitorGracePeriod: 1500 * time.Millisecond,
	NodeMonitorPeriod:      100 * time.Millisecond,
}

// agents plays the nodes' agents: it renews each live node's Lease at its
// own interval, as a real agent does.
type agents struct {
	kube kubernetes.Interface
	ctx  context.Context
	mu   sync.Mutex
	// every is each live node's renewal interval; absent: dead.
	every   map[string]time.Duration
	renewed map[string]int
	wg      sync.WaitGroup
}

func startAgents(t testing.TB, parent context.Context, kube kubernetes.Interface, nodes []string, every time.Duration) *agents {
	ctx, cancel := context.WithCancel(parent)
	a := &agents{kube: kube, ctx: ctx, every: map[string]time.Duration{}, renewed: map[string]int{}}
	for _, n := range nodes {
		a.every[n] = every
		a.renew(t, n)
	}
	a.wg.Go(a.loop)
	t.Cleanup(func() {
		cancel()
		a.wg.Wait()
	})
	return a
}

func (a *agents) loop() {
	next := map[string]time.Time{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case now := <-tick.C:
			a.mu.Lock()
			var due []string
			for n, every := range a.every {
				if now.After(next[n]) {
					due = append(due, n)
					next[n] = now.Add(every)
				}
			}
			a.mu.Unlock()
			for _, n := range due {
				a.renew(nil, n)
			}
		}
	}
}

func (a *agents) renew(t testing.TB, name string) {
	leases := a.kube.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(a.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		holder := name
		_, err = leases.Create(a.ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &now}}, metav1.CreateOptions{})
	} else if err == nil {
		l.Spec.RenewTime = &now
		_, err = leases.Update(a.ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		if t != nil {
			t.Fatalf("renewing lease %s: %v", name, err)
		}
		return
	}
	a.mu.Lock()
	a.renewed[name]++
	a.mu.Unlock()
}

func (a *agents) kill(nodes ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range nodes {
		delete(a.every, n)
	}
}

func (a *agents) renewals(node string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.renewed[node]
}

// revive restarts a node's agent: it renews its lease and posts Ready.
func (a *agents) revive(t testing.TB, node string, every time.Duration) {
	t.Helper()
	a.renew(t, node)
	n, err := a.kube.CoreV1().Nodes().Get(a.ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	for i := range n.Status.Conditions {
		if c := &n.Status.Conditions[i]; c.Type == corev1.NodeReady {
			c.Status, c.Reason, c.Message, c.LastHeartbeatTime, c.LastTransitionTime = corev1.ConditionTrue, "KubeletReady", "ready", now, now
		}
	}
	if _, err := a.kube.CoreV1().Nodes().UpdateStatus(a.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.every[node] = every
	a.mu.Unlock()
}

type cluster struct {
	env *testenv.Env
	ctx context.Context
}

// start runs an API server and the node lifecycle controller, plus what
// extra asks for.
func start(t testing.TB, opts nodelifecycle.Options, extra ...func(ctx context.Context, kube kubernetes.Interface) error) *cluster {
	t.Helper()
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	log := testenv.Logger(t)
	wg.Go(func() {
		if err := nodelifecycle.Run(ctx, env.Kube, log, opts); err != nil {
			t.Errorf("nodelifecycle.Run: %v", err)
		}
	})
	for _, run := range extra {
		wg.Go(func() {
			if err := run(ctx, env.Kube); err != nil {
				t.Errorf("component: %v", err)
			}
		})
	}
	return &cluster{env: env, ctx: ctx}
}

func (c *cluster) node(t testing.TB, name string) *corev1.Node {
	t.Helper()
	n, err := c.env.Kube.CoreV1().Nodes().Get(c.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readyCondition(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key && t.Effect == effect })
}

// unreachable reports a node marked dead: Ready Unknown as upstream says it
// and the unreachable NoSchedule taint.
func unreachable(n *corev1.Node) error {
	c := readyCondition(n)
	if c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" || c.Message != "Kubelet stopped posting node status." {
		return fmt.Errorf("node %s Ready = %s/%s", n.Name, c.Status, c.Reason)
	}
	if !hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule) {
		return fmt.Errorf("node %s lacks the unreachable NoSchedule taint: %v", n.Name, n.Spec.Taints)
	}
	return nil
}

func simulate(t testing.TB, c *cluster, nodes []string, bind bool) {
	t.Helper()
	if _, err := nodesim.Start(c.ctx, c.env.Kube, nodesim.Options{Nodes: nodes, Bind: bind, Logger: testenv.Logger(t)}); err != nil {
		t.Fatal(err)
	}
}

func boundPod(name, node string, tolerations ...corev1.Toleration) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "fixed"}},
		Spec: corev1.PodSpec{NodeName: node, Tolerations: tolerations,
			Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}
}

// TestDeadNodeIsMarkedAndItsPodsMove: a node whose agent stops renewing its
// lease becomes Ready=Unknown with the unreachable taints; its pods go once
// their toleration runs out and the ReplicaSet's replacements run on the
// other nodes; when the agent comes back the taints go.
func TestDeadNodeIsMarkedAndItsPodsMove(t *testing.T) {
	c := start(t, fast,
		func(ctx context.Context, kube kubernetes.Interface) error {
			return replicaset.Run(ctx, kube, testenv.Logger(t), replicaset.Options{})
		},
		func(ctx context.Context, kube kubernetes.Interface) error {
			return scheduler.Run(ctx, kube, testenv.Logger(t), scheduler.Options{})
		})
	kube := c.env.Kube
	nodes := []string{"n1", "n2", "n3"}
	simulate(t, c, nodes, false)
	a := startAgents(t, c.ctx, kube, nodes, 200*time.Millisecond)

	// The pods carry the default tolerations, as the API server's pod
	// create path gives them, here of 1s.
	template := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}
	registry.AddDefaultTolerations(template, 1)
	replicas := int32(6)
	sel := map[string]string{"app": "web"}
	if _, err := kube.AppsV1().ReplicaSets("default").Create(c.ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: template.Spec}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	readyPods := func() (map[string][]string, error) {
		list, err := kube.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return nil, err
		}
		byNode := map[string][]string{}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
				byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p.Name)
			}
		}
		return byNode, nil
	}
	var before map[string][]string
	testenv.Eventually(t, 30*time.Second, func() error {
		var err error
		if before, err = readyPods(); err != nil {
			return err
		}
		if n := count(before); n != 6 {
			return fmt.Errorf("%d of 6 replicas ready", n)
		}
		return nil
	})
	victim := "n1"
	for _, n := range nodes {
		if len(before[n]) > len(before[victim]) {
			victim = n
		}
	}
	a.kill(victim)
	t.Logf("killed %s, which runs %v", victim, before[victim])

	testenv.Eventually(t, 20*time.Second, func() error {
		n := c.node(t, victim)
		if err := unreachable(n); err != nil {
			return err
		}
		i := slices.IndexFunc(n.Spec.Taints, func(t corev1.Taint) bool {
			return t.Key == corev1.TaintNodeUnreachable && t.Effect == corev1.TaintEffectNoExecute
		})
		if i < 0 || n.Spec.Taints[i].TimeAdded == nil {
			return fmt.Errorf("no unreachable NoExecute taint with TimeAdded: %v", n.Spec.Taints)
		}
		return nil
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, name := range before[victim] {
			if _, err := kube.CoreV1().Pods("default").Get(c.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod %s of the dead node still exists (err %v)", name, err)
			}
		}
		now, err := readyPods()
		if err != nil {
			return err
		}
		if count(now) != 6 || len(now[victim]) != 0 {
			return fmt.Errorf("ready replicas by node: %v", now)
		}
		return nil
	})
	for _, n := range nodes {
		if n == victim {
			continue
		}
		if err := checkHealthy(c.node(t, n)); err != nil {
			t.Errorf("a live node was touched: %v", err)
		}
	}

	a.revive(t, victim, 200*time.Millisecond)
	testenv.Eventually(t, 20*time.Second, func() error { return checkHealthy(c.node(t, victim)) })
}

func checkHealthy(n *corev1.Node) error {
	if readyCondition(n).Status != corev1.ConditionTrue {
		return fmt.Errorf("node %s not Ready: %+v", n.Name, readyCondition(n))
	}
	if len(n.Spec.Taints) != 0 {
		return fmt.Errorf("node %s has taints %v", n.Name, n.Spec.Taints)
	}
	return nil
}

func count(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestSlowAgentIsNeverNotReady: renewals spaced just below the grace
// period never mark the node, while a dead node beside it is marked.
func TestSlowAgentIsNeverNotReady(t *testing.T) {
	c := start(t, fast)
	kube := c.env.Kube
	simulate(t, c, []string{"slow", "dead"}, false)
	a := startAgents(t, c.ctx, kube, []string{"slow"}, 900*time.Millisecond)
	startAgents(t, c.ctx, kube, []string{"dead"}, time.Hour) // one renewal, then silence

	var mu sync.Mutex
	var alarms []string
	factory := informers.NewSharedInformerFactory(kube, 0)
	inf := factory.Core().V1().Nodes().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, obj any) {
		n := obj.(*corev1.Node)
		if n.Name == "slow" && (readyCondition(n).Status != corev1.ConditionTrue || len(n.Spec.Taints) > 0) {
			mu.Lock()
			alarms = append(alarms, fmt.Sprintf("%+v %v", readyCondition(n), n.Spec.Taints))
			mu.Unlock()
		}
	}})
	watchCtx, stopWatch := context.WithCancel(c.ctx)
	factory.Start(watchCtx.Done())
	defer factory.Shutdown()
	defer stopWatch()

	testenv.Eventually(t, 20*time.Second, func() error { return unreachable(c.node(t, "dead")) })
	// Keep going for several grace periods of slow renewals.
	start := a.renewals("slow")
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := a.renewals("slow") - start; n < 6 {
			return fmt.Errorf("%d slow renewals so far", n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(alarms) > 0 {
		t.Fatalf("the slow but live node was marked: %v", alarms)
	}
	if err := checkHealthy(c.node(t, "slow")); err != nil {
		t.Fatal(err)
	}
}

// TestTerminatingPodsOnDeadNodeAreForceDeleted: the dead node's agent cannot
// finish deletions, so pods terminating there are removed once their grace
// period is over; pods that tolerate the taint for ever stay.
func TestTerminatingPodsOnDeadNodeAreForceDeleted(t *testing.T) {
	c := start(t, fast)
	kube := c.env.Kube
	// A node no simulation serves: nothing completes its pods' deletions.
	n, err := kube.CoreV1().Nodes().Create(c.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "lost"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now}}
	if _, err := kube.CoreV1().Nodes().UpdateStatus(c.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	forever := corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	one := int64(1)
	pods := map[string]*corev1.Pod{
		"stays":    boundPod("stays", "lost", forever),
		"evicted":  boundPod("evicted", "lost"),
		"deleted":  boundPod("deleted", "lost", forever),
		"tolerant": boundPod("tolerant", "lost"),
	}
	registry.AddDefaultTolerations(pods["tolerant"], 1)
	for _, p := range pods {
		p.Spec.TerminationGracePeriodSeconds = &one
		if _, err := kube.CoreV1().Pods("default").Create(c.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A healthy node beside it: with every node down the controller
	// evicts nothing.
	simulate(t, c, []string{"alive"}, false)
	a := startAgents(t, c.ctx, kube, []string{"lost", "alive"}, 200*time.Millisecond)
	// While the node lives, a deletion waits for its agent.
	if err := kube.CoreV1().Pods("default").Delete(c.ctx, "deleted", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	a.kill("lost")
	testenv.Eventually(t, 20*time.Second, func() error { return unreachable(c.node(t, "lost")) })
	testenv.Eventually(t, 20*time.Second, func() error {
		for _, name := range []string{"evicted", "deleted", "tolerant"} {
			if _, err := kube.CoreV1().Pods("default").Get(c.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod %s still there (err %v)", name, err)
			}
		}
		return nil
	})
	p, err := kube.CoreV1().Pods("default").Get(c.ctx, "stays", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("the pod tolerating the taint for ever was deleted: %v %v", err, p.DeletionTimestamp)
	}
}

// TestMassFailureDoesNotEvictTheCluster: when most nodes go silent at once
// (a partition is more likely than mass death) a small cluster stops
// tainting; when all do, nothing is evicted and the NoExecute taints are
// lifted.
func TestMassFailureDoesNotEvictTheCluster(t *testing.T) {
	opts := fast
	opts.EvictionRate = 0.1 // one node per 10s: the first death may be acted on, not the rest
	c := start(t, opts)
	kube := c.env.Kube
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	simulate(t, c, nodes, false)
	for _, n := range nodes {
		if _, err := kube.CoreV1().Pods("default").Create(c.ctx, boundPod("p-"+n, n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgents(t, c.ctx, kube, nodes, 200*time.Millisecond)
	noExecute := func() ([]string, error) {
		list, err := kube.CoreV1().Nodes().List(c.ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, n := range list.Items {
			if hasTaint(&n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) {
				out = append(out, n.Name)
			}
		}
		return out, nil
	}
	survivingPods := func(except []string) error {
		for _, n := range nodes {
			if slices.Contains(except, n) {
				continue
			}
			p, err := kube.CoreV1().Pods("default").Get(c.ctx, "p-"+n, metav1.GetOptions{})
			if err != nil || p.DeletionTimestamp != nil {
				return fmt.Errorf("pod on untainted node %s was evicted: %v", n, err)
			}
		}
		return nil
	}

	dead := nodes[1:]
	a.kill(dead...)
	testenv.Eventually(t, 20*time.Second, func() error {
		for _, n := range dead {
			if err := unreachable(c.node(t, n)); err != nil {
				return err
			}
		}
		return nil
	})
	// The pass that marked the last of them saw a partial disruption;
	// from then on nothing more is tainted.
	evicted, err := noExecute()
	if err != nil {
		t.Fatal(err)
	}
	if len(evicted) > 1 {
		t.Fatalf("with 4 of 5 nodes down NoExecute taints went on %v; at most the first death may be acted on", evicted)
	}
	if err := survivingPods(evicted); err != nil {
		t.Fatal(err)
	}

	// Everything down: the control plane is the likelier culprit.
	a.kill("n1")
	testenv.Eventually(t, 20*time.Second, func() error {
		if err := unreachable(c.node(t, "n1")); err != nil {
			return err
		}
		tainted, err := noExecute()
		if err != nil {
			return err
		}
		if len(tainted) > 0 {
			return fmt.Errorf("NoExecute taints remain on %v with every node down", tainted)
		}
		return nil
	})
	// One node back: 4 of 5 still down, a partial disruption; still no
	// evictions, though the controller keeps working (n5's taints go).
	a.revive(t, "n5", 200*time.Millisecond)
	testenv.Eventually(t, 20*time.Second, func() error { return checkHealthy(c.node(t, "n5")) })
	if tainted, err := noExecute(); err != nil || len(tainted) > 0 {
		t.Fatalf("NoExecute taints on %v (err %v) in a partial disruption of a small cluster", tainted, err)
	}
	if err := survivingPods(evicted); err != nil {
		t.Fatal(err)
	}
}
