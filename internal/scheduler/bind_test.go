package scheduler

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/drover/drover/internal/testenv"
)

// A binding the API server refuses with 409 (someone else bound the pod
// first) drops the assumption, so the node's resources are free again, and
// ends the pod's flight without a retry.
func TestBindConflictForgetsAssumption(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	pod, err := env.Kube.CoreV1().Pods("default").Create(ctx, mkPod("p").req("3", "").obj(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone else binds it to b.
	if err := env.Kube.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: pod.Name},
		Target:     corev1.ObjectReference{Kind: "Node", Name: "b"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	broadcaster := record.NewBroadcaster()
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: env.Kube.CoreV1().Events("")})
	s := &scheduler{
		client:   env.Kube,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: DefaultSchedulerName}),
		queue:    NewQueue(time.Second, 10*time.Second, nil),
		cache:    NewCache(Config{}),
	}
	s.cache.SetNode(mkNode("a", "4", "4Gi").obj())
	s.queue.Add("default/p", pod)
	qp, _ := s.queue.Pop()
	node, err := s.cache.Schedule(pod)
	if err != nil || node != "a" {
		t.Fatalf("Schedule = %q, %v", node, err)
	}
	if err := s.cache.Assume(pod, node); err != nil {
		t.Fatal(err)
	}
	s.bind(ctx, qp, node)

	if s.cache.IsAssumed(pod.UID) {
		t.Fatal("assumption kept after a 409")
	}
	if req, n := s.cache.NodeUsage("a"); n != 0 || !req.isZero() {
		t.Fatalf("node a still holds %+v in %d pods", req, n)
	}
	if a, b, u, f := s.queue.Len(); a+b+u+f != 0 {
		t.Fatalf("queue holds the pod after a 409: active %d backoff %d unschedulable %d in flight %d", a, b, u, f)
	}
	got, err := env.Kube.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err != nil || got.Spec.NodeName != "b" {
		t.Fatalf("pod on %q (%v), want b as the other binder left it", got.Spec.NodeName, err)
	}
}
