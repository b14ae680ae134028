package hpa_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/controller/hpa"
	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/metricsapi"
	"github.com/drover/drover/internal/runtime/sim"
	"github.com/drover/drover/internal/testenv"
)

// run starts fn in the background until the test ends and checks it
// returns nil.
func run(t testing.TB, name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

func startAgent(t testing.TB, env *testenv.Env, node string) {
	t.Helper()
	ready := make(chan agent.Info, 1)
	run(t, "agent", func(ctx context.Context) error {
		return agent.Run(ctx, agent.Config{
			NodeName: node, Client: env.Kube, Runtime: sim.New(sim.Config{}), DataDir: t.TempDir(),
			Logger: testenv.Logger(t), HeartbeatInterval: 100 * time.Millisecond, ResyncInterval: 50 * time.Millisecond,
			ListenAddr: "127.0.0.1:0", NodeIP: "127.0.0.1",
			Ready: func(i agent.Info) { ready <- i },
		})
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready in 30s")
	}
}

// setLoad sets the CPU the ReplicaSet's pods use (the sim annotation on
// its template) and replaces its pods so the load takes effect; it
// returns when every replica is a ready pod with the new load.
func setLoad(t testing.TB, env *testenv.Env, milliCPU string) time.Time {
	t.Helper()
	ctx := context.Background()
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, sim.AnnotationCPUMillicores, milliCPU)
	if _, err := env.Kube.AppsV1().ReplicaSets("default").Patch(ctx, "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLoad(t, env, milliCPU)
	return time.Now()
}

// waitLoad waits until every replica is a ready pod with the load,
// deleting pods with another (the ReplicaSet controller may still create
// some from the template it saw before the change).
func waitLoad(t testing.TB, env *testenv.Env, milliCPU string) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 30*time.Second, func() error {
		rs, err := env.Kube.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		pods, err := env.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range pods.Items {
			if p.Annotations[sim.AnnotationCPUMillicores] != milliCPU {
				if err := env.Kube.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
				return fmt.Errorf("pod %s had the old load", p.Name)
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready != int(*rs.Spec.Replicas) {
			return fmt.Errorf("%d of %d pods ready with load %sm", ready, *rs.Spec.Replicas, milliCPU)
		}
		return nil
	})
}

func replicas(t testing.TB, env *testenv.Env) int32 {
	rs, err := env.Kube.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *rs.Spec.Replicas
}

// TestScalesReplicaSetOnCPU runs the whole pipeline: sim agent →
// /stats/summary → metrics API → HPA controller → scale subresource →
// ReplicaSet controller → pods. It uses the default metric resolution and
// sync period, with the scale-down stabilization window shortened to 10s.
func TestScalesReplicaSetOnCPU(t *testing.T) {
	t.Parallel() // mostly waiting on 5s periods
	up, down := scaleUpAndDown(t, 10*time.Second)
	t.Logf("load rise to first scale-up: %.1fs; load drop to scale-down: %.1fs (10s window)", up.Seconds(), down.Seconds())
}

// BenchmarkReaction measures, with the default metric resolution and sync
// period, the seconds from a load rise (new pods at 200% of their CPU
// request, ready) to the first scale-up, and from a load drop to the
// scale-down with a 10s stabilization window. Run with -benchtime=1x: one
// iteration takes about 20s.
func BenchmarkReaction(b *testing.B) {
	var up, down time.Duration
	for range b.N {
		u, d := scaleUpAndDown(b, 10*time.Second)
		up, down = up+u, down+d
	}
	b.ReportMetric(up.Seconds()/float64(b.N), "s-to-scale-up")
	b.ReportMetric(down.Seconds()/float64(b.N), "s-to-scale-down")
}

// scaleUpAndDown raises a ReplicaSet's load, waits for the HPA to scale
// it up, drops the load, waits for the scale-down, checks status and
// events, and returns how long each reaction took.
func scaleUpAndDown(t testing.TB, window time.Duration) (upAfter, downAfter time.Duration) {
	env := testenv.Start(t)
	ctx := context.Background()
	log := testenv.Logger(t)
	startAgent(t, env, "node-1")
	run(t, "replicaset", func(ctx context.Context) error { return replicaset.Run(ctx, env.Kube, log, replicaset.Options{}) })

	metrics := metricsapi.New(env.Kube, log, metricsapi.Options{})
	run(t, "metrics", metrics.Run)
	msrv := httptest.NewServer(metrics.Handler())
	t.Cleanup(msrv.Close)
	source, err := hpa.NewAPIMetrics(&rest.Config{Host: msrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "hpa", func(ctx context.Context) error {
		return hpa.Run(ctx, env.Kube, env.Config, log, hpa.Options{Metrics: source, DownscaleStabilization: window})
	})

	// One pod requesting 200m and using 100m: 50%, on target.
	one := int32(1)
	labels := map[string]string{"app": "web"}
	_, err = env.Kube.AppsV1().ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{sim.AnnotationCPUMillicores: "100", sim.AnnotationMemory: "32Mi"}},
				Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
					Name: "app", Image: "example.local/web:1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// An autoscaling/v1 HPA, as `kubectl autoscale --cpu-percent=50` makes.
	fifty := int32(50)
	_, err = env.Kube.AutoscalingV1().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv1.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web"},
			MinReplicas:    &one, MaxReplicas: 4, TargetCPUUtilizationPercentage: &fifty,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// At target: the HPA reports 50% and keeps one replica.
	hpas := env.Kube.AutoscalingV2().HorizontalPodAutoscalers("default")
	testenv.Eventually(t, 30*time.Second, func() error {
		h, err := hpas.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(h.Status.CurrentMetrics) != 1 || h.Status.CurrentMetrics[0].Resource == nil || h.Status.CurrentMetrics[0].Resource.Current.AverageUtilization == nil {
			return fmt.Errorf("no current CPU yet: %+v", h.Status)
		}
		if u := *h.Status.CurrentMetrics[0].Resource.Current.AverageUtilization; u < 48 || u > 52 {
			return fmt.Errorf("utilization %d%%, want 50%%", u)
		}
		return nil
	})
	if n := replicas(t, env); n != 1 {
		t.Fatalf("replicas = %d at target, want 1", n)
	}

	// Load rises to 400m per pod (200%): scale up, to 4 at once.
	up := setLoad(t, env, "400")
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := replicas(t, env); n <= 1 {
			return fmt.Errorf("replicas = %d", n)
		}
		return nil
	})
	upAfter = time.Since(up)
	if n := replicas(t, env); n != 4 {
		t.Errorf("scaled up to %d, want 4 (ceil(1 × 200%% / 50%%))", n)
	}
	waitLoad(t, env, "400")

	// Load drops to 20m (10%): scale down once the window has passed.
	down := setLoad(t, env, "20")
	testenv.Eventually(t, 40*time.Second, func() error {
		if n := replicas(t, env); n != 1 {
			return fmt.Errorf("replicas = %d", n)
		}
		return nil
	})
	downAfter = time.Since(down)

	// The status follows the rescale.
	var h *autoscalingv2.HorizontalPodAutoscaler
	testenv.Eventually(t, 10*time.Second, func() error {
		h, err = hpas.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h.Status.LastScaleTime == nil || h.Status.DesiredReplicas != 1 || h.Status.ObservedGeneration == nil {
			return fmt.Errorf("status = %+v", h.Status)
		}
		return nil
	})
	for _, typ := range []autoscalingv2.HorizontalPodAutoscalerConditionType{autoscalingv2.AbleToScale, autoscalingv2.ScalingActive, autoscalingv2.ScalingLimited} {
		found := false
		for _, c := range h.Status.Conditions {
			found = found || c.Type == typ
		}
		if !found {
			t.Errorf("no %s condition: %+v", typ, h.Status.Conditions)
		}
	}
	// kubectl get hpa shows current/target in TARGETS.
	var table metav1.Table
	err = env.Kube.AutoscalingV2().RESTClient().Get().Namespace("default").Resource("horizontalpodautoscalers").Name("web").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Into(&table)
	if err != nil {
		t.Fatal(err)
	}
	targets := ""
	for i, col := range table.ColumnDefinitions {
		if col.Name == "Targets" && len(table.Rows) == 1 {
			targets = fmt.Sprint(table.Rows[0].Cells[i])
		}
	}
	if !strings.HasPrefix(targets, "cpu: ") || !strings.HasSuffix(targets, "%/50%") {
		t.Errorf("TARGETS = %q, want cpu: N%%/50%%", targets)
	}
	// kubectl describe hpa shows these events.
	testenv.Eventually(t, 10*time.Second, func() error {
		evs, err := env.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=web"})
		if err != nil {
			return err
		}
		var msgs []string
		for _, e := range evs.Items {
			if e.Reason == "SuccessfulRescale" && e.Source.Component == hpa.ControllerName {
				msgs = append(msgs, e.Message)
			}
		}
		all := strings.Join(msgs, "\n")
		if !strings.Contains(all, "New size: 4; reason: cpu resource utilization (percentage of request) above target") ||
			!strings.Contains(all, "New size: 1; reason: All metrics below target") {
			return fmt.Errorf("rescale events: %q", msgs)
		}
		return nil
	})
	return upAfter, downAfter
}

// TestBringsDeploymentWithinMaxReplicas checks the scale subresource path
// for a Deployment (as `kubectl autoscale deployment` targets) and the
// rescale that needs no metrics: above maxReplicas.
func TestBringsDeploymentWithinMaxReplicas(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	five, one := int32(5), int32(1)
	labels := map[string]string{"app": "api"}
	_, err := env.Kube.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &five,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.local/api:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cpu := int32(50)
	_, err = env.Kube.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"},
			MinReplicas:    &one, MaxReplicas: 3,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu},
			}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No metrics API at all: the metrics are never needed here.
	source, err := hpa.NewAPIMetrics(&rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "hpa", func(ctx context.Context) error {
		return hpa.Run(ctx, env.Kube, env.Config, testenv.Logger(t), hpa.Options{Metrics: source})
	})
	testenv.Eventually(t, 20*time.Second, func() error {
		d, err := env.Kube.AppsV1().Deployments("default").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas = %d, want 3", *d.Spec.Replicas)
		}
		h, err := env.Kube.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h.Status.CurrentReplicas != 5 || h.Status.DesiredReplicas != 3 || h.Status.LastScaleTime == nil {
			return fmt.Errorf("status = %+v", h.Status)
		}
		evs, err := env.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=api,reason=SuccessfulRescale"})
		if err != nil {
			return err
		}
		if len(evs.Items) != 1 || evs.Items[0].Message != "New size: 3; reason: Current number of replicas above Spec.MaxReplicas" {
			return fmt.Errorf("events = %+v", evs.Items)
		}
		return nil
	})
}
