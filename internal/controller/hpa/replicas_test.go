package hpa

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	t0      = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	defTol  = Tolerances{0.1, 0.1}
	defRead = Readiness{CPUInitializationPeriod: 5 * time.Minute, InitialReadinessDelay: 30 * time.Second}
)

// podB builds a pod for the table tests: by default running, ready since
// long ago, requesting 1 CPU and 1Gi.
type podB struct{ p *corev1.Pod }

func mkPod(name string) *podB {
	start := metav1.NewTime(t0.Add(-time.Hour))
	return &podB{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &start, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-59 * time.Minute))},
		}},
	}}
}

func (b *podB) phase(p corev1.PodPhase) *podB { b.p.Status.Phase = p; return b }
func (b *podB) unready(since time.Time) *podB {
	b.p.Status.Conditions[0].Status = corev1.ConditionFalse
	b.p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(since)
	return b
}

// notReadyYet: started a minute ago (within the CPU initialization
// period) and not ready.
func (b *podB) notReadyYet() *podB {
	return b.started(t0.Add(-time.Minute)).unready(t0.Add(-time.Minute))
}
func (b *podB) readySince(since time.Time) *podB {
	b.p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(since)
	return b
}
func (b *podB) started(at time.Time) *podB {
	s := metav1.NewTime(at)
	b.p.Status.StartTime = &s
	return b
}
func (b *podB) deleted() *podB { n := metav1.NewTime(t0); b.p.DeletionTimestamp = &n; return b }
func (b *podB) noRequest() *podB {
	b.p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	return b
}
func (b *podB) obj() *corev1.Pod { return b.p }

func pods(bs ...*podB) []*corev1.Pod {
	var out []*corev1.Pod
	for _, b := range bs {
		out = append(out, b.obj())
	}
	return out
}

// usage is metrics taken at t0 over a 5s window, by pod name.
func usage(kv ...any) map[string]PodMetric {
	m := map[string]PodMetric{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = PodMetric{Value: int64(kv[i+1].(int)), Timestamp: t0, Window: 5 * time.Second}
	}
	return m
}

func TestUtilizationReplicas(t *testing.T) {
	tests := []struct {
		name        string
		current     int32
		target      int32
		resource    corev1.ResourceName
		pods        []*corev1.Pod
		metrics     map[string]PodMetric
		tol         Tolerances
		want        int32
		wantUtil    int32
		wantErrLike string
	}{
		{name: "scale up", current: 3, target: 30, pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
			metrics: usage("a", 300, "b", 500, "c", 700), want: 5, wantUtil: 50},
		{name: "scale down", current: 5, target: 50, pods: pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d"), mkPod("e")),
			metrics: usage("a", 100, "b", 300, "c", 500, "d", 250, "e", 250), want: 3, wantUtil: 28},
		{name: "within tolerance above", current: 3, target: 100, pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
			metrics: usage("a", 1080, "b", 1080, "c", 1080), want: 3, wantUtil: 108},
		{name: "at the tolerance edge stays", current: 3, target: 100, pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
			metrics: usage("a", 1100, "b", 1100, "c", 1100), want: 3, wantUtil: 110},
		{name: "just over tolerance scales", current: 3, target: 100, pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
			metrics: usage("a", 1110, "b", 1110, "c", 1110), want: 4, wantUtil: 111},
		{name: "within tolerance below", current: 3, target: 100, pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
			metrics: usage("a", 910, "b", 910, "c", 910), want: 3, wantUtil: 91},
		{name: "own wider scale-up tolerance", current: 3, target: 100, tol: Tolerances{0.1, 0.5}, pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
			metrics: usage("a", 1400, "b", 1400, "c", 1400), want: 3, wantUtil: 140},
		{name: "zero scale-down tolerance", current: 3, target: 100, tol: Tolerances{0, 0.1}, pods: pods(mkPod("a"), mkPod("b"), mkPod("c")),
			metrics: usage("a", 650, "b", 650, "c", 650), want: 2, wantUtil: 65},

		// Unready pods: left out, and counted as 0% on a scale-up.
		{name: "scale up counts unready pods as idle", current: 3, target: 30,
			pods:    pods(mkPod("a").notReadyYet(), mkPod("b"), mkPod("c")),
			metrics: usage("a", 300, "b", 500, "c", 700), want: 4, wantUtil: 60},
		{name: "hot unready pods do not add scale-up", current: 3, target: 50,
			pods:    pods(mkPod("a").notReadyYet(), mkPod("b").notReadyYet(), mkPod("c")),
			metrics: usage("a", 5000, "b", 5000, "c", 550), want: 3, wantUtil: 55},
		{name: "scale down ignores unready pods", current: 3, target: 50,
			pods:    pods(mkPod("a").notReadyYet(), mkPod("b"), mkPod("c")),
			metrics: usage("a", 900, "b", 100, "c", 100), want: 1, wantUtil: 10},
		{name: "pending pod is unready", current: 3, target: 30,
			pods:    pods(mkPod("a").phase(corev1.PodPending), mkPod("b"), mkPod("c")),
			metrics: usage("b", 500, "c", 700), want: 4, wantUtil: 60},
		{name: "deleted and failed pods are ignored", current: 4, target: 50,
			pods:    pods(mkPod("a").deleted(), mkPod("b").phase(corev1.PodFailed), mkPod("c"), mkPod("d")),
			metrics: usage("a", 1000, "b", 1000, "c", 1000, "d", 1000), want: 4, wantUtil: 100},
		{name: "initializing pod sampled too soon after ready is unready", current: 2, target: 50,
			pods: pods(mkPod("a").started(t0.Add(-20*time.Second)).readySince(t0.Add(-3*time.Second)), mkPod("b")),
			// a's sample (5s window ending at t0) began before it was
			// ready: a counts as idle, which brings the ratio to 1.0.
			metrics: usage("a", 2000, "b", 1000), want: 2, wantUtil: 100},
		{name: "initializing pod ready a full window counts", current: 2, target: 50,
			pods:    pods(mkPod("a").started(t0.Add(-20*time.Second)).readySince(t0.Add(-10*time.Second)), mkPod("b")),
			metrics: usage("a", 2000, "b", 1000), want: 6, wantUtil: 150},
		{name: "unready pod that was never ready after start is unready", current: 2, target: 50,
			pods:    pods(mkPod("a").unready(t0.Add(-time.Hour+10*time.Second)), mkPod("b")),
			metrics: usage("a", 2000, "b", 1000), want: 2, wantUtil: 100},
		{name: "pod that became unready later counts", current: 2, target: 50,
			pods:    pods(mkPod("a").unready(t0.Add(-10*time.Minute)), mkPod("b")),
			metrics: usage("a", 2000, "b", 1000), want: 6, wantUtil: 150},
		{name: "memory ignores readiness", current: 2, target: 50, resource: corev1.ResourceMemory,
			pods:    pods(mkPod("a").unready(t0.Add(-time.Hour+time.Second)), mkPod("b")),
			metrics: map[string]PodMetric{"a": {Value: 1 << 30 * 1000}, "b": {Value: 1 << 30 * 1000}}, want: 4, wantUtil: 100},

		// Missing metrics: 100% of request on a scale-down, 0% on a
		// scale-up, and no change if that reverses the direction.
		{name: "missing pod on scale down flips direction: keep", current: 4, target: 50,
			pods:    pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d")),
			metrics: usage("a", 400, "b", 400, "c", 400), want: 4, wantUtil: 40},
		{name: "missing pod on scale down still scales down", current: 4, target: 50,
			pods:    pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d")),
			metrics: usage("a", 100, "b", 100, "c", 100), want: 3, wantUtil: 10},
		{name: "missing pod on scale down above 100% target uses the target", current: 4, target: 150,
			pods:    pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d")),
			metrics: usage("a", 300, "b", 300, "c", 300), want: 2, wantUtil: 30},
		{name: "missing pod on scale up counts as idle", current: 4, target: 50,
			pods:    pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d")),
			metrics: usage("a", 900, "b", 900, "c", 900), want: 6, wantUtil: 90},
		{name: "missing pods on scale up flip direction: keep", current: 4, target: 50,
			pods:    pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d")),
			metrics: usage("a", 600), want: 4, wantUtil: 60},
		{name: "missing pods within tolerance after filling: keep", current: 2, target: 50,
			pods:    pods(mkPod("a"), mkPod("b")),
			metrics: usage("a", 1050), want: 2, wantUtil: 105},

		// Errors.
		{name: "no pods", current: 1, target: 50, wantErrLike: "no pods returned by selector"},
		{name: "no metrics for ready pods", current: 2, target: 50,
			pods:    pods(mkPod("a").notReadyYet(), mkPod("b").phase(corev1.PodPending)),
			metrics: usage("a", 100), wantErrLike: "did not receive metrics for targeted pods"},
		{name: "missing request", current: 2, target: 50, pods: pods(mkPod("a"), mkPod("b").noRequest()),
			metrics: usage("a", 100, "b", 100), wantErrLike: "missing request for cpu in container app of Pod b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.resource
			if res == "" {
				res = corev1.ResourceCPU
			}
			tol := tt.tol
			if tol == (Tolerances{}) {
				tol = defTol
			}
			got, util, _, err := UtilizationReplicas(tt.current, tt.target, res, "", tt.pods, tt.metrics, tol, defRead, t0)
			if tt.wantErrLike != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrLike) {
					t.Fatalf("err = %v, want %q", err, tt.wantErrLike)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || util != tt.wantUtil {
				t.Errorf("replicas, utilization = %d, %d%%; want %d, %d%%", got, util, tt.want, tt.wantUtil)
			}
		})
	}
}

func TestUtilizationReplicasCountsSidecarsAndPodLevelRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := mkPod("a").obj()
	sidecar.Spec.InitContainers = []corev1.Container{
		{Name: "proxy", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}},
		{Name: "init-once"}, // a plain init container's (missing) request does not count
	}
	// 1000m used of 2000m requested = 50%: at target.
	if n, util, _, err := UtilizationReplicas(2, 50, corev1.ResourceCPU, "", []*corev1.Pod{sidecar}, usage("a", 1000), defTol, defRead, t0); err != nil || n != 2 || util != 50 {
		t.Errorf("sidecar: %d %d%% %v; want 2 at 50%%", n, util, err)
	}
	podLevel := mkPod("b").noRequest().obj()
	podLevel.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}
	if n, util, _, err := UtilizationReplicas(1, 50, corev1.ResourceCPU, "", []*corev1.Pod{podLevel}, usage("b", 500), defTol, defRead, t0); err != nil || n != 2 || util != 100 {
		t.Errorf("pod-level: %d %d%% %v; want 2 at 100%%", n, util, err)
	}
}

func TestAverageValueReplicas(t *testing.T) {
	tests := []struct {
		name    string
		current int32
		target  int64
		pods    []*corev1.Pod
		metrics map[string]PodMetric
		want    int32
		wantAvg int64
	}{
		{"scale up", 3, 500, pods(mkPod("a"), mkPod("b"), mkPod("c")), usage("a", 600, "b", 700, "c", 800), 5, 700},
		{"within tolerance", 3, 500, pods(mkPod("a"), mkPod("b"), mkPod("c")), usage("a", 540, "b", 540, "c", 540), 3, 540},
		{"scale down", 4, 500, pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d")), usage("a", 100, "b", 100, "c", 100, "d", 100), 1, 100},
		{"missing on scale down counts as target", 4, 500, pods(mkPod("a"), mkPod("b"), mkPod("c"), mkPod("d")), usage("a", 100, "b", 100, "c", 100), 2, 100},
		{"missing on scale up counts as zero", 2, 500, pods(mkPod("a"), mkPod("b")), usage("a", 2000), 4, 2000},
		{"unready on scale up counts as zero", 2, 500, pods(mkPod("a"), mkPod("b").notReadyYet()), usage("a", 2000, "b", 2000), 4, 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, avg, err := AverageValueReplicas(tt.current, tt.target, corev1.ResourceCPU, tt.pods, tt.metrics, defTol, defRead, t0)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || avg != tt.wantAvg {
				t.Errorf("replicas, average = %d, %d; want %d, %d", got, avg, tt.want, tt.wantAvg)
			}
		})
	}
}
