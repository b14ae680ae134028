package disruption_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubectl/pkg/drain"

	"github.com/drover/drover/internal/controller/disruption"
	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/testenv"
	"github.com/drover/drover/internal/testenv/nodesim"
)

type cluster struct {
	env  *testenv.Env
	kube kubernetes.Interface
	ctx  context.Context
}

// start runs an API server, three simulated nodes that bind pods, and the
// ReplicaSet and disruption controllers.
func start(t *testing.T) *cluster {
	t.Helper()
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	log := testenv.Logger(t)
	if _, err := nodesim.Start(ctx, env.Kube, nodesim.Options{Nodes: []string{"n1", "n2", "n3"}, Bind: true, Logger: log}); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := replicaset.Run(ctx, env.Kube, log, replicaset.Options{}); err != nil {
			t.Errorf("replicaset.Run: %v", err)
		}
	})
	wg.Go(func() {
		if err := disruption.Run(ctx, env.Kube, log); err != nil {
			t.Errorf("disruption.Run: %v", err)
		}
	})
	return &cluster{env: env, kube: env.Kube, ctx: ctx}
}

func labelsOf(app string) map[string]string { return map[string]string{"app": app} }

func (c *cluster) replicaSet(t *testing.T, name string, replicas int32, owner *metav1.OwnerReference) *appsv1.ReplicaSet {
	t.Helper()
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labelsOf(name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labelsOf(name)},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	if owner != nil {
		rs.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	out, err := c.kube.AppsV1().ReplicaSets("default").Create(c.ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) budget(t *testing.T, name, app string, minAvailable, maxUnavailable *intstr.IntOrString) {
	t.Helper()
	if _, err := c.kube.PolicyV1().PodDisruptionBudgets("default").Create(c.ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: minAvailable, MaxUnavailable: maxUnavailable,
			Selector: &metav1.LabelSelector{MatchLabels: labelsOf(app)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until the budget's status has the given counts and is
// current.
func (c *cluster) waitStatus(t *testing.T, name string, healthy, desired, expected, allowed int32) *policyv1.PodDisruptionBudget {
	t.Helper()
	var pdb *policyv1.PodDisruptionBudget
	testenv.Eventually(t, 20*time.Second, func() error {
		var err error
		if pdb, err = c.kube.PolicyV1().PodDisruptionBudgets("default").Get(c.ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		s := pdb.Status
		if s.ObservedGeneration != pdb.Generation || s.CurrentHealthy != healthy || s.DesiredHealthy != desired ||
			s.ExpectedPods != expected || s.DisruptionsAllowed != allowed {
			return fmt.Errorf("status healthy/desired/expected/allowed = %d/%d/%d/%d (generation %d/%d), want %d/%d/%d/%d",
				s.CurrentHealthy, s.DesiredHealthy, s.ExpectedPods, s.DisruptionsAllowed, s.ObservedGeneration, pdb.Generation,
				healthy, desired, expected, allowed)
		}
		return nil
	})
	return pdb
}

func intOr(v int) *intstr.IntOrString  { x := intstr.FromInt32(int32(v)); return &x }
func pct(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }
func ptr[T any](v T) *T                { return &v }

// availability follows the ready, not deleting pods of an app from a
// watch, remembering the lowest count once all were up.
type availability struct {
	mu               sync.Mutex
	now, lowest, all int
	tracking         bool
}

func (c *cluster) watchAvailable(t *testing.T, app string, all int) *availability {
	a := &availability{lowest: all, all: all}
	factory := informers.NewSharedInformerFactory(c.kube, 0)
	inf := factory.Core().V1().Pods().Informer()
	recount := func(any) {
		n := 0
		for _, obj := range inf.GetStore().List() {
			p := obj.(*corev1.Pod)
			if p.Labels["app"] == app && p.DeletionTimestamp == nil && disruption.PodReady(p) {
				n++
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.now = n
		if n == a.all {
			a.tracking = true
		}
		if a.tracking && n < a.lowest {
			a.lowest = n
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: recount, UpdateFunc: func(_, o any) { recount(o) }, DeleteFunc: recount})
	ctx, cancel := context.WithCancel(c.ctx)
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	return a
}

func (a *availability) get() (now, lowest int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now, a.lowest
}

// drainSetup runs six replicas of web with minAvailable 5 and returns the
// pods on n1.
func drainSetup(t *testing.T, c *cluster) (*availability, []corev1.Pod) {
	t.Helper()
	avail := c.watchAvailable(t, "web", 6)
	c.replicaSet(t, "web", 6, nil)
	c.budget(t, "web", "web", intOr(5), nil)
	c.waitStatus(t, "web", 6, 5, 6, 1)
	list, err := c.kube.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1", LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) < 2 {
		t.Fatalf("n1 runs %d pods; the drain needs at least 2", len(list.Items))
	}
	return avail, list.Items
}

// drained waits until the drained pods are gone and all six replicas are
// back, and checks the budget held throughout.
func drained(t *testing.T, c *cluster, avail *availability, pods []corev1.Pod) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		for _, p := range pods {
			if _, err := c.kube.CoreV1().Pods("default").Get(c.ctx, p.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("drained pod %s still exists", p.Name)
			}
		}
		if now, _ := avail.get(); now != 6 {
			return fmt.Errorf("%d of 6 available", now)
		}
		return nil
	})
	if _, lowest := avail.get(); lowest < 5 {
		t.Fatalf("available pods fell to %d during the drain; the budget says 5", lowest)
	}
}

// TestDrainNeverBreaksTheBudget: six replicas with minAvailable 5; every
// pod of one node is evicted one at a time, retrying on 429 as kubectl
// drain does, while the ReplicaSet replaces them. Available pods never drop
// below 5.
func TestDrainNeverBreaksTheBudget(t *testing.T) {
	c := start(t)
	avail, pods := drainSetup(t, c)
	node, err := c.kube.CoreV1().Nodes().Get(c.ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.Unschedulable = true
	if _, err := c.kube.CoreV1().Nodes().Update(c.ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, p := range pods {
		testenv.Eventually(t, 30*time.Second, func() error {
			err := c.kube.PolicyV1().Evictions("default").Evict(c.ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: "default"}})
			if apierrors.IsTooManyRequests(err) {
				refused++
			}
			return err
		})
	}
	t.Logf("drained %d pods of n1; %d evictions refused on the way", len(pods), refused)
	drained(t, c, avail, pods)
}

// TestKubectlDrain: kubectl's own drain (k8s.io/kubectl/pkg/drain, what
// `kubectl drain` runs) finds the eviction subresource, evicts the node's
// pods concurrently and retries the refused ones; the budget holds.
func TestKubectlDrain(t *testing.T) {
	c := start(t)
	avail, pods := drainSetup(t, c)
	var out bytes.Buffer
	var mu sync.Mutex
	evicted := 0
	helper := &drain.Helper{
		Ctx: c.ctx, Client: c.kube, GracePeriodSeconds: -1, IgnoreAllDaemonSets: true,
		Timeout: time.Minute, EvictErrorRetryDelay: 50 * time.Millisecond, Out: &out, ErrOut: &out,
		OnPodDeletedOrEvicted: func(_ *corev1.Pod, usingEviction bool) {
			mu.Lock()
			defer mu.Unlock()
			if usingEviction {
				evicted++
			}
		},
	}
	node, err := c.kube.CoreV1().Nodes().Get(c.ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := drain.RunCordonOrUncordon(helper, node, true); err != nil {
		t.Fatalf("cordon: %v", err)
	}
	if err := drain.RunNodeDrain(helper, "n1"); err != nil {
		t.Fatalf("drain: %v\n%s", err, out.String())
	}
	t.Logf("kubectl drain said:\n%s", out.String())
	mu.Lock()
	if evicted != len(pods) {
		t.Errorf("drain evicted %d pods through the eviction API, want %d", evicted, len(pods))
	}
	mu.Unlock()
	drained(t, c, avail, pods)
	if n, _ := c.kube.CoreV1().Nodes().Get(c.ctx, "n1", metav1.GetOptions{}); !n.Spec.Unschedulable {
		t.Error("the drained node is not cordoned")
	}
}

// TestBudgetFollowsControllerScale: percentages and maxUnavailable count
// the pods the controllers want, not the pods that exist; a ReplicaSet of
// a Deployment counts as the Deployment.
func TestBudgetFollowsControllerScale(t *testing.T) {
	c := start(t)
	rs := c.replicaSet(t, "web", 4, nil)
	c.budget(t, "web", "web", nil, intOr(1))
	c.waitStatus(t, "web", 4, 3, 4, 1)

	testenv.Eventually(t, 10*time.Second, func() error { // the controller writes its status meanwhile
		rs, err := c.kube.AppsV1().ReplicaSets("default").Get(c.ctx, rs.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		rs.Spec.Replicas = ptr(int32(6))
		_, err = c.kube.AppsV1().ReplicaSets("default").Update(c.ctx, rs, metav1.UpdateOptions{})
		return err
	})
	c.waitStatus(t, "web", 6, 5, 6, 1)

	// A Deployment wanting 8 owns a ReplicaSet of 4 (no deployment
	// controller runs here to reconcile them): the budget expects 8.
	dep, err := c.kube.AppsV1().Deployments("default").Create(c.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(8)), Selector: &metav1.LabelSelector{MatchLabels: labelsOf("api")},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labelsOf("api")},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "api:1"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.replicaSet(t, "api", 4, &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: dep.UID, Controller: ptr(true)})
	c.budget(t, "api", "api", pct("50%"), nil)
	pdb := c.waitStatus(t, "api", 4, 4, 8, 0)
	cond := apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != policyv1.InsufficientPodsReason {
		t.Errorf("condition = %+v, want DisruptionAllowed False InsufficientPods", cond)
	}

	// A minAvailable change is observed.
	pdb.Spec.MinAvailable = pct("25%")
	if _, err := c.kube.PolicyV1().PodDisruptionBudgets("default").Update(c.ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pdb = c.waitStatus(t, "api", 4, 2, 8, 2)
	if cond := apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition); cond == nil || cond.Status != metav1.ConditionTrue ||
		cond.Reason != policyv1.SufficientPodsReason || cond.ObservedGeneration != pdb.Generation {
		t.Errorf("condition = %+v, want DisruptionAllowed True SufficientPods of generation %d", cond, pdb.Generation)
	}
}

// TestBudgetFailsSafe: when the pods' controller cannot be found the budget
// allows nothing and says why.
func TestBudgetFailsSafe(t *testing.T) {
	c := start(t)
	if _, err := c.kube.CoreV1().Pods("default").Create(c.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan-0", Labels: labelsOf("db"), OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "no-such-uid", Controller: ptr(true),
		}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.budget(t, "db", "db", nil, intOr(1))
	testenv.Eventually(t, 20*time.Second, func() error {
		pdb, err := c.kube.PolicyV1().PodDisruptionBudgets("default").Get(c.ctx, "db", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cond := apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != policyv1.SyncFailedReason || pdb.Status.DisruptionsAllowed != 0 {
			return fmt.Errorf("status %+v", pdb.Status)
		}
		return nil
	})
}
