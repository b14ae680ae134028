package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/controller/disruption"
	"github.com/drover/drover/internal/testenv"
)

// evictionPod creates a pod bound to a node, Running, and Ready or not.
func evictionPod(t *testing.T, kube kubernetes.Interface, ns, name string, ready bool, labels map[string]string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	p, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	p, err = kube.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// budget creates a PDB over app=web and sets its status as a disruption
// controller would have.
func budget(t *testing.T, kube kubernetes.Interface, ns, name string, minAvailable int, st policyv1.PodDisruptionBudgetStatus) *policyv1.PodDisruptionBudget {
	t.Helper()
	ctx := context.Background()
	min := intstr.FromInt32(int32(minAvailable))
	pdb, err := kube.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &min, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.ObservedGeneration == 0 {
		st.ObservedGeneration = pdb.Generation
	}
	pdb.Status = st
	pdb, err = kube.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pdb
}

func evict(kube kubernetes.Interface, ns, name string, opts *metav1.DeleteOptions) error {
	return kube.PolicyV1().Evictions(ns).Evict(context.Background(), &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, DeleteOptions: opts,
	})
}

func web() map[string]string { return map[string]string{"app": "web"} }

func requireBudget429(t *testing.T, err error) {
	t.Helper()
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction error = %v, want 429 TooManyRequests", err)
	}
	st := err.(apierrors.APIStatus).Status()
	if st.Message != "Cannot evict pod as it would violate the pod's disruption budget." {
		t.Errorf("message = %q", st.Message)
	}
	if st.Details == nil || !slices.ContainsFunc(st.Details.Causes, func(c metav1.StatusCause) bool { return c.Type == policyv1.DisruptionBudgetCause }) {
		t.Errorf("no DisruptionBudget cause in %+v", st.Details)
	}
}

func getPod(t *testing.T, kube kubernetes.Interface, ns, name string) (*corev1.Pod, bool) {
	t.Helper()
	p, err := kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, true
}

func TestEvictionWithoutBudget(t *testing.T) {
	env := testenv.Start(t)
	kube := env.Kube
	evictionPod(t, kube, "default", "graceful", true, web())
	if err := evict(kube, "default", "graceful", nil); err != nil {
		t.Fatalf("evict: %v", err)
	}
	p, ok := getPod(t, kube, "default", "graceful")
	if !ok || p.DeletionTimestamp == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("evicted pod should be terminating with the default grace period, got %+v", p)
	}
	if !slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "EvictionByEvictionAPI"
	}) {
		t.Errorf("no DisruptionTarget condition: %+v", p.Status.Conditions)
	}

	evictionPod(t, kube, "default", "now", true, web())
	zero := int64(0)
	if err := evict(kube, "default", "now", &metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("evict: %v", err)
	}
	if _, ok := getPod(t, kube, "default", "now"); ok {
		t.Error("a pod evicted with gracePeriodSeconds=0 still exists")
	}

	if err := evict(kube, "default", "missing", nil); !apierrors.IsNotFound(err) {
		t.Errorf("evicting a missing pod: %v, want 404", err)
	}
	// The name in the body must be the URL's.
	body := `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"other"}}`
	err := kube.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("graceful").SubResource("eviction").
		Body([]byte(body)).SetHeader("Content-Type", "application/json").Do(context.Background()).Error()
	if !apierrors.IsBadRequest(err) {
		t.Errorf("mismatched name: %v, want 400", err)
	}
}

func TestEvictionV1beta1AndDiscovery(t *testing.T) {
	env := testenv.Start(t)
	kube := env.Kube
	evictionPod(t, kube, "default", "a", true, web())
	body := `{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{"name":"a"},"deleteOptions":{"gracePeriodSeconds":0}}`
	var code int
	res := kube.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("a").SubResource("eviction").
		Body([]byte(body)).SetHeader("Content-Type", "application/json").Do(context.Background()).StatusCode(&code)
	if res.Error() != nil || code != http.StatusCreated {
		t.Fatalf("v1beta1 eviction: code %d, err %v", code, res.Error())
	}
	if _, ok := getPod(t, kube, "default", "a"); ok {
		t.Error("pod still exists after a v1beta1 eviction with grace 0")
	}
	list, err := kube.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool {
		return r.Name == "pods/eviction" && r.Group == "policy" && r.Version == "v1" && r.Kind == "Eviction" && slices.Contains(r.Verbs, "create")
	}) {
		t.Error("discovery does not list pods/eviction as policy/v1 Eviction")
	}
}

func TestEvictionRespectsBudget(t *testing.T) {
	env := testenv.Start(t)
	kube := env.Kube
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		evictionPod(t, kube, "default", n, true, web())
	}
	pdb := budget(t, kube, "default", "web", 3, policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 3, DesiredHealthy: 3, ExpectedPods: 3})

	requireBudget429(t, evict(kube, "default", "a", nil))
	if p, ok := getPod(t, kube, "default", "a"); !ok || p.DeletionTimestamp != nil {
		t.Fatal("a refused eviction touched the pod")
	}

	// One disruption allowed: the first eviction takes it.
	pdb, _ = kube.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
	pdb.Status.DisruptionsAllowed = 1
	if _, err := kube.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := evict(kube, "default", "a", nil); err != nil {
		t.Fatalf("first eviction: %v", err)
	}
	pdb, _ = kube.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
	if pdb.Status.DisruptionsAllowed != 0 {
		t.Errorf("disruptionsAllowed = %d after the eviction, want 0", pdb.Status.DisruptionsAllowed)
	}
	if _, ok := pdb.Status.DisruptedPods["a"]; !ok {
		t.Errorf("disruptedPods = %v, want a", pdb.Status.DisruptedPods)
	}
	requireBudget429(t, evict(kube, "default", "b", nil))

	// Terminal and pending pods go without a budget check; so does one
	// already being deleted.
	evictionPod(t, kube, "default", "done", true, web())
	done, _ := getPod(t, kube, "default", "done")
	done.Status.Phase = corev1.PodSucceeded
	if _, err := kube.CoreV1().Pods("default").UpdateStatus(ctx, done, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := evict(kube, "default", "done", nil); err != nil {
		t.Errorf("evicting a succeeded pod: %v", err)
	}
	if _, err := kube.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pending", Labels: web()},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := evict(kube, "default", "pending", nil); err != nil {
		t.Errorf("evicting a pending pod: %v", err)
	}
	if _, ok := getPod(t, kube, "default", "pending"); ok {
		t.Error("evicted unbound pending pod still exists")
	}
	if err := evict(kube, "default", "a", nil); err != nil {
		t.Errorf("evicting a pod already being deleted: %v", err)
	}

	// An unready pod goes when the budget has its healthy pods anyway.
	evictionPod(t, kube, "default", "sick", false, web())
	pdb, _ = kube.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
	pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy, pdb.Status.DisruptionsAllowed = 2, 2, 0
	if _, err := kube.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := evict(kube, "default", "sick", nil); err != nil {
		t.Errorf("evicting an unready pod with a healthy budget: %v", err)
	}
	if p, ok := getPod(t, kube, "default", "sick"); ok && p.DeletionTimestamp == nil {
		t.Error("the unready pod is not being deleted")
	}
}

func TestEvictionBudgetEdgeCases(t *testing.T) {
	env := testenv.Start(t)
	kube := env.Kube
	ctx := context.Background()
	evictionPod(t, kube, "default", "a", true, web())

	// A budget whose spec changed since the controller last saw it.
	pdb := budget(t, kube, "default", "web", 1, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 5, ObservedGeneration: 1})
	two := intstr.FromInt32(2)
	pdb.Spec.MinAvailable = &two
	if _, err := kube.PolicyV1().PodDisruptionBudgets("default").Update(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := evict(kube, "default", "a", nil)
	requireBudget429(t, err)
	if st := err.(apierrors.APIStatus).Status(); st.Details.RetryAfterSeconds != 10 {
		t.Errorf("retryAfterSeconds = %d, want 10", st.Details.RetryAfterSeconds)
	}

	// Two budgets over one pod: upstream refuses with 500.
	budget(t, kube, "default", "web2", 0, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 5})
	err = evict(kube, "default", "a", nil)
	if st, ok := err.(apierrors.APIStatus); !ok || st.Status().Code != http.StatusInternalServerError ||
		st.Status().Message != "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support." {
		t.Errorf("two budgets: %v, want 500", err)
	}
	if p, ok := getPod(t, kube, "default", "a"); !ok || p.DeletionTimestamp != nil {
		t.Error("refused eviction touched the pod")
	}

	// A pod no budget selects is evicted; dry run changes nothing.
	evictionPod(t, kube, "default", "other", true, map[string]string{"app": "other"})
	if err := kube.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default"},
		DeleteOptions: &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}}); err != nil {
		t.Fatalf("dry-run eviction: %v", err)
	}
	if p, ok := getPod(t, kube, "default", "other"); !ok || p.DeletionTimestamp != nil {
		t.Error("a dry-run eviction deleted the pod")
	}
	if err := evict(kube, "default", "other", nil); err != nil {
		t.Errorf("evicting an unbudgeted pod: %v", err)
	}
}

// TestEvictionWithController: after an eviction takes the last allowed
// disruption, the next is refused until the disruption controller has
// recomputed the budget from the pods.
func TestEvictionWithController(t *testing.T) {
	env := testenv.Start(t)
	kube := env.Kube
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for _, n := range []string{"a", "b", "c", "d"} {
		evictionPod(t, kube, "default", n, true, web())
	}
	min := intstr.FromInt32(2)
	if _, err := kube.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &min, Selector: &metav1.LabelSelector{MatchLabels: web()}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	go func() { done <- disruption.Run(ctx, kube, testenv.Logger(t)) }()
	testenv.Eventually(t, 10*time.Second, func() error {
		pdb, err := kube.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pdb.Status.DisruptionsAllowed != 2 || pdb.Status.CurrentHealthy != 4 || pdb.Status.ExpectedPods != 4 {
			return fmt.Errorf("status %+v", pdb.Status)
		}
		return nil
	})
	evicted := 0
	for _, n := range []string{"a", "b", "c"} {
		testenv.Eventually(t, 10*time.Second, func() error {
			err := evict(kube, "default", n, nil)
			if err == nil {
				evicted++
				return nil
			}
			if apierrors.IsTooManyRequests(err) && evicted == 2 {
				return nil // the budget holds: 2 of 4 may go
			}
			return err
		})
	}
	if evicted != 2 {
		t.Fatalf("evicted %d pods, want 2 (minAvailable 2 of 4)", evicted)
	}
	if p, _ := getPod(t, kube, "default", "c"); p.DeletionTimestamp != nil {
		t.Error("the third pod went below the budget")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		pdb, err := kube.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pdb.Status.CurrentHealthy != 2 || pdb.Status.DisruptionsAllowed != 0 || len(pdb.Status.DisruptedPods) != 0 {
			return fmt.Errorf("status %+v", pdb.Status)
		}
		return nil
	})
}
