package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

const rolloutManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 10
  progressDeadlineSeconds: 8
  selector: {matchLabels: {app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web}
      annotations: {sim.drover.io/ready-after: 200ms}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: web:1
`

// podCensus checks rollout invariants at every pod event: never more
// than replicas+maxSurge pods that are not terminating, never fewer than
// replicas-maxUnavailable ready ones, once checking is on.
type podCensus struct {
	mu         sync.Mutex
	checking   bool
	violations []string
	maxPods    int
	minReady   int
}

func (c *podCensus) check(store cache.Store) {
	live, ready := 0, 0
	for _, obj := range store.List() {
		p := obj.(*corev1.Pod)
		if p.DeletionTimestamp != nil {
			continue
		}
		live++
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.checking {
		return
	}
	if live > c.maxPods || ready < c.minReady {
		c.violations = append(c.violations, fmt.Sprintf("%d pods, %d ready", live, ready))
	}
}

func (c *podCensus) set(on bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checking = on
	v := c.violations
	c.violations = nil
	return v
}

// TestRollingUpdateUndoAndAutoRollback drives a Deployment through
// kubectl on `drover up` with simulated containers: a rolling update
// within maxSurge/maxUnavailable at every pod event, history, undo, a
// broken version that halts at its progress deadline with the old pods
// serving, and the same broken version rolled back by Drover itself.
func TestRollingUpdateUndoAndAutoRollback(t *testing.T) {
	dir := t.TempDir()
	up := startControlPlane(t, "up", dir, freeAddr(t), "--runtime", "sim", "--node-name", "sim-1", "--agent-listen", freeAddr(t))
	cs := up.clientset(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	census := &podCensus{maxPods: 11, minReady: 9}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	podInf := factory.Core().V1().Pods().Informer()
	onEvent := func(any) { census.check(podInf.GetStore()) }
	podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onEvent, UpdateFunc: func(_, o any) { onEvent(o) }, DeleteFunc: onEvent})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	path := dir + "/web.yaml"
	writeFile(t, path, rolloutManifest)
	up.mustKubectl(t, "apply", "-f", path)
	up.mustKubectl(t, "rollout", "status", "deployment/web", "--timeout=90s")

	images := func() map[string]int {
		got := map[string]int{}
		for _, obj := range podInf.GetStore().List() {
			p := obj.(*corev1.Pod)
			if p.DeletionTimestamp == nil {
				got[p.Spec.Containers[0].Image]++
			}
		}
		return got
	}
	allImage := func(image string) func() error {
		return func() error {
			if got := images(); len(got) != 1 || got[image] != 10 {
				return fmt.Errorf("pod images %v, want 10 × %s", got, image)
			}
			return nil
		}
	}
	waitFor(t, 30*time.Second, allImage("web:1"))

	// Rolling update to web:2, checked at every pod event.
	census.set(true)
	up.mustKubectl(t, "set", "image", "deployment/web", "app=web:2")
	up.mustKubectl(t, "rollout", "status", "deployment/web", "--timeout=90s")
	waitFor(t, 30*time.Second, allImage("web:2"))
	if v := census.set(false); len(v) > 0 {
		t.Errorf("rolling update broke maxSurge/maxUnavailable: %v", v)
	}
	rsList, err := cs.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(rsList.Items) != 2 {
		t.Fatalf("replicasets: %v (%v)", rsList, err)
	}
	for _, rs := range rsList.Items {
		if rs.Spec.Template.Spec.Containers[0].Image == "web:1" && *rs.Spec.Replicas != 0 {
			t.Errorf("old replicaset %s has %d replicas, want 0", rs.Name, *rs.Spec.Replicas)
		}
	}
	history := up.mustKubectl(t, "rollout", "history", "deployment/web")
	expectLines(t, "history", history, `^1\s`, `^2\s`)

	// Undo brings web:1 back as revision 3.
	census.set(true)
	up.mustKubectl(t, "rollout", "undo", "deployment/web")
	up.mustKubectl(t, "rollout", "status", "deployment/web", "--timeout=90s")
	waitFor(t, 30*time.Second, allImage("web:1"))
	if v := census.set(false); len(v) > 0 {
		t.Errorf("undo broke maxSurge/maxUnavailable: %v", v)
	}
	dep, _ := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if rev := dep.Annotations["deployment.kubernetes.io/revision"]; rev != "3" {
		t.Errorf("revision after undo %q, want 3", rev)
	}

	// A version that never becomes ready halts at its deadline; the old
	// pods keep serving.
	broken := `{"spec":{"template":{"metadata":{"annotations":{"sim.drover.io/never-ready":"true"}},"spec":{"containers":[{"name":"app","image":"web:3"}]}}}}`
	census.set(true)
	up.mustKubectl(t, "patch", "deployment/web", "-p", broken)
	out, err := up.kubectl(t, "rollout", "status", "deployment/web", "--timeout=90s")
	if err == nil || !strings.Contains(out, "exceeded its progress deadline") {
		t.Errorf("rollout status of a broken version: err %v, out %s", err, out)
	}
	if got := images(); got["web:3"] > 2 || got["web:1"] < 8 {
		t.Errorf("halted rollout: pod images %v, want at most 2 × web:3 (maxSurge+maxUnavailable)", got)
	}
	if v := census.set(false); len(v) > 0 {
		t.Errorf("broken rollout took availability below replicas-maxUnavailable: %v", v)
	}
	dep, _ = cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if c := condition(dep, appsv1.DeploymentProgressing); c == nil || c.Reason != "ProgressDeadlineExceeded" {
		t.Errorf("Progressing condition %+v, want ProgressDeadlineExceeded", c)
	}
	up.mustKubectl(t, "rollout", "undo", "deployment/web")
	up.mustKubectl(t, "rollout", "status", "deployment/web", "--timeout=90s")
	waitFor(t, 30*time.Second, allImage("web:1"))

	// With auto-rollback, Drover undoes the broken version itself.
	up.mustKubectl(t, "annotate", "deployment/web", "drover.io/auto-rollback=true")
	census.set(true)
	up.mustKubectl(t, "patch", "deployment/web", "-p", broken)
	waitFor(t, 60*time.Second, func() error {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "web:1" {
			return fmt.Errorf("template image %s, waiting for the automatic rollback to web:1", img)
		}
		return nil
	})
	up.mustKubectl(t, "rollout", "status", "deployment/web", "--timeout=90s")
	waitFor(t, 30*time.Second, allImage("web:1"))
	if v := census.set(false); len(v) > 0 {
		t.Errorf("auto-rollback broke availability: %v", v)
	}
	events := up.mustKubectl(t, "get", "events", "--field-selector", "involvedObject.name=web", "-o", "custom-columns=REASON:.reason")
	if !regexp.MustCompile(`(?m)^AutoRollback$`).MatchString(events) {
		t.Errorf("no AutoRollback event on the deployment:\n%s", events)
	}
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}
