package apiserver

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover/drover/internal/registry"
)

// Fuzz targets for the paths that read hostile input. Plain `go test` runs
// their seeds; CI runs a short `go test -fuzz` on each (see .ci/run). The
// invariant is no panic; rejections must be API errors.

// decodeMediaTypes are the body encodings a request may claim.
var decodeMediaTypes = []string{"application/json", "application/yaml", protobufType, "application/merge-patch+json", "text/plain"}

// FuzzDecodeRequest decodes arbitrary bodies, in every encoding, into every
// registered kind.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":3,"selector":{"matchLabels":{"a":"b"}}}}`,
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
		"a: &a [*a, *a]\n",
		`{"metadata":{"name":"x","name":"y"},"unknown":1}`,
		"\x0a\x03k8s\x00",
		`[[[[[[[[[[`, `{"spec":{"containers":null}}`, `"\ud800"`, ``,
	} {
		for i := range decodeMediaTypes {
			f.Add([]byte(seed), uint8(i), uint8(0))
		}
	}
	resources := registry.All()
	f.Fuzz(func(t *testing.T, body []byte, mt, kind uint8) {
		res := resources[int(kind)%len(resources)]
		r := httptest.NewRequest("POST", "/?fieldValidation=Strict", bytes.NewReader(body))
		r.Header.Set("Content-Type", decodeMediaTypes[int(mt)%len(decodeMediaTypes)])
		data, err := readBody(r, 3<<20)
		if err != nil {
			requireStatus(t, err)
			return
		}
		if err := decodeRequest(httptest.NewRecorder(), r, data, res.New(), res.GroupVersionKind()); err != nil {
			requireStatus(t, err)
		}
	})
}

// patchTargets are documents patches are applied to.
var patchTargets = func() [][]byte {
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]},{"name":"d","image":"j"}],"tolerations":[{"key":"k"}]}}`
	dep := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"n"},"spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","env":[{"name":"E","value":"1"}]}]}}}}`
	return [][]byte{[]byte(pod), []byte(dep)}
}()

var patchTypes = []types.PatchType{types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType}

// FuzzApplyPatch applies arbitrary JSON, merge and strategic merge patches
// to a pod and a deployment, then decodes the result as the server does.
func FuzzApplyPatch(f *testing.F) {
	for _, seed := range []string{
		`[{"op":"replace","path":"/spec/replicas","value":5}]`,
		`[{"op":"add","path":"/metadata/labels/x","value":"y"},{"op":"remove","path":"/spec/containers/0"}]`,
		`[{"op":"move","from":"/spec","path":"/spec/x"}]`,
		`[{"op":"copy","from":"/spec","path":"/spec/containers/-"}]`,
		`[{"op":"test","path":"/metadata/name","value":"p"}]`,
		`{"spec":{"replicas":null}}`,
		`{"spec":{"containers":[{"name":"c","image":"new"}]}}`,
		`{"spec":{"containers":[{"name":"c","$patch":"delete"}]}}`,
		`{"spec":{"$setElementOrder/containers":[{"name":"d"},{"name":"c"}]}}`,
		`{"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"E","$patch":"replace"}]}]}}}}`,
		`{"$patch":"replace"}`, `{"$retainKeys":["spec"]}`, `{"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}`,
		`null`, `[]`, `{}`, `1`,
	} {
		for pt := range patchTypes {
			for target := range patchTargets {
				f.Add([]byte(seed), uint8(pt), uint8(target))
			}
		}
	}
	f.Fuzz(func(t *testing.T, patch []byte, pt, target uint8) {
		if checkNesting(patch) != nil {
			return // refused before patching
		}
		i := int(target) % len(patchTargets)
		schema := registry.All()[0].New()
		for _, res := range registry.All() {
			if (i == 0 && res.GroupVersionKind().Kind == "Pod") || (i == 1 && res.GroupVersionKind().Kind == "Deployment") {
				schema = res.New()
			}
		}
		out, err := applyPatch(patchTypes[int(pt)%len(patchTypes)], patchTargets[i], patch, schema)
		if err != nil {
			requireStatus(t, err)
			return
		}
		into := schema.DeepCopyObject()
		r := httptest.NewRequest("PATCH", "/", nil)
		if err := decodeObject(httptest.NewRecorder(), r, out, into, schema.GetObjectKind().GroupVersionKind()); err != nil {
			requireStatus(t, err)
		}
	})
}

// FuzzSelectors parses arbitrary label and field selectors for pods as a
// list request does, and matches what parses against a pod, field by field
// as the server does and on the pod's field set as fields.Selector does:
// the two must agree.
func FuzzSelectors(f *testing.F) {
	for _, seed := range [][2]string{
		{"app=web,tier!=db", "spec.nodeName=n1"},
		{"app in (a,b),!x,y notin (z)", "status.phase!=Running,metadata.namespace=default"},
		{"a,b=c,d==e", "metadata.name==p"},
		{"x>3,y<4", `spec.nodeName=a\,b`},
		{"(((", "=="}, {"a in (", "spec.nodeName"}, {"", ""},
		{"a=" + string(bytes.Repeat([]byte("x"), 70)), "unknown.field=1"},
	} {
		f.Add(seed[0], seed[1])
	}
	var pods *registry.Resource
	for _, res := range registry.All() {
		if res.GroupVersionKind().Kind == "Pod" {
			pods = res
		}
	}
	pod := &corev1.Pod{}
	pod.Name, pod.Namespace, pod.Labels = "p", "default", map[string]string{"app": "web", "x": "3"}
	pod.Spec.NodeName, pod.Status.Phase = "n1", corev1.PodRunning
	f.Fuzz(func(t *testing.T, label, field string) {
		r := httptest.NewRequest("GET", "/api/v1/pods", nil)
		q := r.URL.Query()
		q.Set("labelSelector", label)
		q.Set("fieldSelector", field)
		r.URL.RawQuery = q.Encode()
		sel, err := parseSelector(r, pods)
		if err != nil {
			requireStatus(t, err)
			return
		}
		want := sel.labels.Matches(labels.Set(pod.Labels)) && sel.fields.Matches(fieldSet(pods, pod))
		if got := sel.matches(pods, pod); got != want {
			t.Errorf("labels %q, fields %q: matches = %v, on the field set %v", label, field, got, want)
		}
	})
}

// requireStatus fails unless err is a client error the API would send (a
// 4xx Status), never an internal one.
func requireStatus(t *testing.T, err error) {
	t.Helper()
	st := statusFor(err)
	if st.Code < 400 || st.Code >= 500 {
		b, _ := json.Marshal(st)
		t.Fatalf("rejection is not a client error: %s", b)
	}
}
