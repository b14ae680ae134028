package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/sim"
	"github.com/drover/drover/internal/testenv"
)

// running is an agent started by startAgent.
type running struct {
	info Info
	stop func() // cancels the agent and waits for Run to return
}

// startAgent runs an agent for node on rt against env until stop or the
// end of the test; cfg's zero fields get test-friendly values.
func startAgent(t testing.TB, env *testenv.Env, rt runtime.Runtime, cfg Config) *running {
	t.Helper()
	if cfg.NodeName == "" {
		cfg.NodeName = "node-1"
	}
	if cfg.Client == nil {
		cfg.Client = env.Kube
	}
	cfg.Runtime = rt
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t)
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase, cfg.BackoffCap = 200*time.Millisecond, 2*time.Second
	}
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeIP = "127.0.0.1"
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 50 * time.Millisecond
	}
	ready := make(chan Info, 1)
	cfg.Ready = func(i Info) { ready <- i }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	r := &running{}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	}
	t.Cleanup(r.stop)
	select {
	case r.info = <-ready:
	case err := <-done:
		stopped = true
		t.Fatalf("agent did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not become ready in 30s")
	}
	return r
}

func simPod(name string, annotations map[string]string, containers ...string) *corev1.Pod {
	if len(containers) == 0 {
		containers = []string{"app"}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "example.local/app:1"})
	}
	return p
}

func createPod(t testing.TB, env *testenv.Env, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	p, err := env.Kube.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	return p
}

// waitPod waits until cond accepts the pod and returns it.
func waitPod(t *testing.T, env *testenv.Env, name string, timeout time.Duration, cond func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	testenv.Eventually(t, timeout, func() error {
		p, err := env.Kube.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		return cond(p)
	})
	return pod
}

func podReady(p *corev1.Pod) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Status.Phase == corev1.PodRunning {
			return nil
		}
	}
	return fmt.Errorf("pod %s not ready: phase %s conditions %+v", p.Name, p.Status.Phase, p.Status.Conditions)
}

func TestNodeRegistersAndLeaseRenews(t *testing.T) {
	env := testenv.Start(t)
	rt := sim.New(sim.Config{})
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("16Gi")}
	a := startAgent(t, env, rt, Config{Capacity: capacity, Labels: map[string]string{"topology.kubernetes.io/zone": "z1"}})
	ctx := context.Background()

	node, err := env.Kube.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Status.Capacity[corev1.ResourceCPU]; got.Cmp(resource.MustParse("8")) != 0 {
		t.Errorf("cpu capacity %s, want 8", got.String())
	}
	if got := node.Status.Allocatable[corev1.ResourcePods]; got.Value() != MaxPods {
		t.Errorf("allocatable pods %s, want %d", got.String(), MaxPods)
	}
	if node.Labels[corev1.LabelHostname] != "node-1" || node.Labels[corev1.LabelOSStable] != "linux" || node.Labels["topology.kubernetes.io/zone"] != "z1" {
		t.Errorf("labels %v", node.Labels)
	}
	if got, want := node.Status.NodeInfo.ContainerRuntimeVersion, "drover-sim://"+sim.Version; got != want {
		t.Errorf("containerRuntimeVersion %q, want %q", got, want)
	}
	if port := node.Status.DaemonEndpoints.KubeletEndpoint.Port; !strings.HasSuffix(a.info.Addr, fmt.Sprintf(":%d", port)) || port == 0 {
		t.Errorf("kubelet port %d, agent serves at %s", port, a.info.Addr)
	}
	if len(node.Status.Addresses) == 0 || node.Status.Addresses[0] != (corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}) {
		t.Errorf("addresses %v", node.Status.Addresses)
	}
	if err := nodeReady(node, corev1.ConditionTrue); err != nil {
		t.Error(err)
	}

	lease, err := env.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != "node-1" || len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].UID != node.UID {
		t.Errorf("lease holder %q owners %v, want node-1 owned by the node", *lease.Spec.HolderIdentity, lease.OwnerReferences)
	}
	first := lease.Spec.RenewTime.Time
	testenv.Eventually(t, 10*time.Second, func() error {
		l, err := env.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !l.Spec.RenewTime.After(first) {
			return fmt.Errorf("renewTime still %v", l.Spec.RenewTime)
		}
		return nil
	})

	// A runtime that stops being ready turns the node NotReady.
	rt.SetStatus(runtime.RuntimeStatus{RuntimeReady: true, Message: "cni plugin not initialized"})
	testenv.Eventually(t, 10*time.Second, func() error {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return nodeReady(n, corev1.ConditionFalse)
	})
}

func nodeReady(n *corev1.Node, want corev1.ConditionStatus) error {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status != want {
				return fmt.Errorf("node Ready %s (%s: %s), want %s", c.Status, c.Reason, c.Message, want)
			}
			return nil
		}
	}
	return errors.New("node has no Ready condition")
}

func TestPodRunsAndBecomesReady(t *testing.T) {
	env := testenv.Start(t)
	rt := sim.New(sim.Config{Subnet: "10.88.7.0/24"})
	startAgent(t, env, rt, Config{})
	p := simPod("web", map[string]string{sim.AnnotationReadyAfter: "300ms"}, "app", "sidecar")
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}
	createPod(t, env, p)

	pod := waitPod(t, env, "web", 20*time.Second, podReady)
	if !strings.HasPrefix(pod.Status.PodIP, "10.88.7.") || len(pod.Status.PodIPs) != 1 {
		t.Errorf("podIP %q podIPs %v, want one address in 10.88.7.0/24", pod.Status.PodIP, pod.Status.PodIPs)
	}
	if pod.Status.HostIP != "127.0.0.1" || pod.Status.StartTime == nil {
		t.Errorf("hostIP %q startTime %v", pod.Status.HostIP, pod.Status.StartTime)
	}
	if len(pod.Status.ContainerStatuses) != 2 {
		t.Fatalf("container statuses %+v", pod.Status.ContainerStatuses)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if !cs.Ready || cs.State.Running == nil || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 ||
			!strings.HasPrefix(cs.ContainerID, "drover-sim://") || cs.Image != "example.local/app:1" {
			t.Errorf("container status %+v", cs)
		}
	}
	want := map[corev1.PodConditionType]bool{corev1.PodScheduled: true, corev1.PodInitialized: true, corev1.ContainersReady: true, corev1.PodReady: true, corev1.PodReadyToStartContainers: true}
	for _, c := range pod.Status.Conditions {
		if want[c.Type] && c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s is %s", c.Type, c.Status)
		}
		delete(want, c.Type)
	}
	if len(want) > 0 {
		t.Errorf("conditions missing: %v", want)
	}
	// The runtime got the downward API value.
	cs, err := rt.ListContainers(context.Background(), runtime.ContainerFilter{Labels: map[string]string{runtime.LabelContainerName: "app"}})
	if err != nil || len(cs) != 1 {
		t.Fatalf("list app containers: %v %v", cs, err)
	}
}

// Once a pod is Ready and nothing changes, syncs write no status.
func TestSteadyPodWritesNoStatus(t *testing.T) {
	env := testenv.Start(t)
	var mu sync.Mutex
	syncs, writes := 0, 0
	startAgent(t, env, sim.New(sim.Config{}), Config{synced: func(key string, wrote bool) {
		mu.Lock()
		defer mu.Unlock()
		if key == "default/calm" {
			syncs++
			if wrote {
				writes++
			}
		}
	}})
	createPod(t, env, simPod("calm", nil))
	waitPod(t, env, "calm", 20*time.Second, podReady)
	mu.Lock()
	s0, w0 := syncs, writes
	mu.Unlock()
	testenv.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if syncs < s0+20 {
			return fmt.Errorf("%d syncs since Ready", syncs-s0)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if writes > w0+1 { // the write that made it Ready may land after the Get
		t.Errorf("%d status writes in %d syncs of a steady pod", writes-w0, syncs-s0)
	}
}

func TestNeverReadyPodStaysUnready(t *testing.T) {
	env := testenv.Start(t)
	startAgent(t, env, sim.New(sim.Config{}), Config{})
	createPod(t, env, simPod("stuck", map[string]string{sim.AnnotationNeverReady: "true"}))
	pod := waitPod(t, env, "stuck", 20*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		return nil
	})
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Reason != ReasonContainersNotReady) {
			t.Errorf("Ready condition %+v, want False ContainersNotReady", c)
		}
	}
}

func TestCrashLoopBackOff(t *testing.T) {
	env := testenv.Start(t)
	startAgent(t, env, sim.New(sim.Config{}), Config{BackoffBase: 200 * time.Millisecond, BackoffCap: 800 * time.Millisecond})
	createPod(t, env, simPod("crashy", map[string]string{sim.AnnotationCrashAfter: "50ms", sim.AnnotationExitCode: "3"}))

	// Watch the back-off messages grow: 200ms, 400ms, 800ms.
	seen := map[string]bool{}
	pod := waitPod(t, env, "crashy", 30*time.Second, func(p *corev1.Pod) error {
		if len(p.Status.ContainerStatuses) != 1 {
			return errors.New("no container status")
		}
		cs := p.Status.ContainerStatuses[0]
		if w := cs.State.Waiting; w != nil && w.Reason == ReasonCrashLoopBackOff {
			seen[strings.Fields(w.Message)[1]] = true
		}
		if cs.RestartCount < 4 || !seen["200ms"] || !seen["400ms"] || !seen["800ms"] {
			return fmt.Errorf("restartCount %d, back-offs seen %v", cs.RestartCount, seen)
		}
		return nil
	})
	cs := pod.Status.ContainerStatuses[0]
	if term := cs.LastTerminationState.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("lastState %+v, want terminated with exit code 3", cs.LastTerminationState)
	}
	if pod.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running (restartPolicy Always)", pod.Status.Phase)
	}
	// The agent tells `kubectl describe` what happened, as the kubelet does.
	testenv.Eventually(t, 10*time.Second, func() error {
		evs, err := env.Kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		reasons := map[string]bool{}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "crashy" && e.Source.Component == "kubelet" {
				reasons[e.Reason] = true
			}
		}
		if !reasons["Started"] || !reasons["BackOff"] {
			return fmt.Errorf("events for the pod: %v, want Started and BackOff", reasons)
		}
		return nil
	})
}

func TestRestartPolicyNeverCompletes(t *testing.T) {
	env := testenv.Start(t)
	startAgent(t, env, sim.New(sim.Config{}), Config{})
	p := simPod("job", map[string]string{sim.AnnotationCrashAfter: "50ms", sim.AnnotationExitCode: "0"})
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "example.local/app:1"}}
	createPod(t, env, p)
	pod := waitPod(t, env, "job", 20*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodSucceeded {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		return nil
	})
	if cs := pod.Status.ContainerStatuses[0]; cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" || cs.RestartCount != 0 {
		t.Errorf("container status %+v, want terminated Completed without restarts", cs)
	}
	if ic := pod.Status.InitContainerStatuses; len(ic) != 1 || ic[0].State.Terminated == nil || ic[0].State.Terminated.ExitCode != 0 {
		t.Errorf("init container statuses %+v", ic)
	}
}

func TestPodDeletion(t *testing.T) {
	env := testenv.Start(t)
	rt := sim.New(sim.Config{})
	startAgent(t, env, rt, Config{})
	createPod(t, env, simPod("doomed", nil))
	waitPod(t, env, "doomed", 20*time.Second, podReady)
	ctx := context.Background()
	if err := env.Kube.CoreV1().Pods("default").Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		_, err := env.Kube.CoreV1().Pods("default").Get(ctx, "doomed", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("pod still there: %v", err)
	})
	if sbs, _ := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{}); len(sbs) != 0 {
		t.Errorf("sandboxes left after deletion: %+v", sbs)
	}
}

func TestAgentRestartAdoptsContainers(t *testing.T) {
	env := testenv.Start(t)
	rt := sim.New(sim.Config{})
	dir := t.TempDir()
	a := startAgent(t, env, rt, Config{DataDir: dir})
	ctx := context.Background()
	createPod(t, env, simPod("keeper", nil))
	createPod(t, env, simPod("goner", nil))
	before := waitPod(t, env, "keeper", 20*time.Second, podReady)
	goner := waitPod(t, env, "goner", 20*time.Second, podReady)
	a.stop()

	// While the agent is away, one pod is removed from the API for good.
	zero := int64(0)
	if err := env.Kube.CoreV1().Pods("default").Delete(ctx, "goner", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	startAgent(t, env, rt, Config{DataDir: dir})
	testenv.Eventually(t, 20*time.Second, func() error {
		sbs, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: string(goner.UID)}})
		if err != nil || len(sbs) > 0 {
			return fmt.Errorf("sandboxes of the deleted pod still there: %v %v", sbs, err)
		}
		return nil
	})
	// Let the new agent sync the kept pod a few times, then check nothing
	// restarted and the status is unchanged.
	testenv.Eventually(t, 5*time.Second, func() error {
		cs, err := rt.ListContainers(ctx, runtime.ContainerFilter{Labels: map[string]string{runtime.LabelPodUID: string(before.UID)}})
		if err != nil {
			return err
		}
		if len(cs) != 1 || cs[0].Attempt != 0 || cs[0].State != runtime.ContainerRunning {
			t.Fatalf("containers after restart: %+v, want the one running first instance", cs)
		}
		return nil
	})
	after := waitPod(t, env, "keeper", 10*time.Second, podReady)
	if b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]; a.ContainerID != b.ContainerID || a.RestartCount != 0 || !a.Ready {
		t.Errorf("after agent restart: %+v, before: %+v", a, b)
	}
}

func TestLogsAndStatsEndpoint(t *testing.T) {
	env := testenv.Start(t)
	a := startAgent(t, env, sim.New(sim.Config{}), Config{BackoffBase: 100 * time.Millisecond})
	createPod(t, env, simPod("busy", map[string]string{sim.AnnotationCPUMillicores: "250", sim.AnnotationMemory: "64Mi"}))
	createPod(t, env, simPod("crashy", map[string]string{sim.AnnotationCrashAfter: "100ms"}))
	waitPod(t, env, "busy", 20*time.Second, podReady)
	waitPod(t, env, "crashy", 20*time.Second, func(p *corev1.Pod) error {
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].RestartCount < 1 {
			return errors.New("not restarted yet")
		}
		return nil
	})
	base := "http://" + a.info.Addr

	body, code := get(t, base+"/containerLogs/default/crashy/app?previous=true")
	if code != http.StatusOK || !strings.Contains(body, "exited with code 1") {
		t.Errorf("previous logs: %d %q", code, body)
	}
	body, code = get(t, base+"/containerLogs/default/busy/app?tailLines=1&timestamps=true")
	if code != http.StatusOK || !strings.Contains(body, "attempt 0 started") || strings.Count(body, "\n") != 1 {
		t.Errorf("logs: %d %q", code, body)
	}
	if _, code = get(t, base+"/containerLogs/default/busy/app?previous=true"); code != http.StatusBadRequest {
		t.Errorf("previous logs of a container that never restarted: %d, want 400", code)
	}
	if _, code = get(t, base+"/containerLogs/default/nope/app"); code != http.StatusNotFound {
		t.Errorf("logs of a missing pod: %d, want 404", code)
	}

	body, code = get(t, base+"/stats/summary")
	if code != http.StatusOK {
		t.Fatalf("stats: %d %s", code, body)
	}
	var sum Summary
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range sum.Pods {
		if p.PodRef.Name != "busy" {
			continue
		}
		found = true
		c := p.Containers[0]
		if cores := *c.CPU.UsageNanoCores; cores < 240e6 || cores > 260e6 {
			t.Errorf("usageNanoCores %d, want about 250m", cores)
		}
		if *c.Memory.WorkingSetBytes != 64<<20 {
			t.Errorf("workingSetBytes %d, want 64Mi", *c.Memory.WorkingSetBytes)
		}
	}
	if !found || sum.Node.NodeName != "node-1" {
		t.Errorf("summary %s", body)
	}
	if body, code = get(t, base+"/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("healthz %d %q", code, body)
	}
	// The agent's own metrics: its pod queue's and pod start latency.
	body, code = get(t, base+"/metrics")
	for _, want := range []string{`workqueue_adds_total{name="pods"}`, "kubelet_pod_start_duration_seconds_count", "go_goroutines"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics: %d, no %s in:\n%.2000s", code, want, body)
		}
	}
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// A sandbox that dies is replaced and its containers start again in the new
// one, their restart count going on.
func TestDeadSandboxIsReplaced(t *testing.T) {
	env := testenv.Start(t)
	rt := sim.New(sim.Config{})
	startAgent(t, env, rt, Config{})
	ctx := context.Background()
	createPod(t, env, simPod("phoenix", nil))
	before := waitPod(t, env, "phoenix", 20*time.Second, podReady)
	sbs, err := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: string(before.UID)}})
	if err != nil || len(sbs) != 1 {
		t.Fatalf("sandboxes %+v %v", sbs, err)
	}
	if err := rt.StopPodSandbox(ctx, sbs[0].ID); err != nil {
		t.Fatal(err)
	}
	after := waitPod(t, env, "phoenix", 20*time.Second, func(p *corev1.Pod) error {
		if err := podReady(p); err != nil {
			return err
		}
		if p.Status.ContainerStatuses[0].RestartCount != 1 {
			return fmt.Errorf("restartCount %d", p.Status.ContainerStatuses[0].RestartCount)
		}
		return nil
	})
	if after.Status.PodIP == "" {
		t.Error("no pod IP after the sandbox was replaced")
	}
	ready := runtime.SandboxReady
	if sbs, _ := rt.ListPodSandboxes(ctx, runtime.PodSandboxFilter{State: &ready}); len(sbs) != 1 || sbs[0].Metadata.Attempt != 1 {
		t.Errorf("ready sandboxes %+v, want one, attempt 1", sbs)
	}
}

// A pod whose volume refers to a ConfigMap that does not exist yet waits in
// ContainerCreating with a FailedMount event, and starts once it exists,
// with the files in place (envFrom on it resolves then too).
func TestConfigMapVolumeAndEnv(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	startAgent(t, env, sim.New(sim.Config{}), Config{DataDir: dir})
	ctx := context.Background()
	p := simPod("configured", nil)
	p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/settings"}}
	p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}
	p = createPod(t, env, p)
	waitPod(t, env, "configured", 20*time.Second, func(p *corev1.Pod) error {
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil ||
			p.Status.ContainerStatuses[0].State.Waiting.Reason != ReasonContainerCreating {
			return fmt.Errorf("statuses %+v", p.Status.ContainerStatuses)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		evs, err := env.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "configured" && e.Reason == "FailedMount" {
				return nil
			}
		}
		return errors.New("no FailedMount event")
	})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"}, Data: map[string]string{"color": "blue"}}
	if _, err := env.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, env, "configured", 30*time.Second, podReady)
	b, err := os.ReadFile(filepath.Join(dir, "pods", string(p.UID), "volumes", "cfg", "color"))
	if err != nil || string(b) != "blue" {
		t.Errorf("configMap file: %q %v", b, err)
	}
}
