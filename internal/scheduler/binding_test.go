package scheduler

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

// bindPod sends the typed client's Bind request byte for byte, binds the
// pod, and a refused binding is the server's error (409 once bound).
func TestBindPodSendsTypedBind(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	rec := &testenv.Recorder{}
	client := rec.Client(t, env.Config, true)
	var pods [2]*corev1.Pod
	for i, name := range []string{"a", "b"} {
		p, err := env.Kube.CoreV1().Pods("default").Create(ctx, mkPod(name).obj(), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods[i] = p
	}
	// The typed client binds pod b, and bindPod binds it again (refused,
	// but sent): the two requests carry the same pod, to be compared.
	if err := client.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: pods[1].Name, UID: pods[1].UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: "n1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := bindPod(ctx, client, pods[1], "n1")
	if !apierrors.IsConflict(err) {
		t.Errorf("binding a bound pod: %v, want a Conflict", err)
	}
	if err := bindPod(ctx, client, pods[0], "n2"); err != nil {
		t.Fatal(err)
	}
	got, err := env.Kube.CoreV1().Pods("default").Get(ctx, pods[0].Name, metav1.GetOptions{})
	if err != nil || got.Spec.NodeName != "n2" {
		t.Fatalf("after bindPod: %v, node %q; want n2", err, got.Spec.NodeName)
	}
	sent := rec.Sent()
	if len(sent) != 3 {
		t.Fatalf("%d requests sent, want 3", len(sent))
	}
	if a, b := sent[0], sent[1]; !b.Equal(a) {
		t.Errorf("bindPod sent %s %s (Content-Type %q, Accept %q, User-Agent %q, %d bytes), want the typed Bind's %s %s (%q, %q, %q, %d bytes)",
			b.Method, b.URL, b.ContentType, b.Accept, b.UserAgent, len(b.Body), a.Method, a.URL, a.ContentType, a.Accept, a.UserAgent, len(a.Body))
	}
}
