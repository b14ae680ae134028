package agent

import (
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/agent/rawapi"
)

// putPodStatus writes status (enc, its protobuf encoding, when not nil)
// to the pod's status subresource, as of the pod's resourceVersion rv,
// and returns the resourceVersion of the write.
//
// The pod sent carries only what a status write is checked against (name,
// namespace, UID and resourceVersion) and the status: the API server takes
// nothing else from it (the rest comes from the stored pod), so encoding
// the spec and metadata for it to decode and drop was work on both sides.
// Of the answer only the metadata is decoded, as only the new
// resourceVersion is of use. With core (see package rawapi) the request
// is sent without client-go's request builder, the status not encoded
// again. A pod's status write is the agent's most frequent request: in a
// simulated fleet these were a sixth of its CPU.
func putPodStatus(ctx context.Context, core *rawapi.Client, client kubernetes.Interface, pod *corev1.Pod, rv string, status corev1.PodStatus, enc []byte) (string, error) {
	meta := metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: rv}
	if core != nil && enc != nil {
		mb, err := meta.Marshal()
		if err == nil {
			raw := make([]byte, 0, len(mb)+len(enc)+12)
			raw = rawapi.AppendField(raw, 1, mb)  // metadata
			raw = rawapi.AppendField(raw, 3, enc) // status
			var body []byte
			if body, err = rawapi.Envelope("v1", "Pod", raw); err == nil {
				data, err := core.Do(ctx, http.MethodPut, "/namespaces/"+pod.Namespace+"/pods/"+pod.Name+"/status", rawapi.Protobuf, body)
				if err != nil {
					return "", err
				}
				return rawapi.ResourceVersion(data)
			}
		}
	}
	p := &corev1.Pod{ObjectMeta: meta, Status: status}
	updated, err := client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		return "", err
	}
	return updated.ResourceVersion, nil
}
