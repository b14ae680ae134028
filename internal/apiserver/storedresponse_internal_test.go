package apiserver

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/registry"
)

// TestStoredWriteResponseIsTheEncoding checks that a write's response
// taken from its stored bytes is the encoding of the object written, and
// that it is only taken from them when that holds.
func TestStoredWriteResponseIsTheEncoding(t *testing.T) {
	pods := resourceOf(t, "Pod")
	store := &objectStore{}
	written := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}
	}
	// As createObject and guaranteedUpdate leave it: stored, then given
	// its new resourceVersion and served kind, then recorded.
	record := func(res *registry.Resource, pod *corev1.Pod) *storedWrite {
		data, err := store.encode(res, pod)
		if err != nil {
			t.Fatal(err)
		}
		pod.ResourceVersion = "1234"
		pod.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
		var sw storedWrite
		recordStoredWrite(withStoredWrite(context.Background(), &sw), pod, data)
		return &sw
	}

	pod := written()
	sw := record(pods, pod)
	got, ok := sw.response(pods, pod)
	if !ok {
		t.Fatal("the written object's response was not taken from its stored bytes")
	}
	want, err := encodeProtobuf(pod)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("response from the stored bytes differs from the object's encoding:\n got %q\nwant %q", got, want)
	}

	if _, ok := sw.response(pods, written()); ok {
		t.Error("answered for an object other than the one written")
	}
	pod.SelfLink = "/api/v1/namespaces/default/pods/web"
	if _, ok := sw.response(pods, pod); ok {
		t.Error("answered for an object with a selfLink, which is not stored")
	}
	converted := &registry.Resource{GroupVersion: pods.GroupVersion, Kind: "Pod", Plural: "pods", StorageOf: pods}
	other := written()
	if _, ok := record(pods, other).response(converted, other); ok {
		t.Error("answered for a resource stored in another version's form")
	}
	var none storedWrite
	if _, ok := none.response(pods, pod); ok {
		t.Error("answered with nothing written")
	}
}
