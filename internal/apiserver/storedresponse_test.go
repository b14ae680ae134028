package apiserver_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestProtobufWriteResponsesAreTheStoredObject checks that what a write
// answers in protobuf is byte for byte what a read of the object then
// answers: the object as stored, at its new resourceVersion (writes
// answer from the bytes they stored, reads by encoding what they read).
func TestProtobufWriteResponsesAreTheStoredObject(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "storedresponse")
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	encode := func(obj runtime.Object) []byte {
		var buf bytes.Buffer
		if err := pb.Encode(obj, &buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	do := func(method, path string, body []byte) []byte {
		t.Helper()
		req, err := http.NewRequest(method, ts.url+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Accept", protobufType+", application/json")
		if body != nil {
			req.Header.Set("Content-Type", protobufType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 || resp.Header.Get("Content-Type") != protobufType {
			t.Fatalf("%s %s: %d %s: %q", method, path, resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		return data
	}
	decodePod := func(data []byte) *corev1.Pod {
		obj, _, err := pb.Decode(data, nil, &corev1.Pod{})
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*corev1.Pod)
	}
	same := func(what string, wrote []byte, path string) {
		t.Helper()
		if read := do(http.MethodGet, path, nil); !bytes.Equal(wrote, read) {
			t.Errorf("%s answered other bytes than a read of the object:\nwrite %q\n read %q", what, wrote, read)
		}
	}

	podPath := "/api/v1/namespaces/" + ns + "/pods"
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	created := do(http.MethodPost, podPath, encode(pod))
	same("create", created, podPath+"/web")

	p := decodePod(created)
	p.Labels["tier"] = "front"
	same("update", do(http.MethodPut, podPath+"/web", encode(p)), podPath+"/web")

	p = decodePod(do(http.MethodGet, podPath+"/web", nil))
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	same("status update", do(http.MethodPut, podPath+"/web/status", encode(p)), podPath+"/web")

	event := &corev1.Event{
		TypeMeta:       metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web"},
		Reason:         "Started", Message: "Started container web", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "kubelet"}, Count: 1,
	}
	same("event create", do(http.MethodPost, "/api/v1/namespaces/"+ns+"/events", encode(event)), "/api/v1/namespaces/"+ns+"/events/web.1")
}
