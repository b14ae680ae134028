package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/image"
	"github.com/drover/drover/internal/proxy"
	"github.com/drover/drover/internal/runtime/cri/containerd"
)

// Load generator settings: the rate it aims at, and bounds that stop it by
// itself whatever the test does.
const (
	loadRate        = 150 // requests per second
	loadWorkers     = 8
	loadMaxDuration = 10 * time.Minute
	loadTimeout     = 5 * time.Second
)

// cleanupChains removes the iptables chains of the proxies of this test
// run (see TestMain); without iptables there are none.
func cleanupChains(prefix string) {
	if _, err := exec.LookPath("iptables"); err != nil || os.Geteuid() != 0 {
		return
	}
	if err := proxy.Cleanup(context.Background(), prefix); err != nil {
		fmt.Fprintf(os.Stderr, "removing the proxies' iptables chains %s: %v\n", prefix, err)
	}
}

// proxyChains gives a test's nodes iptables chains of their own, removed
// when the test ends, pass or fail; it returns the flag that names them.
func proxyChains(t *testing.T) []string {
	prefix := fmt.Sprintf("DRW%04d", rand.IntN(10000))
	t.Cleanup(func() { cleanupChains(prefix) })
	return []string{"--proxy-chain-prefix", prefix}
}

// loadPhase counts the answers the load generator got in one part of a test.
type loadPhase struct {
	name     string
	start    time.Time
	end      time.Time
	ok       int
	failed   int
	versions map[string]int
	order    []string // versions in the order they first answered
	errs     []string // the first few failures
	// last is the version of the latest answer and streak how many
	// answers in a row had it.
	last   string
	streak int
}

func (p *loadPhase) rate() float64 {
	end := p.end
	if end.IsZero() {
		end = time.Now()
	}
	return float64(p.ok+p.failed) / end.Sub(p.start).Seconds()
}

func (p *loadPhase) String() string {
	return fmt.Sprintf("%s: %d requests in %.1fs (%.0f req/s), %d failed, versions %v (first seen in order %v)",
		p.name, p.ok+p.failed, p.end.Sub(p.start).Seconds(), p.rate(), p.failed, p.versions, p.order)
}

// trafficLoad sends GET url at loadRate, each on a new connection, from
// loadWorkers goroutines, and counts answers per phase: a failure is a
// transport error, a status other than 200 or a body that is not
// "<version> <hostname>".
type trafficLoad struct {
	url    string
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	cur *loadPhase
}

func startTraffic(t *testing.T, url, firstPhase string) *trafficLoad {
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxDuration)
	g := &trafficLoad{
		url:    url,
		client: &http.Client{Timeout: loadTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
		ctx:    ctx,
		cancel: cancel,
		cur:    &loadPhase{name: firstPhase, start: time.Now(), versions: map[string]int{}},
	}
	tokens := make(chan struct{}, loadWorkers)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(tokens)
		tick := time.NewTicker(time.Second / loadRate)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				select {
				case tokens <- struct{}{}:
				default: // all workers busy: the rate drops, and shows
				}
			}
		}
	}()
	for range loadWorkers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for range tokens {
				g.record(g.get(ctx))
			}
		}()
	}
	t.Cleanup(g.stop)
	return g
}

// get makes one request and returns the version that answered or an error.
func (g *trafficLoad) get(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return "", err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %q", resp.StatusCode, body)
	}
	f := strings.Fields(string(body))
	if len(f) != 2 {
		return "", fmt.Errorf("body %q, want \"<version> <hostname>\"", body)
	}
	return f[0], nil
}

func (g *trafficLoad) record(version string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.cur
	if err != nil {
		if g.ctx.Err() != nil {
			return // the generator is stopping
		}
		p.failed++
		if len(p.errs) < 10 {
			p.errs = append(p.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		p.last, p.streak = "", 0
		return
	}
	p.ok++
	if p.versions[version] == 0 {
		p.order = append(p.order, version)
	}
	p.versions[version]++
	if version == p.last {
		p.streak++
	} else {
		p.last, p.streak = version, 1
	}
}

// next ends the current phase, returning it, and starts the named one.
func (g *trafficLoad) next(name string) *loadPhase {
	g.mu.Lock()
	defer g.mu.Unlock()
	done := g.cur
	done.end = time.Now()
	g.cur = &loadPhase{name: name, start: done.end, versions: map[string]int{}}
	return done
}

// streakOf waits until the last n answers in a row were all version v.
func (g *trafficLoad) streakOf(t *testing.T, v string, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.cur.last != v || g.cur.streak < n {
			return fmt.Errorf("phase %s: %d answers in a row of %q, want %d of %s (versions %v, %d failed)", g.cur.name, g.cur.streak, g.cur.last, n, v, g.cur.versions, g.cur.failed)
		}
		return nil
	})
}

func (g *trafficLoad) stop() {
	g.cancel()
	g.wg.Wait()
}

// trafficScenario is how one runtime runs the traffic test's web server.
type trafficScenario struct {
	up *serverProc
	// container is the runtime's fields of the web container (image or
	// command), YAML indented 8 spaces, serving version v1.
	container string
	// setVersion starts a rollout to a version ("v2", or "v3" that never
	// becomes ready) with kubectl.
	setVersion func(t *testing.T, version string)
	// manifests, if set, is the file or directory of my-web's Deployment
	// and Service applied instead of the ones built from container.
	manifests string
	// versions, if set, are the versions v1, v2 and v3 answer with.
	versions []string
}

const trafficService = `---
apiVersion: v1
kind: Service
metadata: {name: my-web}
spec:
  type: NodePort
  selector: {app: my-web}
  ports:
  - {name: http, port: 80, targetPort: http}
`

// trafficUnderRollouts is the zero-downtime scenario: Deployment my-web, 3
// replicas, one pod down and one extra at a time, a readiness probe on
// /healthz, behind a NodePort Service; a load generator sends loadRate
// requests a second to the node port on 127.0.0.1, each on a new
// connection, throughout
//
//   - a rolling update v1 → v2 (kubectl set image/env, kubectl rollout
//     status): no failed request, answers move from v1 to v2, then all v2;
//   - an update to v3 whose readiness probe always fails: the rollout
//     halts at its progress deadline, no failed request, all answers v2;
//     kubectl rollout undo, and the v3 pods go: no failed request;
//   - kubectl scale 3 → 1 → 3: no failed request.
func trafficUnderRollouts(t *testing.T, s trafficScenario) {
	up := s.up
	cs := up.clientset(t)
	ctx := context.Background()
	v1, v2, v3 := "v1", "v2", "v3"
	if s.versions != nil {
		v1, v2, v3 = s.versions[0], s.versions[1], s.versions[2]
	}
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata: {name: my-web}
spec:
  replicas: 3
  progressDeadlineSeconds: 10
  selector: {matchLabels: {app: my-web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 1, maxSurge: 1}
  template:
    metadata: {labels: {app: my-web}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: web
` + s.container + `
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
` + trafficService
	path := filepath.Join(t.TempDir(), "my-web.yaml")
	writeFile(t, path, manifest)
	if s.manifests != "" {
		path = s.manifests
	}
	up.mustKubectl(t, "apply", "-f", path)
	up.mustKubectl(t, "rollout", "status", "deployment/my-web", "--timeout=3m")
	svc, err := cs.CoreV1().Services("default").Get(ctx, "my-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodePort := svc.Spec.Ports[0].NodePort
	url := fmt.Sprintf("http://127.0.0.1:%d/", nodePort)
	t.Logf("service my-web: cluster IP %s, node port %d; load at %d req/s on %s", svc.Spec.ClusterIP, nodePort, loadRate, url)

	load := startTraffic(t, url, "v1 steady")
	load.streakOf(t, v1, 2*loadRate, time.Minute)
	check := func(p *loadPhase, final string, wantOrder ...string) {
		t.Helper()
		t.Log(p)
		if p.failed != 0 {
			t.Errorf("%s: %d failed requests, first: %s", p.name, p.failed, strings.Join(p.errs, "; "))
		}
		if len(wantOrder) > 0 && strings.Join(p.order, ",") != strings.Join(wantOrder, ",") {
			t.Errorf("%s: versions answered in the order %v, want %v", p.name, p.order, wantOrder)
		}
		if final != "" && p.last != final {
			t.Errorf("%s: last answer from %q, want %s", p.name, p.last, final)
		}
	}
	check(load.next("rollout v1→v2"), v1, v1)

	// The rolling update.
	s.setVersion(t, v2)
	up.mustKubectl(t, "rollout", "status", "deployment/my-web", "--timeout=3m")
	// Old pods that are still terminating have left the endpoints: the
	// next answers all come from v2.
	load.streakOf(t, v2, 2*loadRate, time.Minute)
	check(load.next("v3 halts"), v2, v1, v2)

	// A version that never becomes ready halts at its progress deadline.
	s.setVersion(t, v3)
	waitFor(t, 2*time.Minute, func() error {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "my-web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				return nil
			}
		}
		return fmt.Errorf("deployment my-web not halted: %+v", d.Status)
	})
	out, err := up.kubectl(t, "rollout", "status", "deployment/my-web", "--timeout=30s")
	if err == nil || !strings.Contains(out, "exceeded its progress deadline") {
		t.Errorf("kubectl rollout status on the halted rollout: %v\n%s", err, out)
	}
	load.streakOf(t, v2, loadRate, time.Minute)
	check(load.next("rollout undo"), v2, v2)

	up.mustKubectl(t, "rollout", "undo", "deployment/my-web")
	// kubectl rollout status may see the halted condition until the
	// controller has seen the undo make progress: wait for the outcome.
	waitFor(t, 3*time.Minute, func() error {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "my-web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if st := d.Status; st.ObservedGeneration < d.Generation || st.Replicas != 3 || st.UpdatedReplicas != 3 || st.AvailableReplicas != 3 {
			return fmt.Errorf("undo: deployment my-web status %+v", st)
		}
		return nil
	})
	waitPods(t, up, 3, "rollout undo")
	up.mustKubectl(t, "rollout", "status", "deployment/my-web", "--timeout=1m")
	load.streakOf(t, v2, loadRate, time.Minute)
	check(load.next("scale 3→1→3"), v2, v2)

	up.mustKubectl(t, "scale", "deployment/my-web", "--replicas=1")
	waitPods(t, up, 1, "scale to 1")
	up.mustKubectl(t, "scale", "deployment/my-web", "--replicas=3")
	up.mustKubectl(t, "rollout", "status", "deployment/my-web", "--timeout=3m")
	waitPods(t, up, 3, "scale to 3")
	load.streakOf(t, v2, loadRate, time.Minute)
	check(load.next("done"), v2, v2)
}

// waitPods waits until exactly n pods of my-web exist, all ready and none
// terminating (the ones removed have stopped).
func waitPods(t *testing.T, up *serverProc, n int, what string) {
	t.Helper()
	cs := up.clientset(t)
	waitFor(t, 2*time.Minute, func() error {
		pods, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=my-web"})
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
					ready++
				}
			}
		}
		if len(pods.Items) != n || ready != n {
			return fmt.Errorf("%s: %d pods, %d ready, want %d", what, len(pods.Items), ready, n)
		}
		return nil
	})
}

// myWebVersions are the versions of examples/my-web; the last one's
// readiness always fails.
var myWebVersions = []string{"1.0", "2.0", "3.0"}

// webImages builds the web test server once and makes an image of it per
// version of myWebVersions, tagged drover.local/my-web:VERSION, as
// examples/my-web/README.md does with drover image build; 3.0's readiness
// always fails (its unhealthy file is "/", which exists). It returns the
// archives.
func webImages(t *testing.T, ctx context.Context) []string {
	bin, err := image.BuildBinary(ctx, image.WebPackage, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var tars []string
	for i, v := range myWebVersions {
		args := []string{"-version=" + v}
		if i == len(myWebVersions)-1 {
			args = append(args, "-unhealthy-file=/")
		}
		img, err := image.FromBinary(image.Spec{Binary: bin, Args: args})
		if err != nil {
			t.Fatal(err)
		}
		tar := filepath.Join(dir, v+".tar")
		if err := image.WriteTarball(img, "drover.local/my-web:"+v, tar); err != nil {
			t.Fatal(err)
		}
		tars = append(tars, tar)
	}
	return tars
}

// startCRIUp runs `drover up --runtime cri` with the iptables proxy (as
// root) on chains of its own and a pod subnet of its own, and removes its
// pods, containers and rules when the test ends.
func startCRIUp(t *testing.T, ctx context.Context, nodeName, podSubnet string, extra ...string) (*serverProc, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs containerd")
	}
	if err := containerd.Check(); err != nil {
		skipOrFail(t, "real containers: "+err.Error())
	}
	if _, err := exec.LookPath("iptables"); err != nil || os.Geteuid() != 0 {
		skipOrFail(t, "the iptables proxy needs root and iptables")
	}
	dir := t.TempDir()
	args := append([]string{"--runtime", "cri", "--node-name", nodeName, "--agent-listen", freeAddr(t),
		"--node-ip", "127.0.0.1", "--pod-subnet", podSubnet, "--proxy-mode", "iptables"}, proxyChains(t)...)
	up := startControlPlane(t, "up", dir, freeAddr(t), append(args, extra...)...)
	t.Cleanup(func() {
		up.stop(t)
		if err := containerd.Purge(containerd.Config{Dir: filepath.Join(dir, "agent", "containerd"), PodSubnet: podSubnet}); err != nil {
			t.Errorf("containerd purge: %v", err)
		}
	})
	return up, dir
}

// importImages loads image archives into the node of `drover up` in dir.
func importImages(t *testing.T, ctx context.Context, dir string, tars ...string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, droverBin, append([]string{"image", "import", "--data-dir", filepath.Join(dir, "agent")}, tars...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("drover image import: %v\n%s", err, out)
	}
}

// TestTrafficOnCRI runs the zero-downtime scenario (trafficUnderRollouts)
// with real containers and the iptables proxy: `drover up --runtime cri`,
// three versions of the web image imported with `drover image import`,
// kubectl set image for each rollout.
func TestTrafficOnCRI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	up, dir := startCRIUp(t, ctx, "cri-traffic", "10.247.0.0/24")
	t.Cleanup(func() { deleteAndWait(t, up, "my-web") })
	importImages(t, ctx, dir, webImages(t, ctx)...)
	// The walkthrough's own manifests: examples/my-web.
	trafficUnderRollouts(t, trafficScenario{
		up:        up,
		manifests: "../../examples/my-web",
		versions:  myWebVersions,
		setVersion: func(t *testing.T, v string) {
			up.mustKubectl(t, "set", "image", "deployment/my-web", "web=drover.local/my-web:"+v)
		},
	})
}

// TestTrafficOnProcess runs the zero-downtime scenario
// (trafficUnderRollouts) on the process runtime with the userspace proxy:
// the web server is the container's command, its version from $VERSION,
// so each rollout is a kubectl set env (the process runtime does not use
// images).
func TestTrafficOnProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the process runtime")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	web, err := image.BuildBinary(ctx, image.WebPackage, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up := startControlPlane(t, "up", t.TempDir(), freeAddr(t), "--runtime", "process", "--node-name", "proc-traffic",
		"--agent-listen", freeAddr(t), "--node-ip", "127.0.0.1", "--pod-subnet", "127.79.0.0/16", "--proxy-mode", "userspace")
	t.Cleanup(func() { deleteAndWait(t, up, "my-web") })
	trafficUnderRollouts(t, trafficScenario{
		up: up,
		// Pods share the host's network: each binds its own POD_IP.
		container: `        image: unused
        command: ["sh", "-c", "exec ` + web + ` -addr=$POD_IP:8080 -unhealthy-file=\"$UNHEALTHY_FILE\""]
        env: [{name: VERSION, value: v1}]`,
		setVersion: func(t *testing.T, v string) {
			args := []string{"set", "env", "deployment/my-web", "VERSION=" + v}
			if v == "v3" {
				args = append(args, "UNHEALTHY_FILE=/")
			}
			up.mustKubectl(t, args...)
		},
	})
}
