package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// agentProc is a running `drover agent`.
type agentProc struct {
	name, dataDir, subnet string
	args                  []string
	cmd                   *exec.Cmd
	log                   *syncBuffer
	exited                chan struct{}
}

func startAgentProc(t *testing.T, a *agentProc) {
	t.Helper()
	a.log, a.exited = &syncBuffer{}, make(chan struct{})
	a.cmd = exec.Command(droverBin, a.args...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
			<-a.exited
		}
		killPodProcesses(a)
	})
}

// killPodProcesses kills, without warning, every process of the agent's
// pods: the process runtime's shims and the containers under them (their
// environment names the agent's data dir or its pod subnet).
func killPodProcesses(a *agentProc) int {
	prefix := "POD_IP=" + strings.TrimSuffix(a.subnet, "0.0/16")
	killed := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		if strings.Contains(string(env), a.dataDir) ||
			// Without a subnet of its own the prefix would match every pod.
			a.subnet != "" && strings.Contains(string(env), prefix) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	return killed
}

func nodeReady(cs kubernetes.Interface, name string) (bool, error) {
	n, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}

// TestDeadNodeMovesPodsAndDrainKeepsBudget runs a server and three agents
// (process runtime) as separate processes. Killing one agent and its
// pods' processes moves its replicas to the other two; the agent comes
// back without running anything twice; a drain under a PodDisruptionBudget
// never takes the Deployment below its budget.
func TestDeadNodeMovesPodsAndDrainKeepsBudget(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "server"), freeAddr(t))
	cs := srv.clientset(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	agents := map[string]*agentProc{}
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		a := &agentProc{name: name, dataDir: filepath.Join(dir, name), subnet: fmt.Sprintf("127.%d.0.0/16", 21+i)}
		a.args = []string{"agent", "--runtime", "process", "--node-name", name, "--data-dir", a.dataDir,
			"--kubeconfig", srv.kubeconfig, "--listen", freeAddr(t), "--node-ip", "127.0.0.1", "--pod-subnet", a.subnet,
			// Three nodes on one machine would rewrite each other's proxy
			// rules or node ports; this test needs none.
			"--proxy-mode", "none"}
		startAgentProc(t, a)
		agents[name] = a
	}
	waitFor(t, 60*time.Second, func() error {
		for name := range agents {
			if ok, err := nodeReady(cs, name); !ok {
				return fmt.Errorf("node %s not ready (%v)", name, err)
			}
		}
		return nil
	})

	manifest := `apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 6
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: unused
        command: ["sh", "-c", "exec sleep 3600"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: app}
spec:
  minAvailable: 5
  selector: {matchLabels: {app: app}}
`
	path := filepath.Join(dir, "app.yaml")
	writeFile(t, path, manifest)
	srv.mustKubectl(t, "apply", "-f", path)

	census := &podCensus{maxPods: 1 << 30}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	podInf := factory.Core().V1().Pods().Informer()
	onEvent := func(any) { census.check(podInf.GetStore()) }
	podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onEvent, UpdateFunc: func(_, o any) { onEvent(o) }, DeleteFunc: onEvent})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	// readyByNode counts ready, non-terminating pods per node.
	readyByNode := func() (map[string]int, int) {
		by, total := map[string]int{}, 0
		for _, obj := range podInf.GetStore().List() {
			p := obj.(*corev1.Pod)
			if p.DeletionTimestamp != nil {
				continue
			}
			total++
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					by[p.Spec.NodeName]++
				}
			}
		}
		return by, total
	}
	waitFor(t, 60*time.Second, func() error {
		by, total := readyByNode()
		if by["node-a"]+by["node-b"]+by["node-c"] != 6 || total != 6 || by["node-a"] == 0 {
			return fmt.Errorf("ready pods by node %v (%d pods), want 6 with some on node-a", by, total)
		}
		return nil
	})

	// kill -9 node-a's agent and its pods' processes.
	dead := agents["node-a"]
	_ = dead.cmd.Process.Signal(syscall.SIGKILL)
	<-dead.exited
	killed := time.Now()
	if n := killPodProcesses(dead); n == 0 {
		t.Fatal("found no pod processes of node-a to kill")
	}
	waitFor(t, 60*time.Second, func() error {
		if ok, _ := nodeReady(cs, "node-a"); ok {
			return fmt.Errorf("node-a still Ready")
		}
		return nil
	})
	detected := time.Since(killed)
	waitFor(t, 90*time.Second, func() error {
		by, total := readyByNode()
		if by["node-b"]+by["node-c"] != 6 || total != 6 {
			return fmt.Errorf("ready pods by node %v (%d pods), want 6 on node-b and node-c", by, total)
		}
		return nil
	})
	recovered := time.Since(killed)
	t.Logf("dead node detected after %v, its pods running elsewhere after %v", detected.Round(100*time.Millisecond), recovered.Round(100*time.Millisecond))

	// node-a comes back: Ready, nothing of its old pods runs, still 6.
	startAgentProc(t, dead)
	waitFor(t, 60*time.Second, func() error {
		if ok, err := nodeReady(cs, "node-a"); !ok {
			return fmt.Errorf("node-a not Ready again (%v)", err)
		}
		n, err := cs.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, taint := range n.Spec.Taints {
			if taint.Effect == corev1.TaintEffectNoExecute {
				return fmt.Errorf("node-a still tainted %v", taint)
			}
		}
		return nil
	})
	by, total := readyByNode()
	if total != 6 || by["node-b"]+by["node-c"] != 6 {
		t.Errorf("after node-a returned: ready by node %v, %d pods; want the same 6", by, total)
	}

	// Drain node-b under minAvailable 5: never fewer than 5 ready.
	census.mu.Lock()
	census.minReady = 5
	census.mu.Unlock()
	census.set(true)
	out := srv.mustKubectl(t, "drain", "node-b", "--ignore-daemonsets", "--timeout=120s")
	if !strings.Contains(out, "node/node-b drained") {
		t.Errorf("drain output: %s", out)
	}
	waitFor(t, 60*time.Second, func() error {
		by, total := readyByNode()
		if by["node-b"] != 0 || by["node-a"]+by["node-c"] != 6 || total != 6 {
			return fmt.Errorf("after drain: ready by node %v (%d pods)", by, total)
		}
		return nil
	})
	if v := census.set(false); len(v) > 0 {
		t.Errorf("drain went below the budget: %v", v)
	}
	node, _ := cs.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{})
	if !node.Spec.Unschedulable {
		t.Error("drained node-b is not cordoned")
	}
}
