package replicaset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// protobufMagic starts a Kubernetes protobuf body (a runtime.Unknown).
var protobufMagic = []byte{'k', '8', 's', 0}

// createPod creates pod in namespace ns with the very request of the typed
// client's Create, and returns the name the server gave it (the pods of a
// ReplicaSet are named by generateName). The controller needs nothing else
// of the created pod: it decodes only the response's metadata, where
// Create would decode the whole pod (a quarter of the controller's CPU for
// each pod it creates).
func createPod(ctx context.Context, client kubernetes.Interface, ns string, pod *corev1.Pod) (string, error) {
	rc := client.CoreV1().RESTClient()
	if rc == nil { // a clientset without REST clients (a fake): its Create
		created, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return created.Name, nil
	}
	res := rc.Post().
		UseProtobufAsDefault().
		Namespace(ns).
		Resource("pods").
		VersionedParams(&metav1.CreateOptions{}, scheme.ParameterCodec).
		Body(pod).
		Do(ctx)
	if err := res.Error(); err != nil {
		return "", err
	}
	body, _ := res.Raw()
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
