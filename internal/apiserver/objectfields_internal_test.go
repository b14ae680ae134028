package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/registry"
)

// fieldSet is what a field selector saw of an object before objectFields:
// metadata.name, metadata.namespace if namespaced, and the resource's
// selectable fields, as one set. objectFields must answer as it does.
func fieldSet(res *registry.Resource, obj runtime.Object) fields.Set {
	acc, _ := meta.Accessor(obj)
	set := fields.Set{"metadata.name": acc.GetName()}
	if res.Namespaced {
		set["metadata.namespace"] = acc.GetNamespace()
	}
	if res.SelectableFields != nil {
		for k, v := range res.SelectableFields(obj) {
			set[k] = v
		}
	}
	return set
}

// fieldTestPods differ in every field a pod can be selected by.
func fieldTestPods() map[string]*corev1.Pod {
	unscheduled := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default"}}
	unscheduled.Spec.RestartPolicy, unscheduled.Spec.SchedulerName = corev1.RestartPolicyAlways, "default-scheduler"
	unscheduled.Status.Phase = corev1.PodPending
	running := unscheduled.DeepCopy()
	running.Name, running.Namespace = "web-2", "prod"
	running.Spec.NodeName, running.Spec.ServiceAccountName = "n1", "builder"
	running.Status.Phase, running.Status.PodIP = corev1.PodRunning, "10.0.0.9"
	done := running.DeepCopy()
	done.Spec.NodeName, done.Spec.HostNetwork, done.Spec.RestartPolicy = "n2", true, corev1.RestartPolicyNever
	done.Status.Phase, done.Status.PodIP = corev1.PodSucceeded, ""
	nominated := unscheduled.DeepCopy()
	nominated.Spec.SchedulerName, nominated.Status.NominatedNodeName = "other", "n3"
	return map[string]*corev1.Pod{"empty": {}, "unscheduled": unscheduled, "running": running, "succeeded": done, "nominated": nominated}
}

// TestObjectFieldsAnswerAsTheSet: for every field of the set plus an
// unknown one, objectFields has and gets what the set does, and selectors
// on it (=, ==, !=, and several at once) match as fields.Selector.Matches
// does on the set. Pods read FieldValue; nodes and events, without it,
// their selectable fields; nodes have no metadata.namespace.
func TestObjectFieldsAnswerAsTheSet(t *testing.T) {
	pods, nodes, events := resourceOf(t, "Pod"), resourceOf(t, "Node"), resourceOf(t, "Event")
	type object struct {
		name string
		res  *registry.Resource
		obj  runtime.Object
	}
	var objects []object
	for name, pod := range fieldTestPods() {
		objects = append(objects, object{"pod " + name, pods, pod})
	}
	cordoned := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Unschedulable: true}}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default"}, Reason: "Started", Type: "Normal"}
	ev.InvolvedObject.Name = "web-1"
	objects = append(objects, object{"node", nodes, &corev1.Node{}}, object{"cordoned node", nodes, cordoned}, object{"event", events, ev})

	for _, o := range objects {
		set := fieldSet(o.res, o.obj)
		of := objectFields{res: o.res, obj: o.obj}
		asked := []string{"unknown.field", "metadata.namespace", "spec.nodeName"}
		for f := range set {
			asked = append(asked, f)
		}
		for _, f := range asked {
			if of.Has(f) != set.Has(f) || of.Get(f) != set.Get(f) {
				t.Errorf("%s: %s is %q (has %v), the set's %q (has %v)", o.name, f, of.Get(f), of.Has(f), set.Get(f), set.Has(f))
			}
			if !set.Has(f) {
				continue
			}
			for _, sel := range []string{f + "=" + set[f], f + "==" + set[f], f + "!=" + set[f], f + "=x", f + "!=x",
				f + "=" + set[f] + ",metadata.name!=" + set["metadata.name"], f + "!=x,metadata.name=" + set["metadata.name"]} {
				s, err := newSelector(o.res, "", sel)
				if err != nil {
					t.Fatalf("%s: %s: %v", o.name, sel, err)
				}
				if got, want := s.matches(o.res, o.obj), s.fields.Matches(set); got != want {
					t.Errorf("%s: %s matches = %v, on the set %v", o.name, sel, got, want)
				}
			}
		}
	}
}

// TestSelectorRefusesUnknownFields: a selector may use exactly the fields
// of the resource's set.
func TestSelectorRefusesUnknownFields(t *testing.T) {
	for _, tc := range []struct {
		kind, field string
		ok          bool
	}{
		{"Pod", "spec.nodeName", true}, {"Pod", "status.nominatedNodeName", true}, {"Pod", "metadata.namespace", true},
		{"Pod", "spec.nodename", false}, {"Pod", "metadata.labels", false},
		{"Node", "metadata.name", true}, {"Node", "spec.unschedulable", true}, {"Node", "metadata.namespace", false},
		{"ConfigMap", "metadata.namespace", true}, {"ConfigMap", "data", false},
	} {
		res := resourceOf(t, tc.kind)
		_, err := newSelector(res, "", tc.field+"=v")
		if (err == nil) != tc.ok || fieldSet(res, res.New()).Has(tc.field) != tc.ok {
			t.Errorf("%s %s: selector error %v, in the set %v; want selectable %v", tc.kind, tc.field, err, fieldSet(res, res.New()).Has(tc.field), tc.ok)
		}
	}
}

// BenchmarkFieldSelectorMatch matches spec.nodeName=n1 against a pod as
// a list or watch does: through the pod's field set (before; a watch made
// it once for all its watchers), or field by field (now).
func BenchmarkFieldSelectorMatch(b *testing.B) {
	pods := resourceOf(b, "Pod")
	pod := fieldTestPods()["running"]
	sel, err := newSelector(pods, "", "spec.nodeName=n1")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !sel.fields.Matches(fieldSet(pods, pod)) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("map built once", func(b *testing.B) { // as the watch memo kept it for all watchers
		b.ReportAllocs()
		set := fieldSet(pods, pod)
		for b.Loop() {
			if !sel.fields.Matches(set) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("getter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !sel.matches(pods, pod) {
				b.Fatal("no match")
			}
		}
	})
}
