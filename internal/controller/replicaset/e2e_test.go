package replicaset_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/testenv"
	"github.com/drover/drover/internal/testenv/nodesim"
)

// cluster is an API server with simulated nodes and the controller running.
type cluster struct {
	env  *testenv.Env
	kube kubernetes.Interface
	ctx  context.Context
	// created counts the pods ever created (distinct UIDs of ADDED events).
	created *creations
}

type creations struct {
	mu   sync.Mutex
	uids map[types.UID]string
}

func (c *creations) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, name := range c.uids {
		if len(name) > len(prefix) && name[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func start(t testing.TB) *cluster {
	t.Helper()
	return startAfter(t, nil)
}

// startAfter starts the cluster and runs setup (if any) before the controller
// starts, so that what setup creates is in the controller's first listing
// rather than racing its watch; then it starts the controller.
func startAfter(t testing.TB, setup func(testing.TB, *cluster)) *cluster {
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
	created := &creations{uids: map[types.UID]string{}}
	factory := informers.NewSharedInformerFactory(env.Kube, 0)
	inf := factory.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		p := obj.(*corev1.Pod)
		created.mu.Lock()
		created.uids[p.UID] = p.Name
		created.mu.Unlock()
	}})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("pod watch did not sync")
	}
	c := &cluster{env: env, kube: env.Kube, ctx: ctx, created: created}
	if setup != nil {
		setup(t, c)
	}
	wg.Go(func() {
		if err := replicaset.Run(ctx, env.Kube, log, replicaset.Options{}); err != nil {
			t.Errorf("replicaset.Run: %v", err)
		}
	})
	return c
}

func newRS(name string, replicas, minReady int32) *appsv1.ReplicaSet {
	l := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &replicas,
			MinReadySeconds: minReady,
			Selector:        &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
}

func (c *cluster) create(t testing.TB, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	t.Helper()
	out, err := c.kube.AppsV1().ReplicaSets(rs.Namespace).Create(c.ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) rs(t testing.TB, name string) *appsv1.ReplicaSet {
	t.Helper()
	rs, err := c.kube.AppsV1().ReplicaSets("default").Get(c.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// pods returns the live (not being deleted) pods with label app=name.
func (c *cluster) pods(t testing.TB, name string) []corev1.Pod {
	t.Helper()
	list, err := c.kube.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: labels.Set{"app": name}.String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitStatus waits until the ReplicaSet's status has these counts for
// its current generation.
func (c *cluster) waitStatus(t testing.TB, name string, replicas, ready, available int32) *appsv1.ReplicaSet {
	t.Helper()
	var rs *appsv1.ReplicaSet
	testenv.Eventually(t, 30*time.Second, func() error {
		rs = c.rs(t, name)
		s := rs.Status
		if s.Replicas != replicas || s.ReadyReplicas != ready || s.AvailableReplicas != available || s.FullyLabeledReplicas != replicas || s.ObservedGeneration != rs.Generation {
			return fmt.Errorf("status %+v (generation %d), want replicas %d ready %d available %d", s, rs.Generation, replicas, ready, available)
		}
		return nil
	})
	return rs
}

func (c *cluster) scale(t testing.TB, name string, n int32) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n)
	if _, err := c.kube.AppsV1().ReplicaSets("default").Patch(c.ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestReplaceScaleDownNoOverCreation(t *testing.T) {
	c := start(t)
	rs := c.create(t, newRS("web", 5, 0))
	c.waitStatus(t, "web", 5, 5, 5)
	pods := c.pods(t, "web")
	if len(pods) != 5 {
		t.Fatalf("%d pods, want 5", len(pods))
	}
	nodes := map[string]int{}
	for _, p := range pods {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.UID != rs.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("pod %s: controller ref %+v", p.Name, ref)
		}
		if len(p.Name) != len("web-")+5 || p.Name[:4] != "web-" {
			t.Errorf("pod name %q, want web-<5 random>", p.Name)
		}
		nodes[p.Spec.NodeName]++
	}

	// Delete two pods behind the controller's back.
	for _, p := range pods[:2] {
		if err := c.kube.CoreV1().Pods("default").Delete(c.ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		live := c.pods(t, "web")
		names := map[string]bool{}
		for _, p := range live {
			names[p.Name] = true
		}
		if len(live) != 5 || names[pods[0].Name] || names[pods[1].Name] {
			return fmt.Errorf("%d live pods %v", len(live), names)
		}
		return nil
	})
	c.waitStatus(t, "web", 5, 5, 5)
	if n := c.created.count("web-"); n != 7 {
		t.Fatalf("%d pods created in all, want exactly 7 (5 + 2 replacements)", n)
	}

	// Make two pods unready; scaling down to 2 must take those first.
	pods = c.pods(t, "web")
	unready := []string{pods[1].Name, pods[3].Name}
	for _, name := range unready {
		p, err := c.kube.CoreV1().Pods("default").Get(c.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Annotations = map[string]string{nodesim.NeverReady: "true"}
		if p, err = c.kube.CoreV1().Pods("default").Update(c.ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].Status = corev1.ConditionFalse
				p.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
		}
		if _, err := c.kube.CoreV1().Pods("default").UpdateStatus(c.ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.waitStatus(t, "web", 5, 3, 3)
	c.scale(t, "web", 2)
	c.waitStatus(t, "web", 2, 2, 2)
	for _, p := range c.pods(t, "web") {
		if slices.Contains(unready, p.Name) || !ready(&p) {
			t.Errorf("pod %s kept after scale-down, but unready pods %v should have gone first", p.Name, unready)
		}
	}
	if n := c.created.count("web-"); n != 7 {
		t.Errorf("%d pods created in all, want still 7", n)
	}
}

func TestAdoptAndRelease(t *testing.T) {
	// The orphan exists before the controller starts: created after, it could
	// reach the controller's pod watch later than the ReplicaSet reaches its
	// ReplicaSet watch (separate streams), and the controller would rightly
	// create a pod it then deletes.
	c := startAfter(t, createReadyOrphan)
	rs := c.create(t, newRS("adopt", 2, 0))
	c.waitStatus(t, "adopt", 2, 2, 2)
	p, err := c.kube.CoreV1().Pods("default").Get(c.ctx, "orphan", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != rs.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Fatalf("orphan not adopted: owner references %+v", p.OwnerReferences)
	}
	if n := c.created.count("adopt-"); n != 1 {
		t.Errorf("%d pods created, want 1 (the adopted orphan counts)", n)
	}

	// Relabel the adopted pod: released, and replaced.
	p.Labels = map[string]string{"app": "elsewhere"}
	if _, err := c.kube.CoreV1().Pods("default").Update(c.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		p, err := c.kube.CoreV1().Pods("default").Get(c.ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.OwnerReferences) != 0 {
			return fmt.Errorf("still owned: %+v", p.OwnerReferences)
		}
		return nil
	})
	// The status from before the release already reads 2/2/2: wait for the
	// replacement itself first.
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := c.created.count("adopt-"); n < 2 {
			return fmt.Errorf("%d pods created, want 2 (one replacing the released pod)", n)
		}
		return nil
	})
	c.waitStatus(t, "adopt", 2, 2, 2)
	if n := c.created.count("adopt-"); n != 2 {
		t.Errorf("%d pods created, want 2 (one replacing the released pod)", n)
	}
}

func TestMinReadySeconds(t *testing.T) {
	c := start(t)
	// An hour: ready pods stay unavailable for the whole test.
	c.create(t, newRS("slow", 2, 3600))
	c.waitStatus(t, "slow", 2, 2, 0)

	// One second: available once the controller looks again after it.
	c.create(t, newRS("quick", 2, 1))
	c.waitStatus(t, "quick", 2, 2, 2)
	if rs := c.rs(t, "slow"); rs.Status.AvailableReplicas != 0 {
		t.Errorf("slow: availableReplicas %d before minReadySeconds passed", rs.Status.AvailableReplicas)
	}
}

func TestDeletedReplicaSetForgetsPods(t *testing.T) {
	c := start(t)
	c.create(t, newRS("gone", 2, 0))
	c.waitStatus(t, "gone", 2, 2, 2)
	orphan := metav1.DeletePropagationOrphan
	if err := c.kube.AppsV1().ReplicaSets("default").Delete(c.ctx, "gone", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	// With no garbage collector running the RS stays, marked, with the
	// orphan finalizer; it must neither adopt nor create.
	testenv.Eventually(t, 10*time.Second, func() error {
		rs, err := c.kube.AppsV1().ReplicaSets("default").Get(c.ctx, "gone", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if rs.DeletionTimestamp == nil {
			return fmt.Errorf("not marked for deletion")
		}
		return nil
	})
	if err := c.kube.CoreV1().Pods("default").DeleteCollection(c.ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=gone"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := len(c.pods(t, "gone")); n != 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
	if n := c.created.count("gone-"); n != 2 {
		t.Errorf("a ReplicaSet being deleted created pods: %d in all, want 2", n)
	}
}

// createReadyOrphan creates a pod labelled app=adopt with no owner and waits
// until a simulated node runs it and it is Ready.
func createReadyOrphan(t testing.TB, c *cluster) {
	t.Helper()
	orphan := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "default", Labels: map[string]string{"app": "adopt"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	if _, err := c.kube.CoreV1().Pods("default").Create(c.ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		p, err := c.kube.CoreV1().Pods("default").Get(c.ctx, "orphan", metav1.GetOptions{})
		if err != nil || !ready(p) {
			return fmt.Errorf("orphan not ready yet (%v)", err)
		}
		return nil
	})
}
