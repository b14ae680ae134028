package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// TestControllersOnLocalWatches: the controllers' informers watch pods, and
// the garbage collector every kind, in process (localWatchClient,
// localMetadataClient): a ReplicaSet gets its pods and a status counting
// them, the pods go with it when it is deleted, and Info.LocalClient
// watches pods too.
func TestControllersOnLocalWatches(t *testing.T) {
	s := start(t, t.TempDir())
	client, err := kubernetes.NewForConfig(s.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	local, err := s.info.LocalClient.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Stop()

	two := int32(2)
	labels := map[string]string{"app": "local-watch"}
	rs, err := client.AppsV1().ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "local-watch"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, func() error {
		got, err := client.AppsV1().ReplicaSets("default").Get(ctx, rs.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=local-watch"})
		if err != nil {
			return err
		}
		if got.Status.Replicas != 2 || len(pods.Items) != 2 {
			return fmt.Errorf("status.replicas %d, %d pods", got.Status.Replicas, len(pods.Items))
		}
		return nil
	})
	added := 0
	for added < 2 {
		select {
		case ev := <-local.ResultChan():
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added && p.Labels["app"] == "local-watch" {
				added++
			}
		case <-ctx.Done():
			t.Fatalf("the local client's watch saw %d of the 2 pods added", added)
		}
	}

	background := metav1.DeletePropagationBackground
	if err := client.AppsV1().ReplicaSets("default").Delete(ctx, rs.Name, metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, func() error {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=local-watch"})
		if err != nil {
			return err
		}
		live := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live++
			}
		}
		if live > 0 {
			return fmt.Errorf("%d pods not being deleted", live)
		}
		return nil
	})
}
