package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// haServer is one server of an HA control plane, restartable with the
// same arguments.
type haServer struct {
	*serverProc
	name   string
	argv   []string
	prefix []string // runs the command (e.g. in a network namespace)
}

// startHA runs `drover server` with args on dataDir and waits until it serves.
func startHA(t *testing.T, name, dataDir, listen string, args ...string) *haServer {
	t.Helper()
	return startHAWith(t, nil, name, dataDir, listen, args...)
}

// startHAWith is startHA with the command run by prefix (e.g. ip netns exec NS).
func startHAWith(t *testing.T, prefix []string, name, dataDir, listen string, args ...string) *haServer {
	t.Helper()
	s := &haServer{name: name, prefix: prefix, argv: append([]string{"server", "--data-dir", dataDir, "--listen", listen, "--name", name}, args...)}
	s.serverProc = launch(t, dataDir, listen, append(slices.Clone(prefix), append([]string{droverBin}, s.argv...)...))
	return s
}

func (s *haServer) restart(t *testing.T) {
	t.Helper()
	s.serverProc = launch(t, s.dataDir, s.listen, append(slices.Clone(s.prefix), append([]string{droverBin}, s.argv...)...))
}

func (s *haServer) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// launch runs argv (a drover server) and waits until it serves.
func launch(t *testing.T, dataDir, listen string, argv []string) *serverProc {
	t.Helper()
	args := argv[1:]
	p := &serverProc{dataDir: dataDir, listen: listen, kubeconfig: filepath.Join(dataDir, "admin.kubeconfig"), log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(90 * time.Second)
	for !p.ready() {
		select {
		case <-p.exited:
			t.Fatalf("drover %s exited early:\n%s", strings.Join(args, " "), tail(p.log.String(), 60))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("drover %s not ready after 90s:\n%s", strings.Join(args, " "), tail(p.log.String(), 60))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// eventually polls f every 100ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listing names every object of the kinds the test creates or the
// control plane keeps, as "kind ns/name uid".
func listing(ctx context.Context, cs kubernetes.Interface) ([]string, error) {
	var out []string
	add := func(kind string, items []metav1.Object) {
		for _, o := range items {
			out = append(out, fmt.Sprintf("%s %s/%s %s", kind, o.GetNamespace(), o.GetName(), o.GetUID()))
		}
	}
	ns, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("namespace", objs(ns.Items))
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("configmap", objs(cms.Items))
	secrets, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("secret", objs(secrets.Items))
	svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("service", objs(svcs.Items))
	deps, err := cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("deployment", objs(deps.Items))
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("node", objs(nodes.Items))
	rss, err := cs.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("replicaset", objs(rss.Items))
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	add("pod", objs(pods.Items))
	slices.Sort(out)
	return out, nil
}

func objs[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

// missingFrom returns the entries of before absent from after.
func missingFrom(before, after []string) []string {
	var missing []string
	for _, o := range before {
		if _, found := slices.BinarySearch(after, o); !found {
			missing = append(missing, o)
		}
	}
	return missing
}

func freePort(t *testing.T) string {
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestHAControlPlane runs three servers as separate processes and one agent
// (sim runtime) told of one server only: losing that server, which holds
// the controllers' lease, loses nothing: the API answers from the others, a
// new leader takes over, the agent fails over to a live server on its own
// (its node stays Ready) and a scaled Deployment's new pods run on it;
// losing two stops writes with an error; bringing one back resumes them.
func TestHAControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	ctx := context.Background()
	root := t.TempDir()
	first := startHA(t, "s1", filepath.Join(root, "s1"), freeAddr(t), "--cluster-init", "--etcd-peer-port", freePort(t))
	tokenBytes, err := os.ReadFile(filepath.Join(first.dataDir, "join-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	if !strings.HasPrefix(token, "K10") {
		t.Fatalf("join token %q", token)
	}
	// It is printed once the API serves, which may come just after readiness.
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(first.log.String(), token) {
			return fmt.Errorf("join token %q not printed at start:\n%s", token, first.log)
		}
		return nil
	})
	servers := []*haServer{first}
	for _, name := range []string{"s2", "s3"} {
		servers = append(servers, startHA(t, name, filepath.Join(root, name), freeAddr(t),
			"--join", "https://"+first.listen, "--token", token, "--etcd-peer-port", freePort(t)))
	}
	byName := map[string]*haServer{}
	for _, s := range servers {
		byName[s.name] = s
	}

	// Every server has a voting member, and every live server is listed.
	out, err := exec.Command(droverBin, "server", "members", "--kubeconfig", servers[2].kubeconfig).CombinedOutput()
	if err != nil || strings.Count(string(out), " voter ") != 3 {
		t.Fatalf("drover server members: want 3 voters, got %v:\n%s", err, out)
	}
	cs1 := first.clientset(t)
	eventually(t, 30*time.Second, "servers listed", func() error {
		cm, err := cs1.CoreV1().ConfigMaps("kube-public").Get(ctx, "drover-servers", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, s := range servers {
			if !strings.Contains(cm.Data["servers"], "https://"+s.listen) {
				return fmt.Errorf("drover-servers = %q, missing %s", cm.Data["servers"], s.listen)
			}
		}
		ep, err := cs1.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(ep.Subsets) != 3 {
			return fmt.Errorf("default/kubernetes endpoints have %d subsets, want 3 (one per server port)", len(ep.Subsets))
		}
		slices, err := cs1.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
		if err != nil {
			return err
		}
		if len(slices.Items) != 3 {
			return fmt.Errorf("default/kubernetes has %d endpointslices, want 3 (one per server port)", len(slices.Items))
		}
		return nil
	})

	holder := func(cs kubernetes.Interface) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		l, err := cs.CoordinationV1().Leases("kube-system").Get(cctx, "drover-controllers", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		id := ptr.Deref(l.Spec.HolderIdentity, "")
		name, _, _ := strings.Cut(id, "_")
		return name, nil
	}
	var leaderName string
	eventually(t, 30*time.Second, "a server holds the controllers' lease", func() error {
		leaderName, err = holder(cs1)
		if err == nil && byName[leaderName] == nil {
			err = fmt.Errorf("lease holder %q is none of the servers", leaderName)
		}
		return err
	})
	leader := byName[leaderName]

	// One agent, told of the leader only: it learns the other servers from the cluster.
	const node = "ha-node"
	nodeToken := strings.TrimSpace(readFileString(t, filepath.Join(first.dataDir, "node-token")))
	agentDir := filepath.Join(root, "agent")
	ag := &agentProc{name: node, dataDir: agentDir, subnet: "10.77.0.0/16", args: []string{"agent", "--runtime", "sim",
		"--node-name", node, "--server", "https://" + leader.listen, "--token", nodeToken, "--data-dir", agentDir,
		"--listen", "127.0.0.1:0", "--pod-subnet", "10.77.0.0/16", "--heartbeat-interval", "1s"}}
	startAgentProc(t, ag)
	eventually(t, 60*time.Second, "the agent's node is Ready and it knows every server", func() error {
		if ready, err := nodeReady(cs1, node); err != nil || !ready {
			return fmt.Errorf("node %s not Ready (%v); agent log:\n%s", node, err, tail(ag.log.String(), 20))
		}
		known, err := os.ReadFile(filepath.Join(agentDir, "servers"))
		if err != nil {
			return err
		}
		for _, s := range servers {
			if !strings.Contains(string(known), "https://"+s.listen) {
				return fmt.Errorf("the agent knows servers %q, not %s", known, s.listen)
			}
		}
		return nil
	})

	// Objects, including a ReplicaSet whose pods the leader's controller
	// makes, and a Deployment running on the agent.
	if _, err := cs1.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ha"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	appLabels := map[string]string{"app": "app"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: appLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: appLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.local/app:1.0"}}},
			},
		},
	}
	if _, err := cs1.AppsV1().Deployments("ha").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// appReady checks that the Deployment has want ready pods, all on the agent's node.
	appReady := func(cs kubernetes.Interface, want int) func() error {
		return func() error {
			d, err := cs.AppsV1().Deployments("ha").Get(ctx, "app", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Status.ReadyReplicas != int32(want) || d.Status.UpdatedReplicas != int32(want) {
				return fmt.Errorf("deployment app: %d ready, %d updated, want %d", d.Status.ReadyReplicas, d.Status.UpdatedReplicas, want)
			}
			pods, err := cs.CoreV1().Pods("ha").List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
			if err != nil {
				return err
			}
			ready := 0
			for _, p := range pods.Items {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Spec.NodeName == node && p.DeletionTimestamp == nil {
						ready++
					}
				}
			}
			if ready != want {
				return fmt.Errorf("%d ready pods of app on %s, want %d", ready, node, want)
			}
			return nil
		}
	}
	eventually(t, 60*time.Second, "deployment app runs 2 ready pods on the agent", appReady(cs1, 2))
	for i := range 30 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("before-%d", i)}, Data: map[string]string{"i": fmt.Sprint(i)}}
		if _, err := servers[i%3].clientset(t).CoreV1().ConfigMaps("ha").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app": "web"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.local/web:1.0"}}},
			},
		},
	}
	if _, err := cs1.AppsV1().ReplicaSets("ha").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podCount := func(cs kubernetes.Interface, want int) func() error {
		return func() error {
			pods, err := cs.CoreV1().Pods("ha").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return err
			}
			if len(pods.Items) != want {
				return fmt.Errorf("%d pods, want %d", len(pods.Items), want)
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, "replicaset creates 2 pods", podCount(cs1, 2))
	before, err := listing(ctx, cs1)
	if err != nil {
		t.Fatal(err)
	}

	var survivors []*haServer
	for _, s := range servers {
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	// Its admin kubeconfig names the other servers too.
	eventually(t, 30*time.Second, "the leader's admin kubeconfig lists the other servers", func() error {
		data, err := os.ReadFile(leader.kubeconfig)
		if err != nil {
			return err
		}
		for _, s := range survivors {
			if !strings.Contains(string(data), "name: drover@"+s.name) || !strings.Contains(string(data), "https://"+s.listen) {
				return fmt.Errorf("no cluster drover@%s (https://%s) in:\n%s", s.name, s.listen, data)
			}
		}
		return nil
	})

	// Kill the server whose controllers act, which is the agent's.
	if name, err := holder(cs1); err != nil || name != leaderName {
		t.Fatalf("the controllers' lease moved from %s to %q (%v) before the kill", leaderName, name, err)
	}
	leader.kill9(t)
	died := time.Now()

	// Writes succeed again through either survivor; a new leader holds the
	// lease; the agent renews its node's lease through a survivor.
	var writeAfter, leaseAfter, nodeAfter time.Duration
	var renewed time.Time
	for i := 0; writeAfter == 0 || leaseAfter == 0 || nodeAfter == 0; i++ {
		if time.Since(died) > 60*time.Second {
			t.Fatalf("after 60s: write ok after %v, new leader after %v, node lease renewed after %v; agent log:\n%s",
				writeAfter, leaseAfter, nodeAfter, tail(ag.log.String(), 30))
		}
		cs := survivors[i%2].clientset(t)
		if writeAfter == 0 {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cs.CoreV1().ConfigMaps("ha").Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("during-%d", i)}}, metav1.CreateOptions{})
			cancel()
			if err == nil {
				writeAfter = time.Since(died)
			}
		}
		if leaseAfter == 0 {
			if name, err := holder(cs); err == nil && name != leaderName && byName[name] != nil && byName[name].alive() {
				leaseAfter = time.Since(died)
			}
		}
		if nodeAfter == 0 {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(cctx, node, metav1.GetOptions{})
			cancel()
			// Renewed after the death: through a survivor (the lease's time is the agent's clock, this machine's).
			if err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(died) {
				nodeAfter, renewed = time.Since(died), l.Spec.RenewTime.Time
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("leader %s killed: first successful write after %.2fs, new leader holds the lease after %.2fs, "+
		"the agent renewed its node lease through another server after %.2fs (renew time +%.2fs)",
		leaderName, writeAfter.Seconds(), leaseAfter.Seconds(), nodeAfter.Seconds(), renewed.Sub(died).Seconds())
	if !strings.Contains(ag.log.String(), "switching") {
		t.Errorf("the agent's log says nothing of switching servers:\n%s", tail(ag.log.String(), 30))
	}

	// The API answers from both survivors, and the new leader's controllers act.
	for _, s := range survivors {
		if _, err := s.clientset(t).CoreV1().ConfigMaps("ha").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("%s does not answer: %v", s.name, err)
		}
	}
	scaled := time.Now()
	// Through the dead server's own admin kubeconfig: drover kubectl fails over.
	leader.mustKubectl(t, "-n", "ha", "scale", "replicaset/web", "--replicas=4")
	leader.mustKubectl(t, "-n", "ha", "scale", "deployment/app", "--replicas=4")
	if out, err := exec.Command(droverBin, "server", "members", "--kubeconfig", leader.kubeconfig).CombinedOutput(); err != nil || strings.Count(string(out), " voter ") != 3 {
		t.Errorf("drover server members with the dead server's kubeconfig: %v\n%s", err, out)
	}
	cs := survivors[1].clientset(t)
	eventually(t, 30*time.Second, "new leader's replicaset controller scales to 4", podCount(cs, 4))
	eventually(t, 60*time.Second, "deployment app scaled to 4 ready pods on the agent", appReady(cs, 4))
	t.Logf("kubectl scale took effect (4 ready pods on the agent) %.2fs after it was sent (%.2fs after the leader's death)",
		time.Since(scaled).Seconds(), time.Since(died).Seconds())
	// The node stayed Ready throughout and its lease keeps being renewed.
	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && (c.Status != corev1.ConditionTrue || c.LastTransitionTime.After(died)) {
			t.Errorf("node %s Ready condition %s since %s: it did not stay Ready through the failover", node, c.Status, c.LastTransitionTime)
		}
	}
	eventually(t, 10*time.Second, "the node lease keeps being renewed", func() error {
		l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !l.Spec.RenewTime.After(renewed) {
			return fmt.Errorf("renew time %s not after %s", l.Spec.RenewTime, renewed)
		}
		return nil
	})
	after, err := listing(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	if missing := missingFrom(before, after); len(missing) > 0 {
		t.Fatalf("%d objects lost with the leader: %v", len(missing), missing)
	}

	// The killed server rejoins and catches up.
	leader.restart(t)
	lcs := leader.clientset(t)
	eventually(t, 30*time.Second, "restarted server catches up", func() error {
		got, err := listing(ctx, lcs)
		if err != nil {
			return err
		}
		if missing := missingFrom(after, got); len(missing) > 0 {
			return fmt.Errorf("%d objects missing, e.g. %s", len(missing), missing[0])
		}
		return nil
	})

	// Two servers down: no quorum, writes fail with an error, not hang.
	alone := survivors[1]
	leader.kill9(t)
	survivors[0].kill9(t)
	acs := alone.clientset(t)
	eventually(t, 30*time.Second, "writes refused without quorum", func() error {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := acs.CoreV1().ConfigMaps("ha").Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "no-quorum"}}, metav1.CreateOptions{})
		switch {
		case err == nil:
			return errors.New("write succeeded: quorum loss not noticed yet")
		case cctx.Err() != nil:
			t.Fatalf("write without quorum hung for 30s: %v", err)
		case !apierrors.IsServiceUnavailable(err) && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err):
			t.Fatalf("write without quorum: want 503 or timeout, got %v", err)
		}
		t.Logf("write without quorum refused after %.2fs: %v", time.Since(start).Seconds(), err)
		return nil
	})
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = acs.CoreV1().ConfigMaps("ha").Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "no-quorum"}}, metav1.CreateOptions{})
	cancel()
	if err == nil || !apierrors.IsServiceUnavailable(err) && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
		t.Fatalf("second write without quorum: want 503 or timeout, got %v", err)
	}
	t.Logf("the next write refused after %.2fs", time.Since(start).Seconds())

	// One back: quorum again, writes resume, nothing lost.
	back := time.Now()
	survivors[0].restart(t)
	eventually(t, 60*time.Second, "writes resume", func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := acs.CoreV1().ConfigMaps("ha").Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "quorum-back"}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // an earlier attempt went through after its client gave up
		}
		return err
	})
	t.Logf("writes resumed %.2fs after the second server was started again", time.Since(back).Seconds())
	final, err := listing(ctx, acs)
	if err != nil {
		t.Fatal(err)
	}
	if missing := missingFrom(after, final); len(missing) > 0 {
		t.Fatalf("%d objects lost through the quorum loss: %v", len(missing), missing)
	}

	// Removing a member stops that server; the other two carry on.
	leader.restart(t)
	out, err = exec.Command(droverBin, "server", "remove", leader.name, "--kubeconfig", alone.kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("drover server remove %s: %v\n%s", leader.name, err, out)
	}
	select {
	case <-leader.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("removed server %s still running:\n%s", leader.name, tail(leader.log.String(), 20))
	}
	out, err = exec.Command(droverBin, "server", "members", "--kubeconfig", alone.kubeconfig).CombinedOutput()
	if err != nil || strings.Count(string(out), " voter ") != 2 || strings.Contains(string(out), leader.name+" ") {
		t.Fatalf("members after removing %s: %v\n%s", leader.name, err, out)
	}
	if _, err := acs.CoreV1().ConfigMaps("ha").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-remove"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("write after removing a member: %v", err)
	}
}

// netnsHosts gives n network namespaces their own addresses on a bridge
// that the test (in the host namespace) also reaches, so that servers run
// as on separate machines. It returns the command prefix and address of
// each. Needs root and ip(8).
func netnsHosts(t *testing.T, n int) (prefixes [][]string, addrs []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "network namespaces need ip(8)")
	}
	id := fmt.Sprintf("%04x", os.Getpid()&0xffff)
	subnet := fmt.Sprintf("10.213.%d", 100+os.Getpid()%150)
	bridge := "drvha" + id
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "add", bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	run("addr", "add", subnet+".1/24", "dev", bridge)
	run("link", "set", bridge, "up")
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("%s-%d", bridge, i)
		host, peer := fmt.Sprintf("%sh%d", bridge, i), fmt.Sprintf("%sn%d", bridge, i)
		addr := fmt.Sprintf("%s.%d", subnet, 10+i)
		run("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run("link", "add", host, "type", "veth", "peer", "name", peer)
		run("link", "set", peer, "netns", ns)
		run("link", "set", host, "master", bridge, "up")
		run("-n", ns, "addr", "add", addr+"/24", "dev", peer)
		run("-n", ns, "link", "set", peer, "up")
		run("-n", ns, "link", "set", "lo", "up")
		prefixes = append(prefixes, []string{"ip", "netns", "exec", ns})
		addrs = append(addrs, addr)
	}
	return prefixes, addrs
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("DROVER_E2E") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// TestHAOnSeparateAddresses runs three servers as if on three machines
// (network namespaces, one address each, default ports): etcd peers reach
// each other on their advertised addresses over TLS, default/kubernetes
// lists the three addresses on one port, and the loss of one is survived.
func TestHAOnSeparateAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	prefixes, addrs := netnsHosts(t, 3)
	ctx := context.Background()
	root := t.TempDir()
	listen := func(i int) []string {
		return []string{net.JoinHostPort(addrs[i], "6443"), "--advertise-address", addrs[i]}
	}
	l0 := listen(0)
	first := startHAWith(t, prefixes[0], "m1", filepath.Join(root, "m1"), l0[0], append(l0[1:], "--cluster-init")...)
	token, err := os.ReadFile(filepath.Join(first.dataDir, "join-token"))
	if err != nil {
		t.Fatal(err)
	}
	servers := []*haServer{first}
	for i := 1; i < 3; i++ {
		li := listen(i)
		servers = append(servers, startHAWith(t, prefixes[i], fmt.Sprintf("m%d", i+1), filepath.Join(root, fmt.Sprintf("m%d", i+1)), li[0],
			append(li[1:], "--join", "https://"+l0[0], "--token", strings.TrimSpace(string(token)))...))
	}
	out, err := exec.Command(droverBin, "server", "members", "--kubeconfig", first.kubeconfig).CombinedOutput()
	if err != nil || strings.Count(string(out), " voter ") != 3 {
		t.Fatalf("members: %v\n%s", err, out)
	}
	for _, a := range addrs {
		if !strings.Contains(string(out), "https://"+net.JoinHostPort(a, "6444")) {
			t.Errorf("members lack the peer URL on %s:6444 (API port + 1):\n%s", a, out)
		}
	}
	cs := servers[1].clientset(t)
	eventually(t, 30*time.Second, "default/kubernetes lists the three servers", func() error {
		ep, err := cs.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 3 || ep.Subsets[0].Ports[0].Port != 6443 {
			return fmt.Errorf("subsets = %+v, want the three addresses on port 6443", ep.Subsets)
		}
		return nil
	})

	// An agent (host namespace) and the admin kubeconfig, told of m1 only,
	// learn the other addresses, whose certificates name those addresses.
	const node = "netns-node"
	nodeToken := strings.TrimSpace(readFileString(t, filepath.Join(first.dataDir, "node-token")))
	agentDir := filepath.Join(root, "agent")
	ag := &agentProc{name: node, dataDir: agentDir, subnet: "10.78.0.0/16", args: []string{"agent", "--runtime", "sim",
		"--node-name", node, "--server", "https://" + l0[0], "--token", nodeToken, "--data-dir", agentDir,
		"--listen", "127.0.0.1:0", "--pod-subnet", "10.78.0.0/16", "--heartbeat-interval", "1s"}}
	startAgentProc(t, ag)
	eventually(t, 60*time.Second, "the agent's node is Ready, it and the kubeconfig know every server", func() error {
		if ready, err := nodeReady(cs, node); err != nil || !ready {
			return fmt.Errorf("node %s not Ready (%v); agent log:\n%s", node, err, tail(ag.log.String(), 20))
		}
		known, err := os.ReadFile(filepath.Join(agentDir, "servers"))
		if err != nil {
			return err
		}
		kc, err := os.ReadFile(first.kubeconfig)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			u := "https://" + net.JoinHostPort(a, "6443")
			if !strings.Contains(string(known), u) || !strings.Contains(string(kc), u) {
				return fmt.Errorf("%s missing from the agent's servers %q or the admin kubeconfig", u, known)
			}
		}
		return nil
	})

	first.kill9(t)
	died := time.Now()
	eventually(t, 30*time.Second, "the agent renews its node lease through another server", func() error {
		l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !l.Spec.RenewTime.After(died) {
			return fmt.Errorf("node lease renewed at %s, before %s died", l.Spec.RenewTime, first.name)
		}
		return nil
	})
	t.Logf("the agent renewed its node lease through another server %.2fs after %s died", time.Since(died).Seconds(), first.name)
	if out, err := first.kubectl(t, "get", "nodes", node); err != nil || !strings.Contains(out, " Ready ") {
		t.Errorf("drover kubectl with the dead server's kubeconfig: %v\n%s", err, out)
	}
	for i, s := range servers[1:] {
		cs := s.clientset(t)
		eventually(t, 30*time.Second, "write through "+s.name, func() error {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := cs.CoreV1().ConfigMaps("default").Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("after-%d", i)}}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		})
	}
	t.Logf("writes through both survivors succeeded %.2fs after %s died", time.Since(died).Seconds(), first.name)
}
