package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/openapi"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kubectl/pkg/cmd/apply"
	explainv2 "k8s.io/kubectl/pkg/explain/v2"

	"github.com/drover/drover/internal/registry"
)

var (
	podGVK        = corev1.SchemeGroupVersion.WithKind("Pod")
	deploymentGVK = appsv1.SchemeGroupVersion.WithKind("Deployment")
)

// testResources describes a few resources the way the registry does.
func testResources() []*registry.Resource {
	return []*registry.Resource{
		{
			GroupVersion: corev1.SchemeGroupVersion, Kind: "Pod", Plural: "pods", Singular: "pod",
			Namespaced: true, StatusSubresource: true,
			New:     func() runtime.Object { return &corev1.Pod{} },
			NewList: func() runtime.Object { return &corev1.PodList{} },
		},
		{
			GroupVersion: corev1.SchemeGroupVersion, Kind: "Namespace", Plural: "namespaces", Singular: "namespace",
			StatusSubresource: true,
			New:               func() runtime.Object { return &corev1.Namespace{} },
			NewList:           func() runtime.Object { return &corev1.NamespaceList{} },
		},
		{
			GroupVersion: corev1.SchemeGroupVersion, Kind: "Event", Plural: "events", Singular: "event",
			Namespaced: true, Verbs: []string{"get", "list", "watch", "create"},
			New:     func() runtime.Object { return &corev1.Event{} },
			NewList: func() runtime.Object { return &corev1.EventList{} },
		},
		{
			GroupVersion: appsv1.SchemeGroupVersion, Kind: "Deployment", Plural: "deployments", Singular: "deployment",
			Namespaced: true, StatusSubresource: true, Scale: &registry.ScaleAccess{},
			New:     func() runtime.Object { return &appsv1.Deployment{} },
			NewList: func() runtime.Object { return &appsv1.DeploymentList{} },
		},
	}
}

// newServer serves the OpenAPI handler and answers 404 Status for anything
// else, as the API server does for resources it does not have (the CRD
// lookup of the query-param verifier lands there).
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	h := NewHandler(testResources())
	mux := http.NewServeMux()
	mux.Handle("/openapi/", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "not found")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func newOpenAPIClient(t *testing.T, srv *httptest.Server) openapi.Client {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatalf("discovery client: %v", err)
	}
	return dc.OpenAPIV3()
}

func TestRootListsGroupVersions(t *testing.T) {
	srv := newServer(t)
	root := openapi3.NewRoot(newOpenAPIClient(t, srv))
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatalf("GroupVersions: %v", err)
	}
	want := []schema.GroupVersion{appsv1.SchemeGroupVersion, corev1.SchemeGroupVersion}
	if len(gvs) != len(want) || gvs[0] != want[0] || gvs[1] != want[1] {
		t.Fatalf("GroupVersions = %v, want %v", gvs, want)
	}
	doc, err := root.GVSpec(appsv1.SchemeGroupVersion)
	if err != nil {
		t.Fatalf("GVSpec(apps/v1): %v", err)
	}
	for _, p := range []string{
		"/apis/apps/v1/namespaces/{namespace}/deployments",
		"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
		"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status",
		"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
		"/apis/apps/v1/deployments",
	} {
		if doc.Paths.Paths[p] == nil {
			t.Errorf("apps/v1 document lacks path %s", p)
		}
	}
	if _, err := root.GVSpec(batchv1.SchemeGroupVersion); !errors.As(err, new(*openapi3.GroupVersionNotFoundError)) {
		t.Errorf("GVSpec(batch/v1) error = %v, want GroupVersionNotFoundError", err)
	}
}

func TestOperationsCarryActionsAndGVK(t *testing.T) {
	srv := newServer(t)
	doc, err := openapi3.NewRoot(newOpenAPIClient(t, srv)).GVSpec(corev1.SchemeGroupVersion)
	if err != nil {
		t.Fatalf("GVSpec(v1): %v", err)
	}
	item := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"]
	if item == nil {
		t.Fatal("no pod item path")
	}
	ops := map[string]*spec3.Operation{"get": item.Get, "put": item.Put, "patch": item.Patch, "delete": item.Delete}
	for action, op := range ops {
		if op == nil {
			t.Errorf("pod item path lacks %s", action)
			continue
		}
		if got, _ := op.Extensions.GetString(extAction); got != action {
			t.Errorf("%s: %s = %q", action, extAction, got)
		}
		var gvk map[string]string
		if err := op.Extensions.GetObject(extGVK, &gvk); err != nil || gvk["kind"] != "Pod" || gvk["version"] != "v1" || gvk["group"] != "" {
			t.Errorf("%s: %s = %v (%v)", action, extGVK, gvk, err)
		}
	}
	coll := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods"]
	if coll == nil || coll.Post == nil || coll.Get == nil || coll.Delete == nil {
		t.Fatalf("pod collection path incomplete: %+v", coll)
	}
	if got, _ := coll.Delete.Extensions.GetString(extAction); got != "deletecollection" {
		t.Errorf("collection delete action = %q", got)
	}
	for _, name := range []string{"fieldValidation", "dryRun", "fieldManager"} {
		if !hasQueryParam(coll.Post, name) || !hasQueryParam(item.Put, name) || !hasQueryParam(item.Patch, name) {
			t.Errorf("write operations lack query parameter %s", name)
		}
	}
	if !hasQueryParam(coll.Get, "labelSelector") || !hasQueryParam(coll.Get, "watch") {
		t.Error("list lacks labelSelector/watch")
	}
	if !hasQueryParam(item.Delete, "propagationPolicy") {
		t.Error("delete lacks propagationPolicy")
	}
	// Events are restricted to get, list, watch, create.
	ev := doc.Paths.Paths["/api/v1/namespaces/{namespace}/events/{name}"]
	if ev == nil || ev.Get == nil || ev.Put != nil || ev.Patch != nil || ev.Delete != nil {
		t.Errorf("event item path should serve only get: %+v", ev)
	}
	// Namespaces are cluster-scoped.
	if doc.Paths.Paths["/api/v1/namespaces/{name}"] == nil {
		t.Error("no cluster-scoped namespace item path")
	}
	// Every kind's schema is an object marked with its GVK.
	for name, kind := range map[string]string{"io.k8s.api.core.v1.Pod": "Pod", "io.k8s.api.core.v1.PodList": "PodList", "io.k8s.api.core.v1.Namespace": "Namespace"} {
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Errorf("no schema %s", name)
			continue
		}
		var gvks []map[string]string
		if err := s.Extensions.GetObject(extGVK, &gvks); err != nil || len(gvks) != 1 || gvks[0]["kind"] != kind {
			t.Errorf("%s: %s = %v (%v)", name, extGVK, gvks, err)
		}
		if !s.Type.Contains("object") {
			t.Errorf("%s: type = %v", name, s.Type)
		}
	}
}

func hasQueryParam(op *spec3.Operation, name string) bool {
	if op == nil {
		return false
	}
	for _, p := range op.Parameters {
		if p.Name == name && p.In == "query" {
			return true
		}
	}
	return false
}

// TestKubectlUsesServerSideFieldValidation runs cli-runtime's v3 verifier,
// which kubectl uses to decide between server-side and client-side
// validation.
func TestKubectlUsesServerSideFieldValidation(t *testing.T) {
	srv := newServer(t)
	dyn, err := dynamic.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	v := resource.NewQueryParamVerifierV3(dyn, newOpenAPIClient(t, srv), resource.QueryParamFieldValidation)
	for _, gvk := range []schema.GroupVersionKind{podGVK, deploymentGVK, corev1.SchemeGroupVersion.WithKind("Namespace")} {
		if err := v.HasSupport(gvk); err != nil {
			t.Errorf("HasSupport(%s) = %v, want supported", gvk, err)
		}
	}
	// A kind the server does not serve is reported unsupported (after the
	// verifier's CRD lookup finds nothing).
	if err := v.HasSupport(batchv1.SchemeGroupVersion.WithKind("Job")); !resource.IsParamUnsupportedError(err) {
		t.Errorf("HasSupport(Job) = %v, want param-unsupported error", err)
	}
}

// TestPatchOperationsOmitStrategicMerge checks, as kubectl apply's Patcher
// does (gvkSupportsPatchOpenAPIV3), that the PATCH operation of each kind
// does not advertise strategic merge patch.
func TestPatchOperationsOmitStrategicMerge(t *testing.T) {
	srv := newServer(t)
	root := openapi3.NewRoot(newOpenAPIClient(t, srv))
	for _, gvk := range []schema.GroupVersionKind{podGVK, deploymentGVK} {
		doc, err := root.GVSpec(gvk.GroupVersion())
		if err != nil {
			t.Fatalf("GVSpec(%s): %v", gvk.GroupVersion(), err)
		}
		found := 0
		for path, p := range doc.Paths.Paths {
			if p.Patch == nil {
				continue
			}
			var opGVK map[string]string
			if err := p.Patch.Extensions.GetObject(extGVK, &opGVK); err != nil {
				t.Errorf("%s: PATCH without GVK: %v", path, err)
				continue
			}
			if p.Patch.RequestBody == nil || p.Patch.RequestBody.Content == nil {
				t.Errorf("%s: PATCH without request body", path)
				continue
			}
			content := p.Patch.RequestBody.Content
			if _, ok := content["application/strategic-merge-patch+json"]; ok {
				t.Errorf("%s: PATCH advertises strategic merge patch", path)
			}
			if _, ok := content["application/merge-patch+json"]; !ok {
				t.Errorf("%s: PATCH lacks merge patch", path)
			}
			if _, ok := content["application/json-patch+json"]; !ok {
				t.Errorf("%s: PATCH lacks JSON patch", path)
			}
			if opGVK["kind"] == gvk.Kind {
				found++
			}
		}
		if found == 0 {
			t.Errorf("no PATCH operation for %s", gvk)
		}
	}
}

// TestKubectlApplyBuildsStrategicPatchFromBuiltins runs kubectl apply's
// Patcher (locally, as --dry-run=client does) with our documents as its
// OpenAPI v3 source: it must compute a strategic merge patch from its
// compiled-in types, recognisable by the $setElementOrder directive that a
// schema without patch-merge-keys could not produce.
func TestKubectlApplyBuildsStrategicPatchFromBuiltins(t *testing.T) {
	srv := newServer(t)
	lastApplied := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},` +
		`"spec":{"containers":[{"name":"a","image":"nginx:1"},{"name":"b","image":"redis:7"}]}}`
	current := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: lastApplied,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "nginx:1"}, {Name: "b", Image: "redis:7"}}},
	}
	unstructuredCurrent, err := runtime.DefaultUnstructuredConverter.ToUnstructured(current)
	if err != nil {
		t.Fatal(err)
	}
	// What kubectl apply sends as "modified": the new configuration with
	// itself as the last-applied annotation.
	newConfig := strings.Replace(lastApplied, "nginx:1", "nginx:2", 1)
	var modifiedObj map[string]any
	if err := json.Unmarshal([]byte(newConfig), &modifiedObj); err != nil {
		t.Fatal(err)
	}
	modifiedObj["metadata"].(map[string]any)["annotations"] = map[string]any{corev1.LastAppliedConfigAnnotation: newConfig}
	modified, err := json.Marshal(modifiedObj)
	if err != nil {
		t.Fatal(err)
	}

	p := &apply.Patcher{
		Mapping: &meta.RESTMapping{
			GroupVersionKind: podGVK,
			Resource:         corev1.SchemeGroupVersion.WithResource("pods"),
			Scope:            meta.RESTScopeNamespace,
		},
		OpenAPIV3Root: openapi3.NewRoot(newOpenAPIClient(t, srv)),
		Overwrite:     true, // kubectl apply's default
	}
	var errOut bytes.Buffer
	patch, _, err := p.PatchLocal(&unstructured.Unstructured{Object: unstructuredCurrent}, modified, &errOut)
	if err != nil {
		t.Fatalf("PatchLocal: %v", err)
	}
	if errOut.Len() != 0 {
		t.Errorf("kubectl warned: %s", errOut.String())
	}
	if !bytes.Contains(patch, []byte(`"$setElementOrder/containers"`)) || !bytes.Contains(patch, []byte(`nginx:2`)) {
		t.Errorf("patch is not a strategic merge patch from the built-in types: %s", patch)
	}
}

// TestKubectlExplain renders kubectl explain from the documents.
func TestKubectlExplain(t *testing.T) {
	srv := newServer(t)
	var out bytes.Buffer
	err := explainv2.PrintModelDescription([]string{"spec", "containers"}, &out, newOpenAPIClient(t, srv),
		corev1.SchemeGroupVersion.WithResource("pods"), false, 0, "plaintext")
	if err != nil {
		t.Fatalf("explain pods.spec.containers: %v", err)
	}
	for _, want := range []string{"KIND:       Pod", "FIELD: containers <[]Container>", "image\t<string>", "List of containers belonging to the pod"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	err = explainv2.PrintModelDescription(nil, &out, newOpenAPIClient(t, srv),
		appsv1.SchemeGroupVersion.WithResource("deployments"), false, 0, "plaintext")
	if err != nil {
		t.Fatalf("explain deployments: %v", err)
	}
	if !strings.Contains(out.String(), "GROUP:      apps") || !strings.Contains(out.String(), "spec\t<DeploymentSpec>") {
		t.Errorf("explain deployments output:\n%s", out.String())
	}
}

func TestHTTPBehaviour(t *testing.T) {
	srv := newServer(t)
	get := func(path, accept, ifNoneMatch string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := get("/openapi/v3", "application/json", "")
	var root struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&root); err != nil {
		t.Fatalf("decode root: %v", err)
	}
	url := root.Paths["apis/apps/v1"].ServerRelativeURL
	if !strings.HasPrefix(url, "/openapi/v3/apis/apps/v1?hash=") {
		t.Fatalf("apps/v1 serverRelativeURL = %q", url)
	}

	resp = get(url, "application/json", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	etag := resp.Header.Get("Etag")
	hash := strings.TrimPrefix(url, "/openapi/v3/apis/apps/v1?hash=")
	if etag != `"`+hash+`"` {
		t.Errorf("ETag %s does not match the hash %s", etag, hash)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("Cache-Control = %q, want immutable for a hashed URL", cc)
	}
	if resp := get(url, "application/json", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d, want 304", resp.StatusCode)
	}
	// A stale hash redirects to the current one.
	noRedirect := *srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r2, err := noRedirect.Get(srv.URL + "/openapi/v3/apis/apps/v1?hash=STALE")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusMovedPermanently || r2.Header.Get("Location") != url {
		t.Errorf("stale hash: %d Location %q, want 301 to %s", r2.StatusCode, r2.Header.Get("Location"), url)
	}
	// The OpenAPI protobuf encoding is served too.
	resp = get("/openapi/v3/api/v1", openapi.ContentTypeOpenAPIV3PB, "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "protobuf") || len(body) == 0 {
		t.Errorf("protobuf: %d %s (%d bytes)", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	// Unknown documents and v2 are 404 Status.
	for _, path := range []string{"/openapi/v2", "/openapi/v3/apis/batch/v1", "/openapi/v3/"} {
		resp := get(path, "application/json", "")
		var st metav1.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusNotFound || st.Kind != "Status" || st.Code != 404 {
			t.Errorf("GET %s: %d %+v (%v), want 404 Status", path, resp.StatusCode, st, err)
		}
	}
}

func TestDocumentHashFollowsContent(t *testing.T) {
	hashes := func(rs []*registry.Resource) map[string]string {
		h := NewHandler(rs)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi/v3", nil))
		var root map[string]map[string]map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &root); err != nil {
			t.Fatalf("decode root: %v", err)
		}
		out := map[string]string{}
		for k, v := range root["paths"] {
			out[k] = v["serverRelativeURL"]
		}
		return out
	}
	a, b := hashes(testResources()), hashes(testResources())
	if a["api/v1"] != b["api/v1"] || a["apis/apps/v1"] != b["apis/apps/v1"] {
		t.Errorf("same resources, different hashes: %v vs %v", a, b)
	}
	c := hashes(testResources()[:3]) // without deployments: apps/v1 gone, v1 unchanged
	if _, ok := c["apis/apps/v1"]; ok || c["api/v1"] != a["api/v1"] {
		t.Errorf("hashes without deployments = %v, before %v", c, a)
	}
	d := hashes(testResources()[1:]) // without pods: v1 changes
	if d["api/v1"] == a["api/v1"] {
		t.Errorf("v1 hash did not change when pods were removed")
	}
}

// TestEveryRegisteredResource documents the registry's real resources and
// checks, for each, what kubectl relies on: server-side field validation
// for patchable kinds, and explain.
func TestEveryRegisteredResource(t *testing.T) {
	all := registry.All()
	h := NewHandler(all)
	mux := http.NewServeMux()
	mux.Handle("/openapi/", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "not found")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dyn, err := dynamic.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	client := newOpenAPIClient(t, srv)
	v := resource.NewQueryParamVerifierV3(dyn, client, resource.QueryParamFieldValidation)
	for _, r := range all {
		if r.Verbs == nil || slices.Contains(r.Verbs, "patch") {
			if err := v.HasSupport(r.GroupVersionKind()); err != nil {
				t.Errorf("%s: fieldValidation: %v", r.GroupVersionKind(), err)
			}
		}
		var out bytes.Buffer
		if err := explainv2.PrintModelDescription(nil, &out, client, r.GroupVersionResource(), false, 0, "plaintext"); err != nil {
			t.Errorf("explain %s: %v", r.GroupVersionResource(), err)
		} else if !strings.Contains(out.String(), "KIND:       "+r.Kind) {
			t.Errorf("explain %s:\n%s", r.GroupVersionResource(), out.String())
		}
	}
}

// BenchmarkNewHandler reports the cost of building every registered
// resource's documents (done once at API server start).
func BenchmarkNewHandler(b *testing.B) {
	all := registry.All()
	for b.Loop() {
		h := NewHandler(all)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi/v3", nil)) // marshals every document
		if rec.Code != http.StatusOK {
			b.Fatalf("root: %d", rec.Code)
		}
	}
}
