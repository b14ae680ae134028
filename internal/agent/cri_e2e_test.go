package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drover/drover/internal/image"
	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/cri/critest"
	"github.com/drover/drover/internal/testenv"
)

// webContainer is the test web server listening on port, with /healthz
// failing while unhealthyFile exists.
func webContainer(name string, port int, unhealthyFile string) corev1.Container {
	c := corev1.Container{
		Name:            name,
		Image:           image.WebImage,
		ImagePullPolicy: corev1.PullNever,
		Args:            []string{fmt.Sprintf("-addr=:%d", port)},
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 1,
		},
	}
	if unhealthyFile != "" {
		c.Args = append(c.Args, "-unhealthy-file="+unhealthyFile)
	}
	return c
}

// TestCRI drives real containers through containerd: readiness, pod IP
// reachability, shared network and volumes, restarts after a kill and a
// failing liveness probe, previous logs, agent restart, deletion.
func TestCRI(t *testing.T) {
	critest.RequireRoot(t)
	cenv := critest.Start(t)
	env := testenv.Start(t)
	dir := t.TempDir()
	cfg := Config{DataDir: dir, BackoffBase: 200 * time.Millisecond, BackoffCap: time.Second}
	a := startAgent(t, env, cenv.Runtime, cfg)
	ctx := context.Background()
	grace := int64(5)

	// Pods for all subtests at once: containers start in parallel.
	web := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: "node-1", TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{webContainer("web", 8080, "")}},
	}
	web.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "VERSION", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	web.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		HTTPGet: &corev1.HTTPGetAction{Path: "/prestop", Port: intstr.FromInt32(8080)}}}
	pair := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pair", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      "node-1",
			TerminationGracePeriodSeconds: &grace,
			Volumes:                       []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers: []corev1.Container{
				webContainer("a", 8080, "/shared/down"),
				webContainer("b", 8081, "/data/down"),
			},
		},
	}
	pair.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pair.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/data"}}
	live := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "live", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      "node-1",
			TerminationGracePeriodSeconds: &grace,
			Volumes:                       []corev1.Volume{{Name: "flags", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers:                    []corev1.Container{webContainer("web", 8080, "/flags/down")},
		},
	}
	live.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "flags", MountPath: "/flags"}}
	live.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds:    1,
		FailureThreshold: 2,
	}
	for _, p := range []*corev1.Pod{web, pair, live} {
		created := createPod(t, env, p)
		p.UID = created.UID
	}

	t.Run("ReadyAndAnswersAtPodIP", func(t *testing.T) {
		pod := waitPod(t, env, "web", time.Minute, podReady)
		if !cenv.PodSubnet.Contains(net.ParseIP(pod.Status.PodIP)) {
			t.Errorf("pod IP %s not in %s", pod.Status.PodIP, cenv.PodSubnet)
		}
		body, err := critest.Get("http://" + net.JoinHostPort(pod.Status.PodIP, "8080") + "/")
		if err != nil || !strings.HasPrefix(body, "web web") {
			t.Errorf("GET pod IP: %q %v, want the version from the downward API and the pod's hostname", body, err)
		}
		cs := pod.Status.ContainerStatuses[0]
		if !strings.HasPrefix(cs.ContainerID, "containerd://") || cs.ImageID == "" || !cs.Ready {
			t.Errorf("container status %+v", cs)
		}
	})

	t.Run("ContainersShareNetworkAndEmptyDir", func(t *testing.T) {
		pod := waitPod(t, env, "pair", time.Minute, podReady)
		ip := pod.Status.PodIP
		for _, port := range []string{"8080", "8081"} {
			if _, err := critest.Get("http://" + net.JoinHostPort(ip, port) + "/healthz"); err != nil {
				t.Fatalf("container on port %s at the pod IP: %v", port, err)
			}
		}
		// One network namespace: in container b, localhost:8080 is a's.
		ex := cenv.Runtime
		bID := containerID(t, cenv.Runtime, pod.UID, "b")
		res, err := ex.ExecSync(ctx, bID, []string{"/web", "-addr=127.0.0.1:8080"}, 10*time.Second)
		if err != nil || res.ExitCode == 0 || !strings.Contains(string(res.Stdout)+string(res.Stderr), "address already in use") {
			t.Errorf("binding localhost:8080 in container b: %v exit %d %s %s, want address already in use (a listens there)", err, res.ExitCode, res.Stdout, res.Stderr)
		}
		// One emptyDir: a file made in it fails both containers' health.
		flag := filepath.Join(dir, "pods", string(pair.UID), "volumes", "shared", "down")
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, port := range []string{"8080", "8081"} {
			if _, err := critest.Get("http://" + net.JoinHostPort(ip, port) + "/healthz"); err == nil {
				t.Errorf("container on port %s does not see the shared file", port)
			}
		}
		waitPod(t, env, "pair", 30*time.Second, func(p *corev1.Pod) error {
			if podReady(p) == nil {
				return errors.New("still ready")
			}
			return nil
		})
		os.Remove(flag)
		waitPod(t, env, "pair", 30*time.Second, podReady)
	})

	t.Run("KilledProcessRestartsAndPreviousLogs", func(t *testing.T) {
		pod := waitPod(t, env, "web", time.Minute, podReady)
		id := containerID(t, cenv.Runtime, pod.UID, "web")
		killContainerProcess(t, id)
		pod = waitPod(t, env, "web", time.Minute, func(p *corev1.Pod) error {
			if cs := p.Status.ContainerStatuses[0]; cs.RestartCount != 1 || !cs.Ready {
				return fmt.Errorf("restartCount %d ready %v", cs.RestartCount, cs.Ready)
			}
			return nil
		})
		if term := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated; term == nil || term.ExitCode != 137 {
			t.Errorf("lastState %+v, want terminated by SIGKILL (137)", pod.Status.ContainerStatuses[0].LastTerminationState)
		}
		body, code := get(t, "http://"+a.info.Addr+"/containerLogs/default/web/web?previous=true")
		if code != http.StatusOK || !strings.Contains(body, "listening on") {
			t.Errorf("previous logs: %d %q", code, body)
		}
	})

	t.Run("FailingLivenessRestarts", func(t *testing.T) {
		pod := waitPod(t, env, "live", time.Minute, podReady)
		flag := filepath.Join(dir, "pods", string(pod.UID), "volumes", "flags", "down")
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitPod(t, env, "live", time.Minute, func(p *corev1.Pod) error {
			if cs := p.Status.ContainerStatuses[0]; cs.RestartCount < 1 {
				return fmt.Errorf("restartCount %d", cs.RestartCount)
			}
			return nil
		})
		os.Remove(flag)
		waitPod(t, env, "live", time.Minute, podReady)
	})

	// The agent restarts in the test's own scope (an agent started in a
	// subtest would stop when the subtest ends).
	before := map[string]corev1.ContainerStatus{}
	for _, name := range []string{"web", "pair"} {
		p := waitPod(t, env, name, time.Minute, podReady)
		for _, cs := range p.Status.ContainerStatuses {
			before[name+"/"+cs.Name] = cs
		}
	}
	a.stop()
	a = startAgent(t, env, cenv.Runtime, cfg)
	t.Run("AgentRestartKillsNothing", func(t *testing.T) {
		// A few syncs happen within a second; then nothing has restarted.
		deadline := time.Now().Add(2 * time.Second)
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, name := range []string{"web", "pair"} {
				p, err := env.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if err := podReady(p); err != nil {
					return err
				}
				for _, cs := range p.Status.ContainerStatuses {
					b := before[name+"/"+cs.Name]
					if cs.ContainerID != b.ContainerID || cs.RestartCount != b.RestartCount {
						t.Fatalf("%s/%s after agent restart: %s restarts %d, before %s restarts %d", name, cs.Name, cs.ContainerID, cs.RestartCount, b.ContainerID, b.RestartCount)
					}
				}
			}
			if time.Now().Before(deadline) {
				return errors.New("watching a little longer")
			}
			return nil
		})
	})

	t.Run("DeletionRunsPreStopThenSIGTERMAndRemovesPod", func(t *testing.T) {
		// Follow the log through the deletion: the preStop hook's request,
		// then the app's reaction to SIGTERM.
		resp, err := http.Get("http://" + a.info.Addr + "/containerLogs/default/web/web?follow=true")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		logs := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(resp.Body)
			logs <- string(b)
		}()
		if err := env.Kube.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case out := <-logs:
			pre, term := strings.Index(out, "GET /prestop"), strings.Index(out, "web: shutting down")
			if pre < 0 || term < pre {
				t.Errorf("followed log %q, want the preStop request and then the SIGTERM shutdown", out)
			}
		case <-time.After(time.Minute):
			t.Fatal("followed log did not end with the container")
		}
		testenv.Eventually(t, time.Minute, func() error {
			_, err := env.Kube.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod still there: %v", err)
			}
			return nil
		})
		sbs, err := cenv.Runtime.ListPodSandboxes(ctx, runtime.PodSandboxFilter{Labels: map[string]string{runtime.LabelPodUID: string(web.UID)}})
		if err != nil || len(sbs) != 0 {
			t.Errorf("sandboxes after deletion: %+v %v", sbs, err)
		}
	})
}

// containerID is the running instance of a pod's container.
func containerID(t *testing.T, rt runtime.Runtime, uid types.UID, name string) runtime.ContainerID {
	t.Helper()
	running := runtime.ContainerRunning
	cs, err := rt.ListContainers(context.Background(), runtime.ContainerFilter{State: &running,
		Labels: map[string]string{runtime.LabelPodUID: string(uid), runtime.LabelContainerName: name}})
	if err != nil || len(cs) != 1 {
		t.Fatalf("running %s containers: %+v %v", name, cs, err)
	}
	return cs[0].ID
}

// killContainerProcess SIGKILLs the container's main process, found by
// the container ID in its cgroup path.
func killContainerProcess(t *testing.T, id runtime.ContainerID) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), string(id)) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if !strings.HasPrefix(string(cmdline), "/web") {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no process of container %s found", id)
}
