package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestUpRunsPodsOnItsNode starts `drover up` with the process runtime (no
// containerd needed): its node registers, a ReplicaSet applied with kubectl
// runs, its logs come through the API, a restart of `drover up` keeps the
// containers, and deleting the ReplicaSet removes pods and processes.
func TestUpRunsPodsOnItsNode(t *testing.T) {
	dir := t.TempDir()
	listen := freeAddr(t)
	agentAddr := freeAddr(t)
	args := []string{"--runtime", "process", "--node-name", "solo", "--agent-listen", agentAddr, "--node-ip", "127.0.0.1",
		"--pod-subnet", "127.77.0.0/16"}
	up := startControlPlane(t, "up", dir, listen, args...)
	cs := up.clientset(t)
	ctx := context.Background()

	waitFor(t, 60*time.Second, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, "solo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node solo not Ready: %+v", n.Status.Conditions)
	})
	manifest := `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: unused
        command: ["sh", "-c", "echo hello from $POD_IP; exec sleep 3600"]
`
	path := dir + "/rs.yaml"
	writeFile(t, path, manifest)
	expectLines(t, "apply", up.mustKubectl(t, "apply", "-f", path), `^replicaset.apps/hello created$`)

	running := func() ([]corev1.Pod, error) {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.Spec.NodeName != "solo" {
				return nil, fmt.Errorf("pod %s: phase %s ip %q node %q", p.Name, p.Status.Phase, p.Status.PodIP, p.Spec.NodeName)
			}
		}
		if len(pods.Items) != 2 {
			return nil, fmt.Errorf("%d pods, want 2", len(pods.Items))
		}
		return pods.Items, nil
	}
	var pods []corev1.Pod
	waitFor(t, 60*time.Second, func() (err error) { pods, err = running(); return err })
	first := pods[0]
	waitFor(t, 30*time.Second, func() error {
		out, err := up.kubectl(t, "logs", first.Name)
		if err != nil || strings.TrimSpace(out) != "hello from "+first.Status.PodIP {
			return fmt.Errorf("logs %q (%v)", out, err)
		}
		return nil
	})

	// Restart: the same pods keep running, nothing restarted.
	up.stop(t)
	up = startControlPlane(t, "up", dir, listen, args...)
	cs = up.clientset(t)
	waitFor(t, 60*time.Second, func() error {
		again, err := running()
		if err != nil {
			return err
		}
		for _, p := range again {
			if p.Name == first.Name {
				if p.Status.ContainerStatuses[0].RestartCount != 0 || p.Status.PodIP != first.Status.PodIP {
					return fmt.Errorf("pod %s after restart: restarts %d ip %s", p.Name, p.Status.ContainerStatuses[0].RestartCount, p.Status.PodIP)
				}
				return nil
			}
		}
		return fmt.Errorf("pod %s replaced across the restart", first.Name)
	})
	pid := containerPID(t, first.Status.PodIP)

	up.mustKubectl(t, "delete", "replicaset", "hello")
	waitFor(t, 60*time.Second, func() error {
		if _, err := cs.CoreV1().Pods("default").Get(ctx, first.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s still there (%v)", first.Name, err)
		}
		if pid != 0 && processAlive(pid) {
			return fmt.Errorf("container process %d still runs", pid)
		}
		return nil
	})
}

// containerPID finds the sleep process whose environment has POD_IP=ip.
func containerPID(t *testing.T, ip string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(env), "POD_IP="+ip+"\x00") && strings.HasPrefix(string(cmdline), "sleep") {
			return pid
		}
	}
	t.Errorf("no container process with POD_IP=%s", ip)
	return 0
}

func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie waiting for its reaper has stopped running.
	fields := strings.Fields(string(stat))
	return len(fields) > 2 && fields[2] != "Z"
}
