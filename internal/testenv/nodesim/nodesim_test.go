package nodesim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
	"github.com/drover/drover/internal/testenv/nodesim"
)

func pod(name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web"}}},
	}
}

func TestBindsRunsReadiesAndDeletes(t *testing.T) {
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := nodesim.Start(ctx, env.Kube, nodesim.Options{Nodes: []string{"n1", "n2"}, Bind: true, Logger: testenv.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	pods := env.Kube.CoreV1().Pods("default")
	for _, p := range []*corev1.Pod{pod("a", nil), pod("b", nil), pod("stuck", map[string]string{nodesim.NeverReady: "true"})} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ready := func(name string) (*corev1.Pod, bool, error) {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return p, c.Status == corev1.ConditionTrue, nil
			}
		}
		return p, false, nil
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		for _, name := range []string{"a", "b"} {
			p, ok, err := ready(name)
			if err != nil || !ok {
				return fmt.Errorf("pod %s not ready (%v)", name, err)
			}
			if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				return fmt.Errorf("pod %s: node %q phase %s ip %q", name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP)
			}
		}
		p, ok, err := ready("stuck")
		if err != nil || ok || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("stuck pod: ready %v err %v phase %v", ok, err, p.Status.Phase)
		}
		return nil
	})
	a, _, _ := ready("a")
	b, _, _ := ready("b")
	if a.Spec.NodeName == b.Spec.NodeName {
		t.Errorf("round-robin binding put both pods on %s", a.Spec.NodeName)
	}
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if _, err := pods.Get(ctx, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod a still there: %v", err)
		}
		return nil
	})
}
