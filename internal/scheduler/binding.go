package scheduler

import (
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/restwrite"
)

// bindPod binds pod to node with the typed client's Bind request
// (protobuf), sent with restwrite: a binding per pod is the scheduler's
// every write, and client-go's per-request bookkeeping (its URL built
// three times, metrics, retry state) was most of what one cost the
// scheduler. A clientset without a REST client (a fake) binds through the
// typed client.
func bindPod(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, node string) error {
	b := &corev1.Binding{
		TypeMeta:   metav1.TypeMeta{APIVersion: corev1.SchemeGroupVersion.String(), Kind: "Binding"},
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	rc, ok := client.CoreV1().RESTClient().(*rest.RESTClient)
	if !ok || rc == nil {
		return client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	}
	body, err := restwrite.Encode(b)
	if err != nil {
		return err
	}
	_, err = restwrite.Do(ctx, rc, restwrite.Request{Method: http.MethodPost,
		Path: restwrite.Path(rc.APIVersion(), pod.Namespace, "pods", pod.Name, "binding"),
		Body: body, Resource: corev1.Resource("pods"), Name: pod.Name})
	return err
}
