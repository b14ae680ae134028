package apiserver

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/registry"
)

func resourceOf(t testing.TB, kind string) *registry.Resource {
	t.Helper()
	for _, r := range registry.All() {
		if r.Kind == kind && r.GroupVersion.Group == "" {
			return r
		}
	}
	t.Fatalf("no core resource of kind %s", kind)
	return nil
}

// TestStoredWithResourceVersionEqualsEncoding checks the splice against
// what it replaces: decoding the stored value with the revision as its
// resourceVersion and encoding that, over objects whose lengths cross
// every varint boundary the splice has to move.
func TestStoredWithResourceVersionEqualsEncoding(t *testing.T) {
	pods, events := resourceOf(t, "Pod"), resourceOf(t, "Event")
	store := &objectStore{}
	created := metav1.NewTime(time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC))
	ctl := true
	var objs []struct {
		res *registry.Resource
		obj runtime.Object
	}
	for n := 1; n < 400; n += 7 {
		objs = append(objs, struct {
			res *registry.Resource
			obj runtime.Object
		}{pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: "p" + strings.Repeat("x", n), Namespace: "default", UID: "4f9c2d36-1b6e-4a8e-9d0b-1b2c3d4e5f60",
				Labels: map[string]string{"app": "web", "pod-template-hash": "abc"}, CreationTimestamp: created,
				Annotations:     map[string]string{"note": strings.Repeat("a", n*3)},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "u1", Controller: &ctl}},
				Finalizers:      []string{"example.com/keep"},
			},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{
				Name: "web", Image: "web:1", Env: []corev1.EnvVar{{Name: "X", Value: strings.Repeat("v", n)}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
			}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: created}}},
		}})
		objs = append(objs, struct {
			res *registry.Resource
			obj runtime.Object
		}{events, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "e" + strings.Repeat("y", n), Namespace: "default"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "default"},
			Reason:         "Scheduled", Message: strings.Repeat("m", n), Count: 1, Type: corev1.EventTypeNormal,
		}})
	}
	for i, o := range objs {
		stored, err := store.encode(o.res, o.obj)
		if err != nil {
			t.Fatal(err)
		}
		for _, rev := range []int64{1, 99, 12345678901} {
			decoded, err := store.decode(o.res, stored, rev)
			if err != nil {
				t.Fatal(err)
			}
			want, err := encodeProtobuf(decoded)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := storedWithResourceVersion(stored, strconv.FormatInt(rev, 10))
			if !ok {
				t.Fatalf("object %d: stored value not spliced", i)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("object %d at revision %d: spliced value differs from the encoding:\n got %q\nwant %q", i, rev, got, want)
			}
		}
	}
}

func TestStoredWithResourceVersionRefusesOtherForms(t *testing.T) {
	for name, value := range map[string][]byte{
		"json":      []byte(`{"kind":"Pod","metadata":{"name":"p"}}`),
		"truncated": append(append([]byte{}, protobufPrefix...), 0x12, 0x40, 0x0a),
		"empty":     nil,
	} {
		if _, ok := storedWithResourceVersion(value, "5"); ok {
			t.Errorf("%s: spliced a value that is not a stored protobuf object", name)
		}
	}
	// A resourceVersion already set is not the form encode stores.
	data, err := encodeProtobuf(&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := storedWithResourceVersion(data, "8"); ok {
		t.Error("spliced a value whose resourceVersion is set")
	}
}
