package gc_test

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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/drover/drover/internal/controller/gc"
	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/testenv"
	"github.com/drover/drover/internal/testenv/nodesim"
)

type cluster struct {
	kube kubernetes.Interface
	ctx  context.Context
}

// sharedResources are the resources the collector watches through the
// typed informers it shares with the ReplicaSet controller in shared mode.
var sharedResources = []schema.GroupVersionResource{
	{Version: "v1", Resource: "pods"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
}

// bothModes runs scenario against a collector with metadata informers
// only, and against one that shares the ReplicaSet controller's typed
// informers for pods and ReplicaSets (as in the control plane).
func bothModes(t *testing.T, scenario func(t *testing.T, c *cluster)) {
	t.Run("metadata", func(t *testing.T) { scenario(t, start(t)) })
	t.Run("shared", func(t *testing.T) { scenario(t, startShared(t)) })
}

// start runs an API server, simulated nodes, the ReplicaSet controller and
// the garbage collector, which watches everything as metadata.
func start(t testing.TB) *cluster { return startWith(t, false) }

// startShared is start with the collector watching pods and ReplicaSets
// through the ReplicaSet controller's typed informers.
func startShared(t testing.TB) *cluster { return startWith(t, true) }

func startWith(t testing.TB, shared bool) *cluster {
	t.Helper()
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var factory informers.SharedInformerFactory
	var opts gc.Options
	if shared {
		factory = informers.NewSharedInformerFactory(env.Kube, time.Minute)
		opts = gc.Options{Informers: factory, Shared: sharedResources}
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if factory != nil {
			factory.Shutdown()
		}
	})
	log := testenv.Logger(t)
	if _, err := nodesim.Start(ctx, env.Kube, nodesim.Options{Nodes: []string{"n1", "n2"}, Bind: true, Logger: log}); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := replicaset.Run(ctx, env.Kube, log, replicaset.Options{Informers: factory}); err != nil {
			t.Errorf("replicaset.Run: %v", err)
		}
	})
	wg.Go(func() {
		if err := gc.Run(ctx, env.Kube, metadata.NewForConfigOrDie(env.Config), memory.NewMemCacheClient(env.Kube.Discovery()), log, opts); err != nil {
			t.Errorf("gc.Run: %v", err)
		}
	})
	return &cluster{kube: env.Kube, ctx: ctx}
}

var yes = true

func newRS(name string, replicas int32, owners ...metav1.OwnerReference) *appsv1.ReplicaSet {
	l := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", OwnerReferences: owners},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
}

// runRS creates a ReplicaSet and waits for its pods to be ready.
func (c *cluster) runRS(t testing.TB, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	t.Helper()
	created, err := c.kube.AppsV1().ReplicaSets("default").Create(c.ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		got, err := c.kube.AppsV1().ReplicaSets("default").Get(c.ctx, rs.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.ReadyReplicas != *rs.Spec.Replicas {
			return fmt.Errorf("%d ready", got.Status.ReadyReplicas)
		}
		return nil
	})
	return created
}

// pods lists every pod labelled app=name, terminating ones included.
func (c *cluster) pods(t testing.TB, name string) []corev1.Pod {
	t.Helper()
	list, err := c.kube.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func (c *cluster) deleteRS(t testing.TB, name string, policy metav1.DeletionPropagation) {
	t.Helper()
	if err := c.kube.AppsV1().ReplicaSets("default").Delete(c.ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) waitRSGone(t *testing.T, name string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		rs, err := c.kube.AppsV1().ReplicaSets("default").Get(c.ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("replicaset %s still there (finalizers %v)", name, rs.Finalizers)
	})
}

func (c *cluster) waitNoPods(t *testing.T, name string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := len(c.pods(t, name)); n > 0 {
			return fmt.Errorf("%d pods of %s left", n, name)
		}
		return nil
	})
}

func TestBackground(t *testing.T) { bothModes(t, testBackground) }

func testBackground(t *testing.T, c *cluster) {
	c.runRS(t, newRS("bg", 3))
	c.deleteRS(t, "bg", metav1.DeletePropagationBackground)
	c.waitRSGone(t, "bg")
	c.waitNoPods(t, "bg")
}

func TestForeground(t *testing.T) { bothModes(t, testForeground) }

func testForeground(t *testing.T, c *cluster) {
	c.runRS(t, newRS("fg", 3))
	c.deleteRS(t, "fg", metav1.DeletePropagationForeground)
	rs, err := c.kube.AppsV1().ReplicaSets("default").Get(c.ctx, "fg", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the replicaset must stay while its pods exist: %v", err)
	}
	if rs.DeletionTimestamp == nil || !slices.Contains(rs.Finalizers, metav1.FinalizerDeleteDependents) {
		t.Fatalf("replicaset: deletionTimestamp %v finalizers %v", rs.DeletionTimestamp, rs.Finalizers)
	}
	c.waitRSGone(t, "fg")
	// The replicaset goes only after its pods: none may be left, not even
	// terminating.
	if pods := c.pods(t, "fg"); len(pods) > 0 {
		t.Errorf("replicaset gone while %d pods remain", len(pods))
	}
}

func TestOrphan(t *testing.T) { bothModes(t, testOrphan) }

func testOrphan(t *testing.T, c *cluster) {
	rs := c.runRS(t, newRS("orph", 2))
	c.deleteRS(t, "orph", metav1.DeletePropagationOrphan)
	c.waitRSGone(t, "orph")
	pods := c.pods(t, "orph")
	if len(pods) != 2 {
		t.Fatalf("%d pods left, want the 2 orphans", len(pods))
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			t.Errorf("orphan %s is being deleted", p.Name)
		}
		for _, r := range p.OwnerReferences {
			if r.UID == rs.UID {
				t.Errorf("orphan %s still refers to the replicaset", p.Name)
			}
		}
	}
}

func TestMissingOwnerCollected(t *testing.T) { bothModes(t, testMissingOwnerCollected) }

func testMissingOwnerCollected(t *testing.T, c *cluster) {
	ghost := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "ghost", UID: "no-such-uid", Controller: &yes, BlockOwnerDeletion: &yes}
	if _, err := c.kube.AppsV1().ReplicaSets("default").Create(c.ctx, newRS("ghostly", 2, ghost), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitRSGone(t, "ghostly")
	c.waitNoPods(t, "ghostly")
}

func TestUIDMismatchAndAnyResource(t *testing.T) { bothModes(t, testUIDMismatchAndAnyResource) }

func testUIDMismatchAndAnyResource(t *testing.T, c *cluster) {
	cms := c.kube.CoreV1().ConfigMaps("default")
	parent, err := cms.Create(c.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "parent"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	child := func(name string, uid types.UID) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: "parent", UID: uid},
		}}}
	}
	for _, cm := range []*corev1.ConfigMap{child("good", parent.UID), child("stale", "an-earlier-parent")} {
		if _, err := cms.Create(c.ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A secret and a service owned by the live parent stay; so does "good".
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "owned", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "v1", Kind: "ConfigMap", Name: "parent", UID: parent.UID},
	}}}
	if _, err := c.kube.CoreV1().Secrets("default").Create(c.ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if _, err := cms.Get(c.ctx, "stale", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("child of a parent with another uid still there (%v)", err)
		}
		return nil
	})
	if _, err := cms.Get(c.ctx, "good", metav1.GetOptions{}); err != nil {
		t.Fatalf("child of the live parent: %v", err)
	}
	if err := cms.Delete(c.ctx, "parent", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if _, err := cms.Get(c.ctx, "good", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("configmap child still there (%v)", err)
		}
		if _, err := c.kube.CoreV1().Secrets("default").Get(c.ctx, "owned", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("secret child still there (%v)", err)
		}
		return nil
	})
}

// TestForegroundChain deletes a Deployment in the foreground: its
// ReplicaSet goes in the foreground too, so the Deployment goes last.
func TestForegroundChain(t *testing.T) { bothModes(t, testForegroundChain) }

func testForegroundChain(t *testing.T, c *cluster) {
	l := map[string]string{"app": "chain"}
	one := int32(1)
	d, err := c.kube.AppsV1().Deployments("default").Create(c.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "chain"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.runRS(t, newRS("chain", 2, metav1.OwnerReference{
		APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes, BlockOwnerDeletion: &yes,
	}))
	fg := metav1.DeletePropagationForeground
	if err := c.kube.AppsV1().Deployments("default").Delete(c.ctx, "chain", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		_, err := c.kube.AppsV1().Deployments("default").Get(c.ctx, "chain", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("deployment still there (%v)", err)
	})
	if _, err := c.kube.AppsV1().ReplicaSets("default").Get(c.ctx, "chain", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("deployment gone before its replicaset: %v", err)
	}
	if pods := c.pods(t, "chain"); len(pods) > 0 {
		t.Errorf("deployment gone before its %d pods", len(pods))
	}
}
