package scheduler_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover/drover/internal/scheduler"
	"github.com/drover/drover/internal/testenv"
)

const wait = 20 * time.Second

// start runs the scheduler against env until the test ends.
func start(t testing.TB, env *testenv.Env, opts scheduler.Options) {
	t.Helper()
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff, opts.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- scheduler.Run(ctx, env.Kube, testenv.Logger(t), opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

type nodeOpt func(*corev1.Node)

func taint(k, v string) nodeOpt {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffectNoSchedule})
	}
}
func label(k, v string) nodeOpt { return func(n *corev1.Node) { n.Labels[k] = v } }
func cordoned(n *corev1.Node)   { n.Spec.Unschedulable = true }

// createNode registers a Ready node with the given allocatable CPU and
// 16Gi of memory, as an agent would.
func createNode(t testing.TB, env *testenv.Env, name, cpu string, opts ...nodeOpt) *corev1.Node {
	t.Helper()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
	}
	for _, o := range opts {
		o(n)
	}
	ctx := context.Background()
	created, err := env.Kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating node %s: %v", name, err)
	}
	list := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse("16Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	created.Status = corev1.NodeStatus{
		Capacity: list, Allocatable: list,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
	}
	out, err := env.Kube.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("node %s status: %v", name, err)
	}
	return out
}

type podOpt func(*corev1.Pod)

func owner(uid string) podOpt {
	return func(p *corev1.Pod) {
		t := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: types.UID(uid), Controller: &t}}
	}
}
func tolerates(k string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
}
func selector(k, v string) podOpt {
	return func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{k: v} }
}

func createPod(t testing.TB, env *testenv.Env, name, cpu string, opts ...podOpt) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "example.local/web:1.0",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}},
		}}},
	}
	for _, o := range opts {
		o(p)
	}
	out, err := env.Kube.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	return out
}

func listPods(t testing.TB, env *testenv.Env) []corev1.Pod {
	t.Helper()
	l, err := env.Kube.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	return l.Items
}

func getPod(t testing.TB, env *testenv.Env, name string) *corev1.Pod {
	t.Helper()
	p, err := env.Kube.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting pod %s: %v", name, err)
	}
	return p
}

// waitBound waits for every named pod to be bound and returns where.
func waitBound(t testing.TB, env *testenv.Env, names ...string) map[string]string {
	t.Helper()
	where := map[string]string{}
	testenv.Eventually(t, wait, func() error {
		for _, n := range names {
			p := getPod(t, env, n)
			if p.Spec.NodeName == "" {
				return fmt.Errorf("pod %s not bound", n)
			}
			where[n] = p.Spec.NodeName
		}
		return nil
	})
	return where
}

// waitUnschedulable waits for a pod's PodScheduled=False condition and
// returns its message.
func waitUnschedulable(t testing.TB, env *testenv.Env, name string) string {
	t.Helper()
	var msg string
	testenv.Eventually(t, wait, func() error {
		p := getPod(t, env, name)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == "Unschedulable" {
				msg = c.Message
				return nil
			}
		}
		return fmt.Errorf("pod %s (node %q) has no PodScheduled=False condition: %+v", name, p.Spec.NodeName, p.Status.Conditions)
	})
	return msg
}

// waitEvent waits for an event about a pod with the given reason and
// message.
func waitEvent(t testing.TB, env *testenv.Env, pod, reason, typ, message string) {
	t.Helper()
	testenv.Eventually(t, wait, func() error {
		l, err := env.Kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		var seen []string
		for _, e := range l.Items {
			if e.InvolvedObject.Name != pod || e.InvolvedObject.Kind != "Pod" {
				continue
			}
			if e.Reason == reason && e.Type == typ && e.Message == message && e.Source.Component == "default-scheduler" {
				return nil
			}
			seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
		}
		return fmt.Errorf("no %s %s event %q for %s; saw %q", typ, reason, message, pod, seen)
	})
}

func TestReplicasSpreadAcrossNodes(t *testing.T) {
	env := testenv.Start(t)
	for _, n := range []string{"n1", "n2", "n3"} {
		createNode(t, env, n, "4")
	}
	start(t, env, scheduler.Options{})
	var names []string
	for i := range 6 {
		names = append(names, createPod(t, env, fmt.Sprintf("web-%d", i), "100m", owner("rs-web")).Name)
	}
	where := waitBound(t, env, names...)
	per := map[string]int{}
	for _, n := range where {
		per[n]++
	}
	if per["n1"] != 2 || per["n2"] != 2 || per["n3"] != 2 {
		t.Fatalf("replicas per node %v, want 2 each", per)
	}
	waitEvent(t, env, "web-0", "Scheduled", corev1.EventTypeNormal, "Successfully assigned default/web-0 to "+where["web-0"])
	for _, name := range names {
		p := getPod(t, env, name)
		ok := false
		for _, c := range p.Status.Conditions {
			ok = ok || (c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue)
		}
		if !ok {
			t.Errorf("pod %s bound without PodScheduled=True: %+v", name, p.Status.Conditions)
		}
	}
}

func TestTooBigPodWaitsForABigNode(t *testing.T) {
	env := testenv.Start(t)
	createNode(t, env, "small-1", "1")
	createNode(t, env, "small-2", "1", taint("dedicated", "db"))
	createNode(t, env, "small-3", "1")
	start(t, env, scheduler.Options{})
	createPod(t, env, "big", "4")
	want := "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu. " +
		"preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
	if msg := waitUnschedulable(t, env, "big"); msg != want {
		t.Fatalf("condition message\n got: %s\nwant: %s", msg, want)
	}
	waitEvent(t, env, "big", "FailedScheduling", corev1.EventTypeWarning, want)
	if p := getPod(t, env, "big"); p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Fatalf("pod on %q phase %s, want unbound and Pending", p.Spec.NodeName, p.Status.Phase)
	}

	createNode(t, env, "large", "8")
	if where := waitBound(t, env, "big"); where["big"] != "large" {
		t.Fatalf("bound to %s, want large", where["big"])
	}
	waitEvent(t, env, "big", "Scheduled", corev1.EventTypeNormal, "Successfully assigned default/big to large")
}

func TestTaintedNodeTakesOnlyTolerantPods(t *testing.T) {
	env := testenv.Start(t)
	createNode(t, env, "db", "64", taint("dedicated", "db"))
	createNode(t, env, "general", "2")
	start(t, env, scheduler.Options{})
	var names []string
	for i := range 8 {
		names = append(names, createPod(t, env, fmt.Sprintf("app-%d", i), "100m").Name)
	}
	names = append(names, createPod(t, env, "tolerant", "100m", tolerates("dedicated"), selector(corev1.LabelHostname, "db")).Name)
	where := waitBound(t, env, names...)
	for name, node := range where {
		if node == "db" && name != "tolerant" {
			t.Errorf("pod %s without toleration placed on tainted node", name)
		}
	}
	if where["tolerant"] != "db" {
		t.Errorf("tolerant pod on %s, want db", where["tolerant"])
	}
}

func TestNodeSelectorAndSchedulerName(t *testing.T) {
	env := testenv.Start(t)
	createNode(t, env, "hdd", "32", label("disk", "hdd"))
	createNode(t, env, "ssd", "2", label("disk", "ssd"))
	start(t, env, scheduler.Options{})
	other := createPod(t, env, "other", "100m", func(p *corev1.Pod) { p.Spec.SchedulerName = "someone-else" })
	var names []string
	for i := range 3 {
		names = append(names, createPod(t, env, fmt.Sprintf("fast-%d", i), "100m", selector("disk", "ssd")).Name)
	}
	for name, node := range waitBound(t, env, names...) {
		if node != "ssd" {
			t.Errorf("pod %s on %s, want ssd", name, node)
		}
	}
	// Created first, so the scheduler would have reached it by now.
	if p := getPod(t, env, other.Name); p.Spec.NodeName != "" || len(p.Status.Conditions) != 0 {
		t.Errorf("pod for another scheduler touched: node %q, conditions %+v", p.Spec.NodeName, p.Status.Conditions)
	}
}

func TestNeverOvercommits(t *testing.T) {
	env := testenv.Start(t)
	createNode(t, env, "a", "4")
	createNode(t, env, "b", "4")
	start(t, env, scheduler.Options{})
	for i := range 10 {
		createPod(t, env, fmt.Sprintf("p-%d", i), "1")
	}
	testenv.Eventually(t, wait, func() error {
		bound, unschedulable := 0, 0
		for _, p := range listPods(t, env) {
			if p.Spec.NodeName != "" {
				bound++
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Reason == "Unschedulable" {
					unschedulable++
				}
			}
		}
		if bound != 8 || unschedulable != 2 {
			return fmt.Errorf("%d bound and %d unschedulable, want 8 and 2", bound, unschedulable)
		}
		return nil
	})
	per := map[string]int{}
	for _, p := range listPods(t, env) {
		if p.Spec.NodeName != "" {
			per[p.Spec.NodeName]++
		}
	}
	if per["a"] != 4 || per["b"] != 4 {
		t.Fatalf("pods per node %v, want 4 and 4", per)
	}
	// Deleting a bound pod frees a CPU: one waiting pod takes it.
	for _, p := range listPods(t, env) {
		if p.Spec.NodeName == "a" {
			zero := int64(0)
			if err := env.Kube.CoreV1().Pods("default").Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	testenv.Eventually(t, wait, func() error {
		onA := 0
		for _, p := range listPods(t, env) {
			if p.Spec.NodeName == "a" {
				onA++
			}
		}
		if onA != 4 {
			return fmt.Errorf("%d pods on a, want 4 again", onA)
		}
		return nil
	})
}

func TestCordonedNodeSkipped(t *testing.T) {
	env := testenv.Start(t)
	createNode(t, env, "cordoned", "64", cordoned)
	createNode(t, env, "open", "2")
	start(t, env, scheduler.Options{})
	if where := waitBound(t, env, createPod(t, env, "p", "100m").Name); where["p"] != "open" {
		t.Fatalf("pod on %s, want open", where["p"])
	}
	// Only the cordoned node fits: pending with upstream's reason, until uncordoned.
	createPod(t, env, "q", "8")
	msg := waitUnschedulable(t, env, "q")
	if !strings.HasPrefix(msg, "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable.") {
		t.Fatalf("message %q", msg)
	}
	n, err := env.Kube.CoreV1().Nodes().Get(context.Background(), "cordoned", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = false
	if _, err := env.Kube.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if where := waitBound(t, env, "q"); where["q"] != "cordoned" {
		t.Fatalf("pod on %s after uncordon, want cordoned", where["q"])
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSchedulingGates(t *testing.T) {
	env := testenv.Start(t)
	createNode(t, env, "n", "4")
	start(t, env, scheduler.Options{})
	createPod(t, env, "gated", "100m", func(p *corev1.Pod) {
		p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
	})
	testenv.Eventually(t, wait, func() error {
		p := getPod(t, env, "gated")
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse &&
				c.Reason == "SchedulingGated" && c.Message == scheduler.MessageGated {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v, node %q", p.Status.Conditions, p.Spec.NodeName)
	})
	p := getPod(t, env, "gated")
	if p.Spec.NodeName != "" {
		t.Fatalf("gated pod bound to %s", p.Spec.NodeName)
	}
	p.Spec.SchedulingGates = nil
	if _, err := env.Kube.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, env, "gated")
}
