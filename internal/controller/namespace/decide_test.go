package namespace

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	pods        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	configmaps  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func TestNeedsCleanup(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name       string
		deleting   bool
		finalizers []corev1.FinalizerName
		want       bool
	}{
		{"live namespace", false, []corev1.FinalizerName{corev1.FinalizerKubernetes}, false},
		{"deleting with finalizer", true, []corev1.FinalizerName{corev1.FinalizerKubernetes}, true},
		{"deleting, another finalizer only", true, []corev1.FinalizerName{"example.com/x"}, false},
		{"deleting among others", true, []corev1.FinalizerName{"example.com/x", corev1.FinalizerKubernetes}, true},
		{"deleting, finalized", true, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := &corev1.Namespace{Spec: corev1.NamespaceSpec{Finalizers: tt.finalizers}}
			if tt.deleting {
				ns.DeletionTimestamp = &now
			}
			if got := NeedsCleanup(ns); got != tt.want {
				t.Errorf("NeedsCleanup = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWithoutFinalizer(t *testing.T) {
	ns := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "7"},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"example.com/x", corev1.FinalizerKubernetes}},
	}
	got := WithoutFinalizer(ns)
	if !reflect.DeepEqual(got.Spec.Finalizers, []corev1.FinalizerName{"example.com/x"}) {
		t.Errorf("finalizers = %v", got.Spec.Finalizers)
	}
	if got.ResourceVersion != "7" {
		t.Errorf("resourceVersion = %q, want it kept for optimistic concurrency", got.ResourceVersion)
	}
	if len(ns.Spec.Finalizers) != 2 {
		t.Errorf("input modified: %v", ns.Spec.Finalizers)
	}
}

func TestDeletable(t *testing.T) {
	all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	lists := []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Namespaced: true, Verbs: all},
			{Name: "pods/status", Namespaced: true, Verbs: []string{"get", "patch", "update"}},
			{Name: "configmaps", Namespaced: true, Verbs: all},
			{Name: "nodes", Namespaced: false, Verbs: all},
			{Name: "events", Namespaced: true, Verbs: []string{"create", "get", "list", "watch"}}, // no delete
			{Name: "bindings", Namespaced: true, Verbs: []string{"create"}},
			{Name: "endpoints", Namespaced: true, Verbs: []string{"delete", "get", "list"}}, // no deletecollection
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "deployments", Namespaced: true, Verbs: all},
			{Name: "deployments/scale", Namespaced: true, Verbs: []string{"get", "patch", "update"}},
		}},
		nil,
	}
	got, err := Deletable(lists)
	if err != nil {
		t.Fatalf("Deletable: %v", err)
	}
	want := []Target{
		{Resource: configmaps, DeleteCollection: true},
		{Resource: schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}, DeleteCollection: false},
		{Resource: pods, DeleteCollection: true},
		{Resource: deployments, DeleteCollection: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Deletable =\n%v\nwant\n%v", got, want)
	}

	got, err = Deletable(append(lists, &metav1.APIResourceList{GroupVersion: "a/b/c", APIResources: []metav1.APIResource{{Name: "x", Namespaced: true, Verbs: all}}}))
	if err == nil || !strings.Contains(err.Error(), "a/b/c") {
		t.Errorf("bad group version: err = %v", err)
	}
	if len(got) != 4 {
		t.Errorf("bad group version dropped the good ones: %v", got)
	}
}

func conditionOf(d Decision, typ corev1.NamespaceConditionType) corev1.NamespaceCondition {
	for _, c := range d.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return corev1.NamespaceCondition{}
}

func TestDecide(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	type want struct {
		finalize bool
		// true conditions and a substring of each one's message
		trueConds map[corev1.NamespaceConditionType]string
	}
	tests := []struct {
		name string
		pass Pass
		want want
	}{
		{
			name: "empty namespace",
			pass: Pass{Content: []Content{{Resource: pods}, {Resource: configmaps}}},
			want: want{finalize: true},
		},
		{
			name: "no resources at all",
			pass: Pass{},
			want: want{finalize: true},
		},
		{
			name: "pods still terminating",
			pass: Pass{Content: []Content{{Resource: pods, Remaining: 2}, {Resource: deployments, Remaining: 1}}},
			want: want{trueConds: map[corev1.NamespaceConditionType]string{
				corev1.NamespaceContentRemaining: "deployments.apps has 1 resource instances, pods has 2 resource instances",
			}},
		},
		{
			name: "finalizers hold content",
			pass: Pass{Content: []Content{
				{Resource: pods, Remaining: 1, Finalizers: map[string]int{"example.com/a": 1}},
				{Resource: configmaps, Remaining: 2, Finalizers: map[string]int{"example.com/a": 1, "example.com/b": 1}},
			}},
			want: want{trueConds: map[corev1.NamespaceConditionType]string{
				corev1.NamespaceContentRemaining:    "configmaps has 2 resource instances",
				corev1.NamespaceFinalizersRemaining: "example.com/a in 2 resource instances, example.com/b in 1 resource instances",
			}},
		},
		{
			name: "deletion failed",
			pass: Pass{Content: []Content{{Resource: pods, Err: errors.New("forbidden")}, {Resource: configmaps}}},
			want: want{trueConds: map[corev1.NamespaceConditionType]string{
				corev1.NamespaceDeletionContentFailure: "pods: forbidden",
			}},
		},
		{
			name: "partial discovery, what was found is gone",
			pass: Pass{DiscoveryErr: errors.New("metrics.k8s.io/v1beta1: 503"), Content: []Content{{Resource: pods}}},
			want: want{trueConds: map[corev1.NamespaceConditionType]string{
				corev1.NamespaceDeletionDiscoveryFailure: "metrics.k8s.io/v1beta1: 503",
			}},
		},
		{
			name: "unparsable group version",
			pass: Pass{ParseErr: errors.New("unparsable group versions: a/b/c")},
			want: want{trueConds: map[corev1.NamespaceConditionType]string{
				corev1.NamespaceDeletionGVParsingFailure: "a/b/c",
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.pass, nil, now)
			if d.Finalize != tt.want.finalize {
				t.Errorf("Finalize = %v, want %v", d.Finalize, tt.want.finalize)
			}
			if len(d.Conditions) != 5 {
				t.Fatalf("got %d conditions, want all 5", len(d.Conditions))
			}
			for _, c := range d.Conditions {
				msg, wantTrue := tt.want.trueConds[c.Type]
				if wantTrue != (c.Status == corev1.ConditionTrue) {
					t.Errorf("%s = %s (%s)", c.Type, c.Status, c.Message)
				}
				if wantTrue && !strings.Contains(c.Message, msg) {
					t.Errorf("%s message %q lacks %q", c.Type, c.Message, msg)
				}
				if c.Reason == "" || c.Message == "" {
					t.Errorf("%s has no reason or message: %+v", c.Type, c)
				}
				if !c.LastTransitionTime.Equal(&now) {
					t.Errorf("%s transition time = %v, want now", c.Type, c.LastTransitionTime)
				}
			}
		})
	}
}

func TestDecideKeepsTransitionTimes(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	first := Decide(Pass{Content: []Content{{Resource: pods, Remaining: 3}}}, nil, t0)
	// Fewer pods remain: the condition stays True with a new message, and
	// its transition time stays; every other condition stays False.
	second := Decide(Pass{Content: []Content{{Resource: pods, Remaining: 1}}}, first.Conditions, t1)
	for _, c := range second.Conditions {
		if !c.LastTransitionTime.Equal(&t0) {
			t.Errorf("%s transition time moved to %v without a status change", c.Type, c.LastTransitionTime)
		}
	}
	if !ConditionsChanged(first.Conditions, second.Conditions) {
		t.Error("a changed message must be written")
	}
	// Now empty: ContentRemaining flips to False at t1.
	third := Decide(Pass{Content: []Content{{Resource: pods}}}, second.Conditions, t1)
	cr := conditionOf(third, corev1.NamespaceContentRemaining)
	if cr.Status != corev1.ConditionFalse || !cr.LastTransitionTime.Equal(&t1) {
		t.Errorf("ContentRemaining = %+v, want False since t1", cr)
	}
	if !third.Finalize {
		t.Error("empty namespace not finalized")
	}
	// The same pass again changes nothing worth writing.
	again := Decide(Pass{Content: []Content{{Resource: pods}}}, third.Conditions, t1)
	if ConditionsChanged(third.Conditions, again.Conditions) {
		t.Error("identical pass reported as a change")
	}
}

func TestMergeConditionsKeepsOtherTypes(t *testing.T) {
	other := corev1.NamespaceCondition{Type: "example.com/Custom", Status: corev1.ConditionTrue}
	old := []corev1.NamespaceCondition{other, {Type: corev1.NamespaceContentRemaining, Status: corev1.ConditionTrue}}
	want := Decide(Pass{}, old, metav1.Now()).Conditions
	got := MergeConditions(old, want)
	if len(got) != 6 {
		t.Fatalf("merged %d conditions, want 6: %v", len(got), got)
	}
	if got[5] != other {
		t.Errorf("custom condition lost: %v", got)
	}
	for _, c := range got {
		if c.Type == corev1.NamespaceContentRemaining && c.Status != corev1.ConditionFalse {
			t.Errorf("ContentRemaining not replaced: %+v", c)
		}
	}
	if !ConditionsChanged(old, want) {
		t.Error("missing conditions must count as a change")
	}
}
