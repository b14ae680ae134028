package replicaset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/restwrite"
)

// protobufMagic starts a Kubernetes protobuf body (a runtime.Unknown).
var protobufMagic = []byte{'k', '8', 's', 0}

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
		Path: "/api/" + c.rc.APIVersion().Version + "/namespaces/" + c.ns + "/pods", Body: c.body,
		Resource: corev1.Resource("pods"), Name: c.pod.Name})
	if err != nil {
		return "", err
	}
	name, err := createdName(body)
	if err != nil {
		return "", fmt.Errorf("reading the created pod: %w", err)
	}
	return name, nil
}

// createdName is the name in the metadata of a created object's body,
// protobuf or JSON, decoding nothing else of it.
func createdName(body []byte) (string, error) {
	var m metav1.PartialObjectMetadata
	if rest, ok := bytes.CutPrefix(body, protobufMagic); ok {
		var unk runtime.Unknown
		if err := unk.Unmarshal(rest); err != nil {
			return "", err
		}
		// An object's metadata is its field 1, as PartialObjectMetadata's:
		// the object's other fields are skipped as unknown.
		if err := m.Unmarshal(unk.Raw); err != nil {
			return "", err
		}
	} else if err := json.Unmarshal(body, &m); err != nil {
		return "", err
	}
	if m.Name == "" {
		return "", fmt.Errorf("no name in the response (%d bytes)", len(body))
	}
	return m.Name, nil
}
