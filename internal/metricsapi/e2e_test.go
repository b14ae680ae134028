package metricsapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/kubectl/pkg/cmd/top"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/metricsapi"
	"github.com/drover/drover/internal/runtime/sim"
	"github.com/drover/drover/internal/testenv"
)

// startAgent runs a sim agent for node until the test ends.
func startAgent(t *testing.T, env *testenv.Env, node string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan agent.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Config{
			NodeName: node, Client: env.Kube, Runtime: sim.New(sim.Config{}), DataDir: t.TempDir(),
			Logger: testenv.Logger(t), HeartbeatInterval: 100 * time.Millisecond, ResyncInterval: 50 * time.Millisecond,
			ListenAddr: "127.0.0.1:0", NodeIP: "127.0.0.1",
			Ready: func(i agent.Info) { ready <- i },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready in 30s")
	}
}

// frontend serves the metrics handler as the API server mounts it, and
// adds the group to /apis as the API server's discovery will; everything
// else goes to env's API server.
func frontend(t *testing.T, env *testenv.Env, h http.Handler) *rest.Config {
	t.Helper()
	target, _ := url.Parse(env.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	// kubectl sends no token over plain HTTP: the frontend adds it.
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		director(r)
		r.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, metricsapi.Prefix):
			h.ServeHTTP(w, r)
		case strings.TrimSuffix(r.URL.Path, "/") == "/apis":
			var groups metav1.APIGroupList
			if err := env.Kube.Discovery().RESTClient().Get().AbsPath("/apis").Do(r.Context()).Into(&groups); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			groups.Groups = append(groups.Groups, metricsapi.APIGroup())
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(groups)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := rest.CopyConfig(env.Config)
	cfg.Host = srv.URL
	return cfg
}

func simPod(name, app, milliCPU string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": app},
			Annotations: map[string]string{sim.AnnotationCPUMillicores: milliCPU, sim.AnnotationMemory: "64Mi"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "example.local/app:1"}}},
	}
}

func TestMetricsAPIServesAgentUsage(t *testing.T) {
	t.Run("own informers", func(t *testing.T) { testServesAgentUsage(t, false) })
	t.Run("shared informers", func(t *testing.T) { testServesAgentUsage(t, true) })
}

// testServesAgentUsage runs the server with informers of its own, or on a
// factory shared with other readers as the control plane does.
func testServesAgentUsage(t *testing.T, shared bool) {
	env := testenv.Start(t)
	startAgent(t, env, "node-1")
	ctx := context.Background()
	created := time.Now()
	for _, p := range []*corev1.Pod{simPod("web", "web", "250"), simPod("db", "db", "100")} {
		if _, err := env.Kube.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	opts := metricsapi.Options{Interval: 200 * time.Millisecond}
	if shared {
		opts.Informers = informers.NewSharedInformerFactory(env.Kube, 0)
		t.Cleanup(opts.Informers.Shutdown) // after Run has returned
	}
	srv := metricsapi.New(env.Kube, testenv.Logger(t), opts)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	cfg := frontend(t, env, srv.Handler())
	mc := metricsclient.NewForConfigOrDie(cfg).MetricsV1beta1()

	var list *metricsv1beta1.PodMetricsList
	testenv.Eventually(t, 30*time.Second, func() error {
		var err error
		list, err = mc.PodMetricses("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) != 2 {
			return fmt.Errorf("%d pod metrics, want 2", len(list.Items))
		}
		return nil
	})
	// The window is the time between two scrapes, or the interval for a
	// container's first scrape: however slow the machine, it is positive
	// and no longer than the pods have existed or the interval.
	for _, m := range list.Items {
		if w, most := m.Window.Duration, max(opts.Interval, time.Since(created)); w <= 0 || w > most {
			t.Errorf("%s: window %v, want within (0, %v]", m.Name, w, most)
		}
		t.Logf("%s: window %v", m.Name, m.Window.Duration)
	}
	want := map[string]int64{"web": 250, "db": 100}
	for _, m := range list.Items {
		if len(m.Containers) != 1 || m.Containers[0].Name != "app" {
			t.Fatalf("%s containers = %+v", m.Name, m.Containers)
		}
		cpu := m.Containers[0].Usage.Cpu().MilliValue()
		if d := cpu - want[m.Name]; d < -2 || d > 2 {
			t.Errorf("%s cpu = %dm, want %dm", m.Name, cpu, want[m.Name])
		}
		if mem := m.Containers[0].Usage.Memory(); mem.Cmp(resource.MustParse("64Mi")) != 0 {
			t.Errorf("%s memory = %s, want 64Mi", m.Name, mem)
		}
		if m.Labels["app"] != m.Name || m.Timestamp.IsZero() {
			t.Errorf("%s metadata: labels %v timestamp %v", m.Name, m.Labels, m.Timestamp)
		}
	}

	// labelSelector, get, not found.
	web, err := mc.PodMetricses("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(web.Items) != 1 || web.Items[0].Name != "web" {
		t.Errorf("app=web: %v %+v", err, web)
	}
	fs, err := mc.PodMetricses("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=db"})
	if err != nil || len(fs.Items) != 1 || fs.Items[0].Name != "db" {
		t.Errorf("metadata.name=db across namespaces: %v %+v", err, fs)
	}
	if _, err := mc.PodMetricses("default").Get(ctx, "db", metav1.GetOptions{}); err != nil {
		t.Errorf("get db: %v", err)
	}
	if _, err := mc.PodMetricses("default").Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get nope: %v, want NotFound", err)
	}
	if _, err := mc.PodMetricses("default").Watch(ctx, metav1.ListOptions{}); err == nil {
		t.Error("watch succeeded, want it refused")
	}

	// The node's usage is the sum of its pods'.
	// A scrape that sees the pods start mid-window gives a partial rate:
	// wait for a window in which both ran throughout.
	testenv.Eventually(t, 30*time.Second, func() error {
		nm, err := mc.NodeMetricses().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cpu := nm.Usage.Cpu().MilliValue(); cpu < 345 || cpu > 355 {
			return fmt.Errorf("node cpu = %dm, want 350m", cpu)
		}
		return nil
	})
	nodes, err := mc.NodeMetricses().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/hostname=node-1"})
	if err != nil || len(nodes.Items) != 1 {
		t.Errorf("node list by hostname label: %v %+v", err, nodes)
	}

	// kubectl get podmetrics asks for a Table.
	raw, err := metricsclient.NewForConfigOrDie(cfg).MetricsV1beta1().RESTClient().Get().Namespace("default").Resource("pods").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	var table metav1.Table
	if err != nil || json.Unmarshal(raw, &table) != nil {
		t.Fatalf("table: %v %s", err, raw)
	}
	if len(table.ColumnDefinitions) != 4 || len(table.Rows) != 2 || table.Rows[1].Cells[0] != "web" || table.Rows[1].Cells[2] != "64Mi" {
		t.Errorf("table = %+v", table)
	}

	// Discovery as client-go (and kubectl) see it.
	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	rl, err := dc.ServerResourcesForGroupVersion("metrics.k8s.io/v1beta1")
	if err != nil || len(rl.APIResources) != 2 {
		t.Fatalf("resources: %v %+v", err, rl)
	}

	// A deleted pod's metrics go with it.
	if err := env.Kube.CoreV1().Pods("default").Delete(ctx, "db", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		_, err := mc.PodMetricses("default").Get(ctx, "db", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get deleted db: %v", err)
		}
		return nil
	})

	// kubectl top, as users run it (protobuf requested, JSON served).
	out := kubectlTop(t, cfg, "pod")
	t.Logf("kubectl top pod:\n%s", out)
	// The rate is over a scrape interval: allow the same 2m of jitter.
	if !regexp.MustCompile(`(?m)^web\s+(24[89]|25[012])m\s+64Mi\s*$`).MatchString(out) {
		t.Errorf("kubectl top pod:\n%s", out)
	}
	out = kubectlTop(t, cfg, "node")
	t.Logf("kubectl top node:\n%s", out)
	if !strings.Contains(out, "node-1") || !strings.Contains(out, "CPU(cores)") {
		t.Errorf("kubectl top node:\n%s", out)
	}
}

// kubectlTop runs `kubectl top what` against cfg and returns its output.
func kubectlTop(t *testing.T, cfg *rest.Config, what string) string {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.APIServer = &cfg.Host
	ns, cacheDir := "default", t.TempDir()
	flags.Namespace, flags.CacheDir = &ns, &cacheDir
	f := cmdutil.NewFactory(flags)
	var out bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: io.Discard}
	var err error
	switch what {
	case "pod":
		o := &top.TopPodOptions{IOStreams: streams, UseProtocolBuffers: true}
		cmd := top.NewCmdTopPod(f, o, streams)
		if err = o.Complete(f, cmd, nil); err == nil {
			err = o.RunTopPod()
		}
	case "node":
		o := &top.TopNodeOptions{IOStreams: streams, UseProtocolBuffers: true}
		cmd := top.NewCmdTopNode(f, o, streams)
		if err = o.Complete(f, cmd, nil); err == nil {
			err = o.RunTopNode()
		}
	}
	if err != nil {
		t.Fatalf("kubectl top %s: %v", what, err)
	}
	return out.String()
}
