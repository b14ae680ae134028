package replicaset

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/restwrite"
)

// podCreator creates pods from one template, as a sync's creations are:
// each is the typed client's Create request (protobuf), and returns the
// name the server gave the pod (a ReplicaSet's pods are named by
// generateName). The body is encoded once for all of them and sent with
// restwrite, without client-go's per-request bookkeeping; the response's
// metadata alone is decoded, where Create would decode the whole pod. The
// controller needs nothing else of what it created.
type podCreator struct {
	client kubernetes.Interface
	rc     *rest.RESTClient // nil for a clientset without one (a fake)
	ns     string
	pod    *corev1.Pod
	body   []byte
}

// newPodCreator returns a creator of copies of pod in namespace ns.
func newPodCreator(client kubernetes.Interface, ns string, pod *corev1.Pod) (*podCreator, error) {
	c := &podCreator{client: client, ns: ns, pod: pod}
	if rc, ok := client.CoreV1().RESTClient().(*rest.RESTClient); ok && rc != nil {
		p := *pod
		p.TypeMeta = metav1.TypeMeta{APIVersion: corev1.SchemeGroupVersion.String(), Kind: "Pod"}
		body, err := restwrite.Encode(&p)
		if err != nil {
			return nil, err
		}
		c.rc, c.body = rc, body
	}
	return c, nil
}

// create creates one pod and returns its name.
func (c *podCreator) create(ctx context.Context) (string, error) {
	if c.rc == nil {
		created, err := c.client.CoreV1().Pods(c.ns).Create(ctx, c.pod.DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return created.Name, nil
	}
	body, err := restwrite.Do(ctx, c.rc, restwrite.Request{Method: http.MethodPost,
		Path: restwrite.Path(c.rc.APIVersion(), c.ns, "pods", "", ""), Body: c.body,
		Resource: corev1.Resource("pods"), Name: c.pod.Name})
	if err != nil {
		return "", err
	}
	m, err := restwrite.Metadata(body)
	if err != nil {
		return "", fmt.Errorf("reading the created pod: %w", err)
	}
	return m.Name, nil
}
