package namespace_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/controller/namespace"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
)

const token = "namespace-controller-test"

// skipOrFail skips a test that cannot run here, unless DROVER_E2E=1 demands it.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("DROVER_E2E") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// namespaces is core/v1 namespaces as upstream's strategy creates them: with
// the "kubernetes" finalizer and phase Active. (The registry's own
// description replaces this once it exists.)
func namespaces() *registry.Resource {
	return &registry.Resource{
		GroupVersion: corev1.SchemeGroupVersion, Kind: "Namespace", Plural: "namespaces", Singular: "namespace",
		StatusSubresource: true,
		New:               func() runtime.Object { return &corev1.Namespace{} },
		NewList:           func() runtime.Object { return &corev1.NamespaceList{} },
		PrepareForCreate: func(obj runtime.Object) {
			ns := obj.(*corev1.Namespace)
			ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
			ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		},
	}
}

func configMaps() *registry.Resource {
	return &registry.Resource{
		GroupVersion: corev1.SchemeGroupVersion, Kind: "ConfigMap", Plural: "configmaps", Singular: "configmap",
		Namespaced: true,
		New:        func() runtime.Object { return &corev1.ConfigMap{} },
		NewList:    func() runtime.Object { return &corev1.ConfigMapList{} },
	}
}

type cluster struct {
	client kubernetes.Interface
	dyn    dynamic.Interface
}

// startCluster runs a real API server on a real embedded etcd member.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	member, err := embedded.Start(context.Background(), embedded.Config{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	store := etcd.New(member.Client(), etcd.Options{})
	t.Cleanup(func() {
		store.Close()
		member.Close()
	})
	authn := auth.NewTokenAuthenticator()
	authn.Add(token, auth.User{Name: "admin", Groups: []string{"system:masters"}})
	srv, err := apiserver.New(apiserver.Config{
		Storage:       store,
		Resources:     []*registry.Resource{namespaces(), configMaps(), registry.Pods(), registry.Deployments()},
		Authenticator: authn,
		Logger:        quiet,
	})
	if err != nil {
		t.Fatalf("apiserver: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := &rest.Config{Host: hs.URL, BearerToken: token, QPS: -1}
	c := &cluster{client: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg)}
	// The API server is being built alongside this controller: skip (not
	// fail) while it cannot yet hold a namespace.
	probe, err := c.client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, metav1.CreateOptions{})
	if err != nil {
		skipOrFail(t, "the API server cannot create namespaces yet: %v", err)
	}
	if len(probe.Spec.Finalizers) != 1 {
		t.Fatalf("namespace created without the kubernetes finalizer: %v", probe.Spec.Finalizers)
	}
	// client-go's dynamic client sends DeleteOptions as apiVersion v1, which
	// upstream accepts in every group version.
	err = c.dyn.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("probe").
		DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
	if apierrors.IsBadRequest(err) {
		skipOrFail(t, "the API server rejects the DeleteOptions client-go's dynamic client sends: %v", err)
	}
	if err != nil {
		t.Fatalf("deletecollection probe: %v", err)
	}
	return c
}

// testWriter sends the controller's logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// runController runs the controller until the test ends and checks that it
// stops cleanly.
func runController(t *testing.T, c *cluster) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- namespace.Run(ctx, c.client, c.dyn, c.client.Discovery(), slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDeletesContentThenNamespace(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	core := c.client.CoreV1()
	for _, name := range []string{"doomed", "kept"} {
		if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create namespace %s: %v", name, err)
		}
		if _, err := core.ConfigMaps(name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create configmap in %s: %v", name, err)
		}
	}
	held := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}
	if _, err := core.ConfigMaps("doomed").Create(ctx, held, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create held configmap: %v", err)
	}
	labels := map[string]string{"app": "web"}
	pod := corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}
	if _, err := core.Pods("doomed").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels}, Spec: pod}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
	if _, err := c.client.AppsV1().Deployments("doomed").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	runController(t, c)
	if err := core.Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete namespace: %v", err)
	}

	// Everything deletable goes; the held configmap stays, and so does the
	// namespace, saying why.
	eventually(t, "content deleted but the held configmap", func() error {
		cms, err := core.ConfigMaps("doomed").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(cms.Items) != 1 || cms.Items[0].Name != "held" || cms.Items[0].DeletionTimestamp == nil {
			return fmt.Errorf("configmaps: %d left", len(cms.Items))
		}
		pods, err := core.Pods("doomed").List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != 0 {
			return fmt.Errorf("pods: %v %v", pods, err)
		}
		deps, err := c.client.AppsV1().Deployments("doomed").List(ctx, metav1.ListOptions{})
		if err != nil || len(deps.Items) != 0 {
			return fmt.Errorf("deployments: %v %v", deps, err)
		}
		return nil
	})
	eventually(t, "namespace conditions naming the finalizer", func() error {
		ns, err := core.Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ns.Status.Phase != corev1.NamespaceTerminating {
			return fmt.Errorf("phase %s", ns.Status.Phase)
		}
		for _, cond := range ns.Status.Conditions {
			if cond.Type == corev1.NamespaceFinalizersRemaining && cond.Status == corev1.ConditionTrue && strings.Contains(cond.Message, "example.com/hold") {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", ns.Status.Conditions)
	})

	// Releasing the finalizer lets the configmap and then the namespace go.
	if _, err := core.ConfigMaps("doomed").Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("releasing finalizer: %v", err)
	}
	eventually(t, "namespace gone", func() error {
		_, err := core.Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})

	// The live namespace is untouched.
	if _, err := core.ConfigMaps("kept").Get(ctx, "plain", metav1.GetOptions{}); err != nil {
		t.Errorf("configmap in the live namespace: %v", err)
	}
	if ns, err := core.Namespaces().Get(ctx, "kept", metav1.GetOptions{}); err != nil || ns.DeletionTimestamp != nil {
		t.Errorf("live namespace: %v %v", ns, err)
	}
}

func TestEmptyNamespaceIsFinalizedAndRunStops(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	runController(t, c)
	if err := c.client.CoreV1().Namespaces().Delete(ctx, "probe", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete namespace: %v", err)
	}
	eventually(t, "empty namespace gone", func() error {
		_, err := c.client.CoreV1().Namespaces().Get(ctx, "probe", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return errors.New("still there")
	})
}
