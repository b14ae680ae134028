package deployment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/drover/drover/internal/controller/deployment"
	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/testenv"
	"github.com/drover/drover/internal/testenv/nodesim"
)

const ns = metav1.NamespaceDefault

var deploymentKind = schema.GroupKind{Group: "apps", Kind: "Deployment"}

// start runs an API server, simulated nodes, the ReplicaSet controller and
// the Deployment controller until the test ends.
func start(t testing.TB) kubernetes.Interface {
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
		if err := deployment.Run(ctx, env.Kube, log, deployment.Options{}); err != nil {
			t.Errorf("deployment.Run: %v", err)
		}
	})
	return env.Kube
}

func newDeployment(name string, replicas int32, surge, unavail int) *appsv1.Deployment {
	s, u := intstr.FromInt(surge), intstr.FromInt(unavail)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
		},
	}
}

// rolloutStatus asks kubectl's own rollout status logic about d.
func rolloutStatus(t testing.TB, kube kubernetes.Interface, name string) (string, bool, error) {
	t.Helper()
	d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := polymorphichelpers.StatusViewerFor(deploymentKind)
	if err != nil {
		t.Fatal(err)
	}
	return viewer.Status(&unstructured.Unstructured{Object: m}, 0)
}

// waitRolledOut waits until `kubectl rollout status` would succeed.
func waitRolledOut(t testing.TB, kube kubernetes.Interface, name string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		msg, done, err := rolloutStatus(t, kube, name)
		if err != nil {
			return err
		}
		if !done {
			return fmt.Errorf("rollout status: %s", strings.TrimSpace(msg))
		}
		return nil
	})
}

func patch(t testing.TB, kube kubernetes.Interface, name string, body any) *appsv1.Deployment {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	d, err := kube.AppsV1().Deployments(ns).Patch(context.Background(), name, types.StrategicMergePatchType, b, metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patching %s: %v", name, err)
	}
	return d
}

func replicaSets(t testing.TB, kube kubernetes.Interface, app string) []appsv1.ReplicaSet {
	t.Helper()
	l, err := kube.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func rsByHash(t testing.TB, kube kubernetes.Interface, app, hash string) *appsv1.ReplicaSet {
	for _, rs := range replicaSets(t, kube, app) {
		if rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			return &rs
		}
	}
	return nil
}

// podCounts is what the watcher sees at one moment.
type podCounts struct {
	live, available int
	byHash          map[string]int // live pods per pod-template-hash
}

// watcher follows an app's pods and checks invariants at every event.
type watcher struct {
	mu         sync.Mutex
	pods       map[string]*corev1.Pod
	violations []string
	events     int
	maxLive    int
	minAvail   int
	exclusive  bool // live pods of two templates at once is a violation
	stop       func()
	done       chan struct{}
}

func isAvailable(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (w *watcher) countsLocked() podCounts {
	c := podCounts{byHash: map[string]int{}}
	for _, p := range w.pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		c.live++
		c.byHash[p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]]++
		if isAvailable(p) {
			c.available++
		}
	}
	return c
}

func (w *watcher) counts() podCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.countsLocked()
}

// watchPods starts a watcher on app's pods checking that at every event at
// most maxLive pods are live and at least minAvail available.
func watchPods(t testing.TB, kube kubernetes.Interface, app string, maxLive, minAvail int) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sel := labels.Set{"app": app}.String()
	list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{pods: map[string]*corev1.Pod{}, maxLive: maxLive, minAvail: minAvail, stop: cancel, done: make(chan struct{})}
	for i := range list.Items {
		w.pods[list.Items[i].Name] = &list.Items[i]
	}
	wi, err := kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer wi.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-wi.ResultChan():
				if !ok {
					w.mu.Lock()
					w.violations = append(w.violations, "watch closed early")
					w.mu.Unlock()
					return
				}
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				w.mu.Lock()
				w.events++
				if ev.Type == watch.Deleted {
					delete(w.pods, p.Name)
				} else {
					w.pods[p.Name] = p
				}
				c := w.countsLocked()
				if c.live > w.maxLive {
					w.violations = append(w.violations, fmt.Sprintf("event %d (%s %s): %d live pods > %d", w.events, ev.Type, p.Name, c.live, w.maxLive))
				}
				if w.exclusive && len(c.byHash) > 1 {
					w.violations = append(w.violations, fmt.Sprintf("event %d (%s %s): pods of two templates live: %v", w.events, ev.Type, p.Name, c.byHash))
				}
				if c.available < w.minAvail {
					w.violations = append(w.violations, fmt.Sprintf("event %d (%s %s): %d available pods < %d", w.events, ev.Type, p.Name, c.available, w.minAvail))
				}
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(w.finish)
	return w
}

func (w *watcher) finish() {
	w.stop()
	<-w.done
}

func (w *watcher) check(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) > 0 {
		t.Fatalf("%d invariant violations, first: %s", len(w.violations), strings.Join(w.violations[:min(5, len(w.violations))], "; "))
	}
	if w.events == 0 {
		t.Fatal("the watcher saw no events")
	}
}

// waitPods waits until app's live pods are exactly want of template hash
// hash, all available.
func waitPods(t testing.TB, w *watcher, hash string, want int, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		c := w.counts()
		if c.live != want || c.byHash[hash] != want || c.available != want {
			return fmt.Errorf("live %d available %d by hash %v; want %d of %s", c.live, c.available, c.byHash, want, hash)
		}
		return nil
	})
}

func TestRollingUpdateHistoryAndUndo(t *testing.T) {
	kube := start(t)
	ctx := context.Background()
	d := newDeployment("web", 10, 1, 1)
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, kube, "web", 60*time.Second)
	rss := replicaSets(t, kube, "web")
	if len(rss) != 1 {
		t.Fatalf("want one ReplicaSet, got %d", len(rss))
	}
	rev1 := rss[0]
	hash1 := rev1.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if rev1.Name != "web-"+hash1 || rev1.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != hash1 ||
		rev1.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash1 {
		t.Fatalf("ReplicaSet naming/labels: %s %v %v", rev1.Name, rev1.Spec.Selector, rev1.Spec.Template.Labels)
	}
	if ref := metav1.GetControllerOf(&rev1); ref == nil || ref.Kind != "Deployment" || ref.Name != "web" {
		t.Fatalf("controller ref %v", ref)
	}
	if rev1.Annotations[deployment.RevisionAnnotation] != "1" {
		t.Fatalf("revision annotations %v", rev1.Annotations)
	}

	w := watchPods(t, kube, "web", 11, 9)
	patch(t, kube, "web", map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]any{{"name": "web", "image": "web:2"}}}}}})
	waitRolledOut(t, kube, "web", 60*time.Second)
	var hash2 string
	for _, rs := range replicaSets(t, kube, "web") {
		if h := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != hash1 {
			hash2 = h
		}
	}
	waitPods(t, w, hash2, 10, 30*time.Second)
	if old := rsByHash(t, kube, "web", hash1); old == nil || *old.Spec.Replicas != 0 {
		t.Fatalf("old ReplicaSet not at 0: %+v", old)
	}
	if n := rsByHash(t, kube, "web", hash2); n.Annotations[deployment.RevisionAnnotation] != "2" || *n.Spec.Replicas != 10 {
		t.Fatalf("new ReplicaSet: %v replicas %d", n.Annotations, *n.Spec.Replicas)
	}
	got, err := kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations[deployment.RevisionAnnotation] != "2" || got.Annotations[deployment.LastGoodRevisionAnnotation] != "2" {
		t.Fatalf("deployment annotations %v", got.Annotations)
	}
	if c := deployment.Condition(got.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != deployment.ReasonNewRSAvailable ||
		c.Message != fmt.Sprintf("ReplicaSet %q has successfully progressed.", "web-"+hash2) {
		t.Fatalf("Progressing %+v", c)
	}
	if c := deployment.Condition(got.Status, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue {
		t.Fatalf("Available %+v", c)
	}

	// kubectl rollout history, with kubectl's own code.
	hv, err := polymorphichelpers.HistoryViewerFor(deploymentKind, kube)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := hv.ViewHistory(ns, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hist, "1         <none>") || !strings.Contains(hist, "2         <none>") {
		t.Fatalf("history:\n%s", hist)
	}

	// kubectl rollout undo, with kubectl's own code: revision 1 returns as 3.
	rb, err := polymorphichelpers.RollbackerFor(deploymentKind, kube)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Rollback(got, nil, 0, cmdutil.DryRunNone); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, kube, "web", 60*time.Second)
	waitPods(t, w, hash1, 10, 30*time.Second)
	back := rsByHash(t, kube, "web", hash1)
	if back.Annotations[deployment.RevisionAnnotation] != "3" || back.Annotations[deployment.RevisionHistoryAnnotation] != "1" {
		t.Fatalf("undone ReplicaSet annotations %v", back.Annotations)
	}
	if rs2 := rsByHash(t, kube, "web", hash2); *rs2.Spec.Replicas != 0 {
		t.Fatalf("revision 2 not scaled down: %d", *rs2.Spec.Replicas)
	}
	if n := len(replicaSets(t, kube, "web")); n != 2 {
		t.Fatalf("want 2 ReplicaSets after undo, got %d", n)
	}
	w.check(t)
}

func TestStalledRolloutHaltsThenRollsBackAutomatically(t *testing.T) {
	kube := start(t)
	ctx := context.Background()
	d := newDeployment("api", 10, 1, 1)
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, kube, "api", 60*time.Second)
	hash1 := replicaSets(t, kube, "api")[0].Labels[appsv1.DefaultDeploymentUniqueLabelKey]

	// A version whose pods never become ready, with a short deadline.
	w := watchPods(t, kube, "api", 11, 9)
	bad := map[string]any{"spec": map[string]any{
		"progressDeadlineSeconds": 3,
		"template": map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{nodesim.NeverReady: "true"}},
			"spec":     map[string]any{"containers": []map[string]any{{"name": "api", "image": "api:broken"}}},
		}}}
	patch(t, kube, "api", bad)
	testenv.Eventually(t, 60*time.Second, func() error {
		got, err := kube.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := deployment.Condition(got.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != deployment.TimedOutReason {
			return fmt.Errorf("Progressing %+v", c)
		}
		return nil
	})
	var hash2 string
	for _, rs := range replicaSets(t, kube, "api") {
		if h := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != hash1 {
			hash2 = h
		}
	}
	c := w.counts()
	if c.byHash[hash2] > 2 || c.byHash[hash2] == 0 {
		t.Fatalf("new pods %d, want 1..maxSurge+maxUnavailable=2", c.byHash[hash2])
	}
	if n := rsByHash(t, kube, "api", hash2); *n.Spec.Replicas > 2 {
		t.Fatalf("new ReplicaSet sized %d > 2", *n.Spec.Replicas)
	}
	if c.available < 9 || c.byHash[hash1] < 9 {
		t.Fatalf("old pods: %d of %d available", c.available, c.byHash[hash1])
	}
	if _, _, err := rolloutStatus(t, kube, "api"); err == nil || !strings.Contains(err.Error(), "exceeded its progress deadline") {
		t.Fatalf("kubectl rollout status must fail, got %v", err)
	}
	got, _ := kube.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if c := deployment.Condition(got.Status, appsv1.DeploymentProgressing); c.Message != fmt.Sprintf("ReplicaSet %q has timed out progressing.", "api-"+hash2) {
		t.Fatalf("Progressing message %q", c.Message)
	}

	// Opting in rolls the template back to revision 1.
	patch(t, kube, "api", map[string]any{"metadata": map[string]any{"annotations": map[string]string{deployment.AutoRollbackAnnotation: "true"}}})
	waitRolledOut(t, kube, "api", 60*time.Second)
	waitPods(t, w, hash1, 10, 30*time.Second)
	got, _ = kube.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if img := got.Spec.Template.Spec.Containers[0].Image; img != "web:1" {
		t.Fatalf("template image %s after rollback", img)
	}
	if got.Annotations[deployment.FailedRevisionHashAnnotation] != hash2 {
		t.Fatalf("failed hash %q, want %q", got.Annotations[deployment.FailedRevisionHashAnnotation], hash2)
	}
	ar := deployment.Condition(got.Status, deployment.ConditionAutoRollback)
	if ar == nil || ar.Status != corev1.ConditionTrue || !strings.Contains(ar.Message, "Rolled back from revision 2") ||
		!strings.Contains(ar.Message, "to revision 1") || !strings.Contains(ar.Message, "timed out progressing") {
		t.Fatalf("AutoRollback condition %+v", ar)
	}
	if n := rsByHash(t, kube, "api", hash2); *n.Spec.Replicas != 0 {
		t.Fatalf("failed ReplicaSet at %d", *n.Spec.Replicas)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		evs, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == deployment.ReasonAutoRollback && e.Type == corev1.EventTypeWarning && e.InvolvedObject.Name == "api" {
				return nil
			}
		}
		return fmt.Errorf("no AutoRollback event among %d", len(evs.Items))
	})

	// Applying the failed template again does not retry it.
	patch(t, kube, "api", bad)
	testenv.Eventually(t, 30*time.Second, func() error {
		got, err := kube.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		ar := deployment.Condition(got.Status, deployment.ConditionAutoRollback)
		if got.Status.ObservedGeneration != got.Generation || ar == nil || ar.Reason != deployment.ReasonFailedTemplateHeld {
			return fmt.Errorf("generation %d observed %d, AutoRollback %+v", got.Generation, got.Status.ObservedGeneration, ar)
		}
		return nil
	})
	if n := rsByHash(t, kube, "api", hash2); *n.Spec.Replicas != 0 {
		t.Fatalf("held template's ReplicaSet scaled to %d", *n.Spec.Replicas)
	}
	if c := w.counts(); c.byHash[hash1] != 10 || c.live != 10 {
		t.Fatalf("pods while held: %+v", c)
	}
	// Another template clears the mark and rolls out.
	patch(t, kube, "api", map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{nodesim.NeverReady: nil}},
		"spec":     map[string]any{"containers": []map[string]any{{"name": "api", "image": "api:3"}}}}}})
	waitRolledOut(t, kube, "api", 60*time.Second)
	got, _ = kube.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if _, ok := got.Annotations[deployment.FailedRevisionHashAnnotation]; ok {
		t.Fatal("failed mark not cleared by a new template")
	}
	w.check(t)
}

func setImage(image string) map[string]any {
	return map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]any{{"name": "web", "image": image}}}}}}
}

func TestRecreateNeverRunsTwoVersions(t *testing.T) {
	kube := start(t)
	ctx := context.Background()
	d := newDeployment("rec", 4, 0, 0)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, kube, "rec", 60*time.Second)
	w := watchPods(t, kube, "rec", 4, 0)
	w.exclusive = true
	patch(t, kube, "rec", setImage("web:2"))
	waitRolledOut(t, kube, "rec", 60*time.Second)
	var hash2 string
	for _, rs := range replicaSets(t, kube, "rec") {
		if *rs.Spec.Replicas == 4 {
			hash2 = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	waitPods(t, w, hash2, 4, 30*time.Second)
	w.check(t)
}

func TestScaleMidRolloutIsProportional(t *testing.T) {
	kube := start(t)
	ctx := context.Background()
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, newDeployment("prop", 10, 3, 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, kube, "prop", 60*time.Second)
	hash1 := replicaSets(t, kube, "prop")[0].Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	// A version that never gets ready stalls at old 10, new 3.
	patch(t, kube, "prop", map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{nodesim.NeverReady: "true"}},
		"spec":     map[string]any{"containers": []map[string]any{{"name": "web", "image": "web:2"}}}}}})
	sizes := func() (old, new int32, err error) {
		rss := replicaSets(t, kube, "prop")
		if len(rss) != 2 {
			return 0, 0, fmt.Errorf("%d ReplicaSets", len(rss))
		}
		for _, rs := range rss {
			if rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash1 {
				old = *rs.Spec.Replicas
			} else {
				new = *rs.Spec.Replicas
			}
		}
		return old, new, nil
	}
	want := func(o, n int32) func() error {
		return func() error {
			old, new, err := sizes()
			if err == nil && (old != o || new != n) {
				err = fmt.Errorf("old %d new %d, want %d %d", old, new, o, n)
			}
			return err
		}
	}
	testenv.Eventually(t, 30*time.Second, want(10, 3))
	// kubectl scale to 20: 23 pods allowed (surge 3), 10 more spread as
	// 10:3 of the 13 the ReplicaSets were sized for → 18 and 5.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := kube.AppsV1().Deployments(ns).GetScale(ctx, "prop", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = 20
		_, err = kube.AppsV1().Deployments(ns).UpdateScale(ctx, "prop", sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, want(18, 5))
	for _, rs := range replicaSets(t, kube, "prop") {
		if rs.Annotations[deployment.DesiredReplicasAnnotation] != "20" || rs.Annotations[deployment.MaxReplicasAnnotation] != "23" {
			t.Fatalf("%s annotations %v", rs.Name, rs.Annotations)
		}
	}
}

func TestPauseResumeRestartHistoryLimitAndAdoption(t *testing.T) {
	kube := start(t)
	ctx := context.Background()
	d := newDeployment("life", 2, 1, 0)
	d.Spec.RevisionHistoryLimit = ptr(int32(1))
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, kube, "life", 60*time.Second)

	// Paused: a template change creates nothing.
	patch(t, kube, "life", map[string]any{"spec": map[string]any{"paused": true}})
	patch(t, kube, "life", setImage("web:2"))
	testenv.Eventually(t, 30*time.Second, func() error {
		got, err := kube.AppsV1().Deployments(ns).Get(ctx, "life", metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := deployment.Condition(got.Status, appsv1.DeploymentProgressing)
		if got.Status.ObservedGeneration != got.Generation || c == nil || c.Reason != deployment.ReasonPaused || c.Message != "Deployment is paused" {
			return fmt.Errorf("observed %d/%d Progressing %+v", got.Status.ObservedGeneration, got.Generation, c)
		}
		return nil
	})
	if n := len(replicaSets(t, kube, "life")); n != 1 {
		t.Fatalf("paused deployment made %d ReplicaSets", n)
	}
	// Resumed: it rolls out.
	patch(t, kube, "life", map[string]any{"spec": map[string]any{"paused": false}})
	waitRolledOut(t, kube, "life", 60*time.Second)

	// kubectl rollout restart: an annotation on the template.
	patch(t, kube, "life", map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"kubectl.kubernetes.io/restartedAt": time.Now().Format(time.RFC3339)}}}}})
	waitRolledOut(t, kube, "life", 60*time.Second)

	// Three revisions, history limit 1: the current and one old remain.
	testenv.Eventually(t, 30*time.Second, func() error {
		rss := replicaSets(t, kube, "life")
		var revs []string
		for _, rs := range rss {
			revs = append(revs, rs.Annotations[deployment.RevisionAnnotation])
		}
		if len(rss) != 2 {
			return fmt.Errorf("revisions %v", revs)
		}
		return nil
	})
	got, _ := kube.AppsV1().Deployments(ns).Get(ctx, "life", metav1.GetOptions{})
	if got.Annotations[deployment.RevisionAnnotation] != "3" {
		t.Fatalf("deployment revision %q", got.Annotations[deployment.RevisionAnnotation])
	}

	// An orphaned ReplicaSet matching the selector is adopted back.
	for _, rs := range replicaSets(t, kube, "life") {
		rs.OwnerReferences = nil
		if _, err := kube.AppsV1().ReplicaSets(ns).Update(ctx, &rs, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, rs := range replicaSets(t, kube, "life") {
			if ref := metav1.GetControllerOf(&rs); ref == nil || ref.UID != got.UID {
				return fmt.Errorf("%s not adopted: %v", rs.Name, rs.OwnerReferences)
			}
		}
		return nil
	})
	waitRolledOut(t, kube, "life", 30*time.Second)
}

func ptr[T any](v T) *T { return &v }

// BenchmarkDeployment1000 measures a 1,000-replica Deployment from
// creation to all pods available (kubectl rollout status done), then a
// rolling update of it (25%/25%) to done, on simulated nodes with the real
// ReplicaSet controller.
func BenchmarkDeployment1000(b *testing.B) {
	const n = 1000
	kube := start(b)
	ctx := context.Background()
	var created, updated time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench%d", i)
		d := newDeployment(name, n, 0, 0)
		d.Spec.Strategy.RollingUpdate = nil // defaults: 25% / 25%
		begin := time.Now()
		if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitRolledOut(b, kube, name, 5*time.Minute)
		created += time.Since(begin)
		begin = time.Now()
		patch(b, kube, name, setImage("web:2"))
		waitRolledOut(b, kube, name, 5*time.Minute)
		updated += time.Since(begin)
	}
	b.ReportMetric(float64(n*b.N)/created.Seconds(), "pods-available/s")
	b.ReportMetric(updated.Seconds()/float64(b.N), "s/rolling-update")
}
