package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodLogProxiesToTheAgent checks pods/log reaches the agent's
// /containerLogs endpoint of the pod's node with the options kubectl sends.
func TestPodLogProxiesToTheAgent(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "podlog")
	ctx := context.Background()
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/containerLogs/") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "path=%s query=%s\n", r.URL.Path, r.URL.RawQuery)
	}))
	defer agent.Close()
	host, portStr, _ := net.SplitHostPort(agent.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	node, err := ts.client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "podlog-node"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := ts.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := ts.client.CoreV1().Pods(ns)
	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "one"}, Spec: corev1.PodSpec{NodeName: "podlog-node", Containers: []corev1.Container{{Name: "app", Image: "web"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "two"}, Spec: corev1.PodSpec{NodeName: "podlog-node", Containers: []corev1.Container{{Name: "a", Image: "web"}, {Name: "b", Image: "web"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unbound"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web"}}}},
	} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tail := int64(5)
	body, err := pods.GetLogs("one", &corev1.PodLogOptions{TailLines: &tail, Previous: true}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "path=/containerLogs/" + ns + "/one/app query=previous=true&tailLines=5\n"
	if string(body) != want {
		t.Errorf("log body %q, want %q", body, want)
	}
	stream, err := pods.GetLogs("two", &corev1.PodLogOptions{Container: "b", Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(stream)
	stream.Close()
	if !strings.Contains(string(got), "/two/b query=follow=true") {
		t.Errorf("follow body %q", got)
	}
	for name, tc := range map[string]struct {
		pod  string
		opts corev1.PodLogOptions
		msg  string
	}{
		"ambiguous": {"two", corev1.PodLogOptions{}, "a container name must be specified for pod two, choose one of: [a b]"},
		"unknown":   {"one", corev1.PodLogOptions{Container: "nope"}, "container nope is not valid for pod one"},
		"unbound":   {"unbound", corev1.PodLogOptions{}, "does not have a host assigned"},
	} {
		// Stream, as kubectl logs does, decodes the Status of a failure.
		_, err := pods.GetLogs(tc.pod, &tc.opts).Stream(ctx)
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err %v, want 400 containing %q", name, err, tc.msg)
		}
	}
	if _, err := pods.GetLogs("missing", &corev1.PodLogOptions{}).Stream(ctx); !apierrors.IsNotFound(err) {
		t.Errorf("missing pod: %v, want 404", err)
	}
}
