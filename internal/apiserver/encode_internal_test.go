package apiserver

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/drover/drover/internal/registry"
)

// TestEncodeLeavesTheObjectAlone: encode clears resourceVersion and sets the
// storage kind on a shallow copy, never on the object given (which may be
// the watch cache's, shared with readers), and decodes back to it.
func TestEncodeLeavesTheObjectAlone(t *testing.T) {
	var pods *registry.Resource
	for _, r := range registry.All() {
		if r.GroupVersion.Group == "" && r.Plural == "pods" {
			pods = r
		}
	}
	if pods == nil {
		t.Fatal("no pods resource in the registry")
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", ResourceVersion: "42", Labels: map[string]string{"a": "b"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	before := pod.DeepCopy()
	var o objectStore
	data, err := o.encode(pods, pod)
	if err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(pod, before) || pod.Kind != "" {
		t.Fatalf("encode changed its argument: %+v", pod)
	}
	if bytes.Contains(data, []byte("42")) {
		t.Errorf("stored form keeps the resourceVersion: %q", data)
	}
	back, err := o.decode(pods, data, 43)
	if err != nil {
		t.Fatal(err)
	}
	got := back.(*corev1.Pod)
	if got.ResourceVersion != "43" || got.Spec.Containers[0].Image != "i" || got.Labels["a"] != "b" {
		t.Fatalf("decoded %+v", got)
	}
	again, err := o.encode(pods, got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Error("an object decoded from its stored form encodes to other bytes: updates that change nothing would write")
	}
}

func TestShallowCopy(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1"}}
	c, ok := shallowCopy(pod)
	if !ok {
		t.Fatal("a typed object is not shallow-copied")
	}
	c.(*corev1.Pod).ResourceVersion = "2"
	if pod.ResourceVersion != "1" {
		t.Error("the copy shares its metadata with the original")
	}
	if _, ok := shallowCopy(&unstructured.Unstructured{}); ok {
		t.Error("an unstructured object (metadata in a shared map) was shallow-copied")
	}
}
