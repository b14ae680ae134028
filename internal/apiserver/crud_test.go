package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.local/web:1.0"}}},
			},
		},
	}
}

func TestCreateGetUpdateDelete(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "crud")
	ctx := context.Background()
	deps := ts.client.AppsV1().Deployments(ns)

	created, err := deps.Create(ctx, deployment(ns, "web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() || created.Generation != 1 {
		t.Fatalf("create did not stamp uid/resourceVersion/creationTimestamp/generation: %+v", created.ObjectMeta)
	}
	if created.Spec.RevisionHistoryLimit == nil || *created.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("defaults not applied: revisionHistoryLimit %v", created.Spec.RevisionHistoryLimit)
	}
	if _, err := deps.Create(ctx, deployment(ns, "web", 1), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: want AlreadyExists, got %v", err)
	}

	got, err := deps.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion {
		t.Errorf("get resourceVersion %s, created %s", got.ResourceVersion, created.ResourceVersion)
	}

	// A label change is metadata: generation stays; a spec change bumps it.
	got.Labels = map[string]string{"tier": "front"}
	updated, err := deps.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Generation != 1 {
		t.Errorf("metadata update changed generation to %d", updated.Generation)
	}
	updated.Spec.Replicas = ptr.To[int32](5)
	updated, err = deps.Update(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Generation != 2 {
		t.Errorf("spec update: generation %d, want 2", updated.Generation)
	}

	// The stale object from before both updates conflicts.
	got.Spec.Replicas = ptr.To[int32](9)
	if _, err := deps.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale update: want Conflict, got %v", err)
	}

	// The main resource ignores status; /status ignores spec.
	updated.Status.Replicas = 42
	updated, err = deps.Update(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Status.Replicas != 0 {
		t.Errorf("main resource update changed status.replicas to %d", updated.Status.Replicas)
	}
	updated.Status.Replicas = 3
	updated.Spec.Replicas = ptr.To[int32](7)
	updated.Labels = map[string]string{"through": "status"}
	st, err := deps.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Replicas != 3 || *st.Spec.Replicas != 5 || st.Generation != 2 {
		t.Errorf("status update: status.replicas %d spec.replicas %d generation %d; want 3, 5, 2", st.Status.Replicas, *st.Spec.Replicas, st.Generation)
	}
	if st.Labels["through"] != "" {
		t.Errorf("status update changed labels: %v", st.Labels)
	}
	// An invalid status is refused and changes nothing.
	st.Status.Replicas = -1
	if _, err := deps.UpdateStatus(ctx, st, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("negative status.replicas: want Invalid, got %v", err)
	}
	if cur, err := deps.Get(ctx, "web", metav1.GetOptions{}); err != nil || cur.Status.Replicas != 3 || cur.ResourceVersion != st.ResourceVersion {
		t.Errorf("after a refused status update: %v, status.replicas %d rv %s; want 3 rv %s", err, cur.Status.Replicas, cur.ResourceVersion, st.ResourceVersion)
	}

	if err := deps.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := deps.Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: want NotFound, got %v", err)
	}
}

func TestGenerateName(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "genname")
	cm, err := ts.client.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "cfg-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cm.Name, "cfg-") || len(cm.Name) != len("cfg-")+5 {
		t.Errorf("generated name %q", cm.Name)
	}
}

func TestInvalidObjectIs422AndNotStored(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "invalid")
	ctx := context.Background()
	bad := deployment(ns, "Bad_Name", -1)
	bad.Spec.Template.Labels = map[string]string{"app": "other"}
	bad.Spec.Template.Spec.Containers[0].Image = ""
	bad.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}}
	_, err := ts.client.AppsV1().Deployments(ns).Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want 422 Invalid, got %v", err)
	}
	status := err.(apierrors.APIStatus).Status()
	if status.Code != http.StatusUnprocessableEntity {
		t.Errorf("code %d", status.Code)
	}
	fields := map[string]bool{}
	for _, c := range status.Details.Causes {
		fields[c.Field] = true
	}
	for _, f := range []string{"metadata.name", "spec.replicas", "spec.template.metadata.labels", "spec.template.spec.containers[0].image", "spec.template.spec.containers[0].ports[0].containerPort"} {
		if !fields[f] {
			t.Errorf("no cause for %s; causes: %v", f, status.Details.Causes)
		}
	}
	list, err := ts.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("invalid object was stored: %d deployments", len(list.Items))
	}
}

// raw sends a request with the admin token and returns code and body.
func (ts *testServer) raw(t testing.TB, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func TestMalformedBodiesAre400(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "malformed")
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	cases := []struct {
		name, contentType, body string
		want                    int
	}{
		{"broken json", "application/json", `{"metadata": {"name": "x"`, http.StatusBadRequest},
		{"broken yaml", "application/yaml", "metadata:\n  name: [x\n", http.StatusBadRequest},
		{"wrong kind", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, http.StatusBadRequest},
		{"unknown field, strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}`, http.StatusBadRequest},
		{"oversized", "application/json", `{"metadata":{"name":"x"},"data":{"k":"` + strings.Repeat("a", 4<<20) + `"}}`, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		p := path
		if strings.Contains(c.name, "strict") {
			p += "?fieldValidation=Strict"
		}
		code, body := ts.raw(t, http.MethodPost, p, c.contentType, []byte(c.body))
		if code != c.want {
			t.Errorf("%s: code %d, want %d: %s", c.name, code, c.want, body)
			continue
		}
		var status metav1.Status
		if err := json.Unmarshal(body, &status); err != nil || status.Kind != "Status" || status.Status != metav1.StatusFailure {
			t.Errorf("%s: body is not a failure Status: %s", c.name, body)
		}
	}
	code, body := ts.raw(t, http.MethodPost, path, "application/yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromyaml\ndata:\n  a: b\n"))
	if code != http.StatusCreated {
		t.Errorf("yaml create: %d %s", code, body)
	}
	list, err := ts.client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "fromyaml" {
		t.Errorf("want only the yaml configmap stored, got %d items", len(list.Items))
	}
}

func TestUnauthenticatedIs401(t *testing.T) {
	ts := newTestServer(t)
	resp, err := http.Get(ts.url + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	resp, err = http.Get(ts.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz without token: %d", resp.StatusCode)
	}
}

func TestConcurrentStaleUpdatesExactlyOneWins(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "race")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"v": "0"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := cm.DeepCopy()
			c.Data["v"] = fmt.Sprint(i + 1)
			_, results[i] = cms.Update(ctx, c, metav1.UpdateOptions{})
		}(i)
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		switch {
		case err == nil:
			wins++
		case !apierrors.IsConflict(err):
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d updates from one stale resourceVersion succeeded, want exactly 1", wins)
	}
}

func TestPatchTypes(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "patch")
	ctx := context.Background()
	deps := ts.client.AppsV1().Deployments(ns)
	if _, err := deps.Create(ctx, deployment(ns, "web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Strategic merge: containers merge by name, so the image changes in place.
	d, err := deps.Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"example.local/web:2.0"}]}}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Spec.Template.Spec.Containers; len(c) != 1 || c[0].Image != "example.local/web:2.0" {
		t.Errorf("strategic patch: containers %+v", c)
	}
	d, err = deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Labels["a"] != "b" {
		t.Errorf("merge patch: labels %v", d.Labels)
	}
	d, err = deps.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/replicas","value":4}]`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 4 || d.Generation != 3 {
		t.Errorf("json patch: replicas %d generation %d", *d.Spec.Replicas, d.Generation)
	}
	// A patch that makes the object invalid changes nothing.
	if _, err := deps.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/replicas","value":-3}]`), metav1.PatchOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("invalid patch: want Invalid, got %v", err)
	}
	// A patch pinned to a stale resourceVersion conflicts.
	stale := fmt.Sprintf(`{"metadata":{"resourceVersion":"%s"},"spec":{"replicas":9}}`, "1")
	if _, err := deps.Patch(ctx, "web", types.MergePatchType, []byte(stale), metav1.PatchOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale patch: want Conflict, got %v", err)
	}
	got, _ := deps.Get(ctx, "web", metav1.GetOptions{})
	if *got.Spec.Replicas != 4 {
		t.Errorf("replicas %d after refused patches, want 4", *got.Spec.Replicas)
	}
}

func TestScaleSubresource(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "scale")
	ctx := context.Background()
	deps := ts.client.AppsV1().Deployments(ns)
	if _, err := deps.Create(ctx, deployment(ns, "web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sc, err := deps.GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Spec.Replicas != 1 || sc.Status.Selector != "app=web" {
		t.Errorf("scale: %+v", sc)
	}
	sc.Spec.Replicas = 3
	if _, err := deps.UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":6}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	d, _ := deps.Get(ctx, "web", metav1.GetOptions{})
	if *d.Spec.Replicas != 6 || d.Generation != 3 {
		t.Errorf("after scaling: replicas %d generation %d, want 6 and 3", *d.Spec.Replicas, d.Generation)
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}
	if _, err := ts.client.CoreV1().ConfigMaps("does-not-exist").Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("create in missing namespace: want NotFound, got %v", err)
	}
	ns := ts.namespace(t, "doomed")
	if err := ts.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := ts.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.NamespaceTerminating || got.DeletionTimestamp == nil {
		t.Errorf("deleted namespace: phase %q deletionTimestamp %v", got.Status.Phase, got.DeletionTimestamp)
	}
	if _, err := ts.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create in terminating namespace: want Forbidden, got %v", err)
	}
	got.Spec.Finalizers = nil
	if _, err := ts.client.CoreV1().Namespaces().Finalize(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("finalized namespace still there: %v", err)
	}
}

func TestFinalizersHoldDeletion(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "finalizers")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	held, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("object with a finalizer vanished: %v", err)
	}
	if held.DeletionTimestamp == nil {
		t.Fatal("no deletionTimestamp")
	}
	held.Finalizers = nil
	if _, err := cms.Update(ctx, held, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("removing the last finalizer did not delete: %v", err)
	}
}

func TestPodBindingAndGracefulDelete(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "binding")
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods(ns)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}}}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("second bind: want Conflict, got %v", err)
	}
	got, _ := pods.Get(ctx, "p", metav1.GetOptions{})
	if got.Spec.NodeName != "n1" {
		t.Errorf("nodeName %q", got.Spec.NodeName)
	}
	// pods/binding is created, nothing else: a PUT there is not an update of
	// the pod (it would skip the pod's own authorization), nor a GET a read.
	changed := got.DeepCopy()
	changed.Spec.NodeName = "n2"
	body, _ := json.Marshal(changed)
	for _, verb := range []string{http.MethodGet, http.MethodPut} {
		err := ts.client.CoreV1().RESTClient().Verb(verb).Namespace(ns).Resource("pods").Name("p").SubResource("binding").Body(body).Do(ctx).Error()
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s pods/p/binding: want NotFound, got %v", verb, err)
		}
	}
	if got, _ := pods.Get(ctx, "p", metav1.GetOptions{}); got.Spec.NodeName != "n1" {
		t.Errorf("nodeName %q after a PUT to pods/p/binding", got.Spec.NodeName)
	}
	// A bound pod is deleted gracefully: marked, then removed by grace 0.
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil || *got.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("graceful delete: %v %+v", err, got.ObjectMeta)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod still there after grace 0: %v", err)
	}
}
