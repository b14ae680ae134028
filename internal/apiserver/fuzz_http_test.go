package apiserver_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The HTTP fuzz targets drive the whole handler on real etcd: whatever the
// body, the server answers without a 5xx, and a rejected request leaves
// the namespace's stored objects exactly as they were.

var fuzzMediaTypes = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"}

// fuzzServer is an API server with namespace "fuzz" holding pod p0 and
// deployment d0.
func fuzzServer(f *testing.F) *testServer {
	ts := newTestServer(f)
	ctx := context.Background()
	if _, err := ts.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fuzz"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		f.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p0", Labels: map[string]string{"a": "b"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if _, err := ts.client.CoreV1().Pods("fuzz").Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		f.Fatal(err)
	}
	one := int32(1)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d0"}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}}, Spec: pod.Spec},
	}}
	if _, err := ts.client.AppsV1().Deployments("fuzz").Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		f.Fatal(err)
	}
	return ts
}

// serveFuzz sends one request to the handler and checks the invariants.
func serveFuzz(t *testing.T, ts *testServer, method, path, ct string, body []byte) {
	before := snapshot(t, ts, "fuzz")
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+adminToken)
	r.Header.Set("Content-Type", ct)
	w := httptest.NewRecorder()
	ts.server.ServeHTTP(w, r)
	if w.Code >= 500 {
		t.Fatalf("%s %s (%s): %d %s", method, path, ct, w.Code, w.Body.String())
	}
	if w.Code >= 300 {
		if after := snapshot(t, ts, "fuzz"); after != before {
			t.Fatalf("%s %s (%s) was rejected with %d but changed storage", method, path, ct, w.Code)
		}
	}
}

var createPaths = []string{"/api/v1/namespaces/fuzz/configmaps", "/api/v1/namespaces/fuzz/pods", "/apis/apps/v1/namespaces/fuzz/deployments", "/api/v1/namespaces/fuzz/services"}

// FuzzCreate posts arbitrary bodies to create pods, deployments, configmaps
// and services.
func FuzzCreate(f *testing.F) {
	for _, seed := range []string{
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"},"data":{"k":"v"}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"g-"},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":{"containers":[]}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d1"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"c"}}}}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":80}],"clusterIP":"1.2.3.4"}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s2"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":99999}]}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}`,
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n", `{`, `null`,
	} {
		for i := range createPaths {
			f.Add([]byte(seed), uint8(i), uint8(0))
		}
	}
	ts := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte, path, ct uint8) {
		serveFuzz(t, ts, http.MethodPost, createPaths[int(path)%len(createPaths)], fuzzMediaTypes[int(ct)%3], body)
	})
}

var patchPaths = []string{"/api/v1/namespaces/fuzz/pods/p0", "/apis/apps/v1/namespaces/fuzz/deployments/d0", "/api/v1/namespaces/fuzz/pods/p0/status", "/apis/apps/v1/namespaces/fuzz/deployments/d0/scale"}

// FuzzPatch applies arbitrary JSON, merge and strategic merge patches to a
// stored pod and deployment (and their status and scale).
func FuzzPatch(f *testing.F) {
	for _, seed := range []struct {
		ct    int
		patch string
	}{
		{3, `[{"op":"replace","path":"/spec/containers/0/image","value":"j"}]`},
		{3, `[{"op":"replace","path":"/metadata/name","value":"other"}]`},
		{3, `[{"op":"replace","path":""}]`},
		{3, `[{"op":"add","path":"/spec/replicas","value":-1}]`},
		{4, `{"metadata":{"labels":{"x":"y"}}}`},
		{4, `{"metadata":{"resourceVersion":"1"}}`},
		{4, `{"spec":{"containers":null}}`},
		{5, `{"spec":{"containers":[{"name":"c","$patch":"delete"}]}}`},
		{5, `{"spec":{"template":{"spec":{"containers":[{"name":"c","image":""}]}}}}`},
		{5, `{"status":{"phase":"Bogus"}}`},
	} {
		for i := range patchPaths {
			f.Add([]byte(seed.patch), uint8(i), uint8(seed.ct))
		}
	}
	ts := fuzzServer(f)
	f.Fuzz(func(t *testing.T, patch []byte, path, ct uint8) {
		serveFuzz(t, ts, http.MethodPatch, patchPaths[int(path)%len(patchPaths)], fuzzMediaTypes[3+int(ct)%3], patch)
	})
}

// FuzzList lists pods with arbitrary selectors, limits and continue tokens.
func FuzzList(f *testing.F) {
	for _, seed := range [][3]string{
		{"a=b", "spec.nodeName=", "1"}, {"a in (b", "", ""}, {"", "metadata.name!=p0,status.phase=Running", "0"},
		{"", "spec.unknown=1", "-1"}, {"a", "", "abc"},
	} {
		f.Add(seed[0], seed[1], seed[2], "")
	}
	f.Add("", "", "1", "eyJydiI6MSwic3RhcnQiOiIvcmVnaXN0cnkvIn0")
	ts := fuzzServer(f)
	f.Fuzz(func(t *testing.T, label, field, limit, cont string) {
		q := make(map[string][]string)
		q["labelSelector"], q["fieldSelector"], q["limit"], q["continue"] = []string{label}, []string{field}, []string{limit}, []string{cont}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/fuzz/pods", nil)
		r.URL.RawQuery = encodeQuery(q)
		r.Header.Set("Authorization", "Bearer "+adminToken)
		w := httptest.NewRecorder()
		ts.server.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("list %s: %d %s", r.URL.RawQuery, w.Code, w.Body.String())
		}
	})
}

func encodeQuery(q map[string][]string) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	v := r.URL.Query()
	for k, vals := range q {
		for _, s := range vals {
			v.Add(k, s)
		}
	}
	return v.Encode()
}
