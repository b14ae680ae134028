package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/image"
	"github.com/drover/drover/internal/runtime/cri/containerd"
)

// TestTopAndAutoscale runs `drover up` with simulated containers that
// report CPU use: `kubectl top` shows it through metrics.k8s.io, and an
// HPA made with `kubectl autoscale` scales the Deployment up to its
// maximum while usage stays above target.
func TestTopAndAutoscale(t *testing.T) {
	dir := t.TempDir()
	up := startControlPlane(t, "up", dir, freeAddr(t), "--runtime", "sim", "--node-name", "sim-1",
		"--agent-listen", freeAddr(t), "--node-ip", "127.0.0.1")
	cs := up.clientset(t)
	ctx := context.Background()

	up.mustKubectl(t, "create", "deployment", "web", "--image=web:1", "--replicas=2")
	up.mustKubectl(t, "patch", "deployment", "web", "-p",
		`{"spec":{"template":{"metadata":{"annotations":{"sim.drover.io/cpu-millicores":"300"}},"spec":{"containers":[{"name":"web","resources":{"requests":{"cpu":"200m"}}}]}}}}`)
	waitFor(t, 60*time.Second, func() error {
		out, err := up.kubectl(t, "top", "pods", "-l", "app=web")
		if err != nil || strings.Count(out, " 300m ") != 2 {
			return fmt.Errorf("kubectl top pods: %v\n%s", err, out)
		}
		return nil
	})
	if out := up.mustKubectl(t, "top", "nodes"); !strings.Contains(out, "sim-1") {
		t.Errorf("kubectl top nodes:\n%s", out)
	}
	up.mustKubectl(t, "autoscale", "deployment", "web", "--cpu=50%", "--min=1", "--max=5")
	waitFor(t, 90*time.Second, func() error {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 5 || d.Status.ReadyReplicas != 5 {
			return fmt.Errorf("web: %d replicas, %d ready; want 5 and 5", *d.Spec.Replicas, d.Status.ReadyReplicas)
		}
		return nil
	})
	hpa := up.mustKubectl(t, "get", "hpa", "web")
	if !strings.Contains(hpa, "cpu: 150%/50%") {
		t.Errorf("kubectl get hpa:\n%s", hpa)
	}
	events := up.mustKubectl(t, "describe", "hpa", "web")
	if !strings.Contains(events, "SuccessfulRescale") {
		t.Errorf("kubectl describe hpa shows no rescale event:\n%s", events)
	}
}

// hpaStabilization is the scale-down stabilization window the real-container
// autoscaling tests give their HPA (upstream's default is 5 minutes,
// Drover's 1 minute).
const hpaStabilization = 15 * time.Second

// hpaMaxReplicas is the HPA's maxReplicas in those tests.
const hpaMaxReplicas = 3

// TestHPAOnCRI runs the autoscaling scenario (autoscaleUnderLoad) with real
// containers: `drover up --runtime cri` and the web image imported with
// `drover image import`.
func TestHPAOnCRI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs containerd")
	}
	if err := containerd.Check(); err != nil {
		skipOrFail(t, "real containers: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	up := startControlPlane(t, "up", dir, freeAddr(t), "--runtime", "cri", "--node-name", "cri-1",
		"--agent-listen", freeAddr(t), "--node-ip", "127.0.0.1")
	t.Cleanup(func() {
		// Containers outlive `drover up`: remove the pods through
		// the agent first, then what is left of Drover's containerd.
		deleteAndWait(t, up, "web")
		up.stop(t)
		if err := containerd.Purge(containerd.Config{Dir: filepath.Join(dir, "agent", "containerd")}); err != nil {
			t.Errorf("containerd purge: %v", err)
		}
	})
	tar, err := image.BuildPackage(ctx, image.WebPackage, image.WebImage, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, droverBin, "image", "import", "--data-dir", filepath.Join(dir, "agent"), tar).CombinedOutput()
	if err != nil {
		t.Fatalf("drover image import: %v\n%s", err, out)
	}
	autoscaleUnderLoad(t, up, "cri", `        image: `+image.WebImage+`
        imagePullPolicy: IfNotPresent`)
}

// TestHPAOnProcess runs the autoscaling scenario (autoscaleUnderLoad) on the
// process runtime: the web server built from test/images/web is the
// container's command, its CPU counted by the pod's cgroup (or /proc).
func TestHPAOnProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the process runtime")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	web, err := image.BuildBinary(ctx, image.WebPackage, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	up := startControlPlane(t, "up", dir, freeAddr(t), "--runtime", "process", "--node-name", "proc-1",
		"--agent-listen", freeAddr(t), "--node-ip", "127.0.0.1", "--pod-subnet", "127.78.0.0/16")
	t.Cleanup(func() { deleteAndWait(t, up, "web") })
	// Pods share the host's network: each binds its own POD_IP.
	autoscaleUnderLoad(t, up, "process", `        image: unused
        command: ["sh", "-c", "exec `+web+` -addr=$POD_IP:8080"]`)
}

// autoscaleUnderLoad is the autoscaling scenario on real processes: a
// Deployment of the web server (container gives the runtime's fields of its
// container, as YAML indented 8 spaces) with 100m CPU requests, one replica,
// and `kubectl autoscale --cpu-percent=50 --min=1 --max=3` with a 15 s
// scale-down stabilization window. A load generator calls /burn on the
// ready pods at their IPs (about 0.4 core in all): the HPA scales up, to
// the maximum; `kubectl get hpa` shows the utilization above the target.
// The load stops: after the window the Deployment is back at one replica,
// and `kubectl describe hpa` shows both rescales. The seconds from load
// start to the first scale-up and from load end to the scale-down are
// logged.
func autoscaleUnderLoad(t *testing.T, up *serverProc, runtimeName, container string) {
	cs := up.clientset(t)
	ctx := context.Background()
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
` + container + `
        ports: [{containerPort: 8080}]
        resources: {requests: {cpu: 100m}}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
`
	path := filepath.Join(t.TempDir(), "web.yaml")
	writeFile(t, path, manifest)
	up.mustKubectl(t, "apply", "-f", path)
	waitFor(t, 2*time.Minute, func() error {
		if ips := readyPodIPs(ctx, cs); len(ips) != 1 {
			return fmt.Errorf("%d ready web pods, want 1\n%s", len(ips), tail(up.log.String(), 20))
		}
		return nil
	})
	// The pod is measured before the load starts, so that the load,
	// not the pipeline's start, is what the timing measures.
	waitFor(t, time.Minute, func() error {
		out, err := up.kubectl(t, "top", "pods", "-l", "app=web", "--no-headers")
		if err != nil || !strings.HasPrefix(out, "web-") {
			return fmt.Errorf("kubectl top pods: %v\n%s", err, out)
		}
		return nil
	})
	expectLines(t, "autoscale", up.mustKubectl(t, "autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", fmt.Sprintf("--max=%d", hpaMaxReplicas)),
		`^horizontalpodautoscaler.autoscaling/web autoscaled$`)
	up.mustKubectl(t, "patch", "hpa", "web", "--type=merge", "-p",
		fmt.Sprintf(`{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":%d}}}}`, int(hpaStabilization.Seconds())))
	// The idle Deployment stays at one replica, measured.
	waitFor(t, time.Minute, func() error {
		h, err := cs.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metaGet)
		if err != nil {
			return err
		}
		if len(h.Status.CurrentMetrics) == 0 || h.Status.CurrentMetrics[0].Resource == nil {
			return fmt.Errorf("hpa web has no current metrics yet: %+v", h.Status)
		}
		if u := h.Status.CurrentMetrics[0].Resource.Current.AverageUtilization; u == nil || *u >= 50 {
			return fmt.Errorf("idle web at %v%% of its CPU request", u)
		}
		return nil
	})

	replicas := func() (int32, error) {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metaGet)
		if err != nil {
			return 0, err
		}
		return *d.Spec.Replicas, nil
	}
	if n, err := replicas(); err != nil || n != 1 {
		t.Fatalf("idle web: %d replicas (%v), want 1 before the load", n, err)
	}
	load := startLoad(t, cs)
	loadStart := time.Now()
	waitFor(t, 2*time.Minute, func() error {
		if n, err := replicas(); err != nil || n < 2 {
			return fmt.Errorf("web: %d replicas (%v); want a scale-up (%d requests served)", n, err, load.served.Load())
		}
		return nil
	})
	scaleUp := time.Since(loadStart)
	waitFor(t, 2*time.Minute, func() error {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metaGet)
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != hpaMaxReplicas || d.Status.ReadyReplicas != hpaMaxReplicas {
			return fmt.Errorf("web: %d replicas, %d ready; want %d", *d.Spec.Replicas, d.Status.ReadyReplicas, hpaMaxReplicas)
		}
		return nil
	})
	// TARGETS: current/target, current above the target under load.
	targets := regexp.MustCompile(`cpu: (\d+)%/50%`)
	waitFor(t, time.Minute, func() error {
		out, err := up.kubectl(t, "get", "hpa", "web")
		m := targets.FindStringSubmatch(out)
		if err != nil || m == nil {
			return fmt.Errorf("kubectl get hpa: %v\n%s", err, out)
		}
		if cur, _ := strconv.Atoi(m[1]); cur <= 50 {
			return fmt.Errorf("kubectl get hpa under load shows %s%%, want above 50%%:\n%s", m[1], out)
		}
		return nil
	})
	load.stop()
	loadEnd := time.Now()
	if load.served.Load() == 0 {
		t.Fatalf("the load generator got no answer (%d errors)", load.failed.Load())
	}
	waitFor(t, 2*time.Minute, func() error {
		if n, err := replicas(); err != nil || n != 1 {
			return fmt.Errorf("web: %d replicas (%v); want 1 after the load", n, err)
		}
		return nil
	})
	scaleDown := time.Since(loadEnd)
	// The last above-target recommendation came at most one sync
	// period (5 s) before the load ended: the window must have held the
	// replicas up for the rest of it.
	if scaleDown < hpaStabilization-hpaSyncPeriod {
		t.Errorf("scaled down %v after the load ended, within the %v stabilization window", scaleDown, hpaStabilization)
	}
	t.Logf("%s runtime: load start to first scale-up %.1f s; load end to scale-down to 1 replica %.1f s (stabilization window %v); load ran %.1f s, %d burn requests served, %d failed",
		runtimeName, scaleUp.Seconds(), scaleDown.Seconds(), hpaStabilization, loadEnd.Sub(loadStart).Seconds(), load.served.Load(), load.failed.Load())

	describe := up.mustKubectl(t, "describe", "hpa", "web")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`SuccessfulRescale\s+.*New size: [23]; reason: cpu resource utilization \(percentage of request\) above target`),
		regexp.MustCompile(`SuccessfulRescale\s+.*New size: 1; reason: All metrics below target`),
	} {
		if !want.MatchString(describe) {
			t.Errorf("kubectl describe hpa has no event matching %s:\n%s", want, describe)
		}
	}
}

// hpaSyncPeriod is the HPA controller's default sync period.
const hpaSyncPeriod = 5 * time.Second

// loadGen is a running load generator (startLoad).
type loadGen struct {
	served, failed atomic.Int64
	cancel         context.CancelFunc
	done           chan struct{}
}

// stop ends the load and waits for the last request.
func (l *loadGen) stop() {
	l.cancel()
	<-l.done
}

// startLoad calls /burn?ms=20 every 50 ms (about 0.4 core), on each ready
// app=web pod in turn at its IP, port 8080. It is bounded: it stops by
// itself after 5 minutes or 6000 requests, and at the end of the test.
func startLoad(t *testing.T, cs *kubernetes.Clientset) *loadGen {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	l := &loadGen{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(l.stop)
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ips []string
		var listed time.Time
		for i := 0; i < 6000; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if time.Since(listed) > time.Second {
				ips, listed = readyPodIPs(ctx, cs), time.Now()
			}
			if len(ips) == 0 {
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ips[i%len(ips)], "8080")+"/burn?ms=20", nil)
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil { // not the load's end cutting a call short
					l.failed.Add(1)
				}
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				l.served.Add(1)
			} else {
				l.failed.Add(1)
			}
		}
	}()
	return l
}

// readyPodIPs lists the IPs of the ready app=web pods in default.
func readyPodIPs(ctx context.Context, cs *kubernetes.Clientset) []string {
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return nil
	}
	var ips []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ips = append(ips, p.Status.PodIP)
			}
		}
	}
	return ips
}

// deleteAndWait deletes the Deployment name, labelled app=name like its
// pods, and waits until those pods are gone, so that no container
// outlives the test.
func deleteAndWait(t *testing.T, up *serverProc, name string) {
	t.Helper()
	select {
	case <-up.exited:
		return
	default:
	}
	cs := up.clientset(t)
	selector := "app=" + name
	if _, err := up.kubectl(t, "delete", "deployment", name, "--ignore-not-found"); err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		pods, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err == nil && len(pods.Items) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("cleanup: %s pods still there a minute after deleting the Deployment", selector)
}
