package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/runtime/sim"
	"github.com/drover/drover/internal/testenv"
)

// requestCounter counts the requests a client makes by method, path and
// response code.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int // "PUT /api/v1/namespaces/default/pods/x/status 409"
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		c.mu.Lock()
		c.counts[fmt.Sprintf("%s %s %d", req.Method, req.URL.Path, code)]++
		c.mu.Unlock()
		return resp, err
	})
}

// count sums the requests whose key has this prefix.
func (c *requestCounter) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.counts {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// countingClient is a client of env whose requests counter counts.
func countingClient(t *testing.T, env *testenv.Env) (*requestCounter, kubernetes.Interface) {
	t.Helper()
	counter := &requestCounter{counts: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = counter.wrap
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return counter, client
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A pod whose status changes many times in a row (a crash loop: every exit,
// restart and back-off is a status write) is written without a single
// conflict: each write starts from the resourceVersion of the agent's own
// previous write when the informer has not caught up with it yet.
func TestStatusWritesDoNotConflict(t *testing.T) {
	env := testenv.Start(t)
	counter, client := countingClient(t, env)
	startAgent(t, env, sim.New(sim.Config{}), Config{Client: client, BackoffBase: 100 * time.Millisecond, BackoffCap: 200 * time.Millisecond})
	createPod(t, env, simPod("flappy", map[string]string{sim.AnnotationCrashAfter: "20ms", sim.AnnotationExitCode: "1"}))
	waitPod(t, env, "flappy", 60*time.Second, func(p *corev1.Pod) error {
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount < 6 {
			return fmt.Errorf("container statuses %+v, want 6 restarts", p.Status.ContainerStatuses)
		}
		return nil
	})
	status := "PUT /api/v1/namespaces/default/pods/flappy/status "
	ok, conflicts := counter.count(status+"200"), counter.count(status+"409")
	rereads := counter.count("GET /api/v1/namespaces/default/pods/flappy ")
	t.Logf("pod status writes: %d OK, %d conflicts, %d re-reads", ok, conflicts, rereads)
	if ok < 6 {
		t.Errorf("%d status writes for 6 restarts: the test did not exercise a sequence of writes", ok)
	}
	if conflicts != 0 || rereads != 0 {
		t.Errorf("%d conflicts and %d re-reads in %d status writes, want none", conflicts, rereads, ok)
	}
	if n := counter.count("PUT /api/v1/namespaces/default/pods/flappy/status ") - ok - conflicts; n != 0 {
		t.Errorf("%d status writes failed otherwise", n)
	}
}

// A simulated pod with no probe of its own is reported Running and Ready
// in one status write, as its container starts and is found ready in the
// same sync (a second write per pod was a fifth of a simulated fleet's
// API writes).
func TestSimPodReadyInOneWrite(t *testing.T) {
	env := testenv.Start(t)
	counter, client := countingClient(t, env)
	startAgent(t, env, sim.New(sim.Config{}), Config{Client: client})
	createPod(t, env, simPod("plain", nil))
	waitPod(t, env, "plain", 30*time.Second, podReady)
	// The server may show the write before the agent's round trip (and
	// so the counter) has finished.
	writes := "PUT /api/v1/namespaces/default/pods/plain/status "
	testenv.Eventually(t, 10*time.Second, func() error {
		if counter.count(writes) == 0 {
			return errors.New("the status write is not counted yet")
		}
		return nil
	})
	if n := counter.count(writes); n != 1 {
		t.Errorf("%d status writes until Running and Ready, want 1", n)
	}
}

// A sync that sees the informer's copy from before the agent's own last
// status write computes from that write, so it writes nothing new: from the
// stale copy, a changed condition would get a new transition time.
func TestLatestStatusPrefersOwnNewerWrite(t *testing.T) {
	stale := &corev1.Pod{}
	stale.ResourceVersion = "10"
	stale.Status.Phase = corev1.PodPending
	written := corev1.PodStatus{Phase: corev1.PodRunning}
	st := &podState{written: &written, writtenRV: "12"}
	if got := latestStatus(stale, st); got.Status.Phase != corev1.PodRunning || got.ResourceVersion != "10" {
		t.Errorf("informer behind own write: got phase %s rv %s, want Running from the write", got.Status.Phase, got.ResourceVersion)
	}
	if stale.Status.Phase != corev1.PodPending {
		t.Error("the informer's object was modified")
	}
	fresh := stale.DeepCopy()
	fresh.ResourceVersion = "13" // someone wrote after us: theirs counts
	fresh.Status.Phase = corev1.PodFailed
	if got := latestStatus(fresh, st); got != fresh {
		t.Errorf("informer newer than own write: got phase %s, want the informer's copy", got.Status.Phase)
	}
	if got := latestStatus(stale, &podState{}); got != stale {
		t.Error("nothing written yet: want the informer's copy")
	}
}

// syncCounter counts each pod's full syncs (Config.synced).
type syncCounter struct {
	mu     sync.Mutex
	syncs  map[string]int
	writes map[string]int
}

func newSyncCounter() *syncCounter {
	return &syncCounter{syncs: map[string]int{}, writes: map[string]int{}}
}

func (c *syncCounter) synced(key string, wrote bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncs[key]++
	if wrote {
		c.writes[key]++
	}
}

func (c *syncCounter) get(key string) (syncs, writes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs[key], c.writes[key]
}

// The watch's echo of the agent's own status write is not synced again:
// a simulated pod that goes Running and Ready is synced once (and written
// once) until its resync is due, while a change someone else makes to the
// pod is synced at once.
func TestOwnStatusWriteIsNotSyncedAgain(t *testing.T) {
	env := testenv.Start(t)
	counter := newSyncCounter()
	var (
		mu    sync.Mutex
		after []time.Duration // when the syncs of "once" asked to look again
	)
	requeued := func(key string, d time.Duration) {
		if key == "default/once" {
			mu.Lock()
			after = append(after, d)
			mu.Unlock()
		}
	}
	// One worker: pods are synced in the order of their events, so once a
	// later pod has been synced, the earlier pod's echo has been handled.
	startAgent(t, env, sim.New(sim.Config{}), Config{Workers: 1, ResyncInterval: time.Hour, synced: counter.synced, requeued: requeued})
	createPod(t, env, simPod("once", nil))
	waitPod(t, env, "once", 30*time.Second, podReady)
	createPod(t, env, simPod("later", nil))
	waitPod(t, env, "later", 30*time.Second, podReady)
	testenv.Eventually(t, 10*time.Second, func() error {
		if s, _ := counter.get("default/later"); s == 0 {
			return errors.New("later not synced yet")
		}
		return nil
	})
	if s, w := counter.get("default/once"); s != 1 || w != 1 {
		t.Errorf("pod synced %d times with %d status writes until Ready and after, want 1 and 1", s, w)
	}
	// Nor does the sync ask for an early look (a first look after the
	// start, another readiness check): the pod is Ready for good and the
	// sim runtime forecasts no exit, so the next look is its resync.
	mu.Lock()
	for _, d := range after {
		if d < 30*time.Minute {
			t.Errorf("a sync of the Ready pod asked to look again in %v, want the resync (1h)", d)
		}
	}
	mu.Unlock()

	// A change of someone else's is synced.
	p, err := env.Kube.CoreV1().Pods("default").Get(t.Context(), "once", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Labels = map[string]string{"touched": "yes"}
	if _, err := env.Kube.CoreV1().Pods("default").Update(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if s, _ := counter.get("default/once"); s < 2 {
			return fmt.Errorf("%d syncs after a label change, want 2", s)
		}
		return nil
	})
	if _, w := counter.get("default/once"); w != 1 {
		t.Errorf("%d status writes after a label change, want still 1", w)
	}
}

// A simulated container's scripted exit is seen when it happens, not at
// the pod's next resync.
func TestSimCrashSeenBeforeResync(t *testing.T) {
	env := testenv.Start(t)
	startAgent(t, env, sim.New(sim.Config{}), Config{ResyncInterval: time.Hour})
	p := simPod("brief", map[string]string{sim.AnnotationCrashAfter: "300ms", sim.AnnotationExitCode: "3"})
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	createPod(t, env, p)
	waitPod(t, env, "brief", 30*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed {
			return fmt.Errorf("phase %s, want Failed", p.Status.Phase)
		}
		if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Terminated == nil || cs[0].State.Terminated.ExitCode != 3 {
			return fmt.Errorf("container statuses %+v, want terminated with 3", cs)
		}
		return nil
	})
}

// writeStatus writes from a shallow copy of the informer's pod: the pod it
// was given (the informer cache's object, shared with every reader) keeps
// its status, resourceVersion, metadata and spec, and the API server gets
// the new status.
func TestWriteStatusLeavesTheInformersPodAlone(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	created := createPod(t, env, simPod("shared", nil))
	pod, err := env.Kube.CoreV1().Pods("default").Get(ctx, created.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := pod.DeepCopy()
	m := &podManager{a: &agent{cfg: Config{Client: env.Kube}}, states: map[string]*podState{}}
	st := &podState{uid: pod.UID}
	status := *pod.Status.DeepCopy()
	status.Phase = corev1.PodRunning
	status.Message = "written from a copy"
	wrote, err := m.writeStatus(ctx, pod, st, status)
	if err != nil || !wrote {
		t.Fatalf("writeStatus = %v, %v; want a write", wrote, err)
	}
	if !apiequality.Semantic.DeepEqual(pod, before) {
		t.Errorf("writeStatus changed the pod it was given:\n got %+v\nwant %+v", pod, before)
	}
	got, err := env.Kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Message != "written from a copy" || got.ResourceVersion != st.writtenRV || got.ResourceVersion == before.ResourceVersion {
		t.Errorf("stored pod: message %q resourceVersion %s (written %s, before %s)", got.Status.Message, got.ResourceVersion, st.writtenRV, before.ResourceVersion)
	}
}
