package endpoints

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func trackedSlice(uid string, gen int64) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: "web-" + uid, UID: types.UID(uid), Generation: gen,
		Labels: map[string]string{discoveryv1.LabelServiceName: "web"},
	}}
}

func TestSliceTracker(t *testing.T) {
	svc := types.NamespacedName{Namespace: "ns", Name: "web"}
	list := func(ss ...*discoveryv1.EndpointSlice) []*discoveryv1.EndpointSlice { return ss }
	tests := []struct {
		name      string
		setup     func(tr *sliceTracker)
		cached    []*discoveryv1.EndpointSlice
		wantStale bool
	}{
		{"nothing written", func(*sliceTracker) {}, list(trackedSlice("a", 1)), false},
		{"cache at the written generation", func(tr *sliceTracker) { tr.written(trackedSlice("a", 2)) }, list(trackedSlice("a", 2)), false},
		{"cache newer (someone else wrote)", func(tr *sliceTracker) { tr.written(trackedSlice("a", 2)) }, list(trackedSlice("a", 3)), false},
		{"cache behind an update", func(tr *sliceTracker) { tr.written(trackedSlice("a", 2)) }, list(trackedSlice("a", 1)), true},
		{"created slice not cached yet", func(tr *sliceTracker) { tr.written(trackedSlice("b", 1)) }, list(trackedSlice("a", 1)), true},
		{"deleted slice still cached", func(tr *sliceTracker) { tr.deleted(trackedSlice("a", 1)) }, list(trackedSlice("a", 1)), true},
		{"deleted slice gone", func(tr *sliceTracker) { tr.deleted(trackedSlice("a", 1)) }, nil, false},
		{"deletion observed", func(tr *sliceTracker) {
			tr.written(trackedSlice("b", 1))
			tr.observedDeletion(trackedSlice("b", 1))
		}, nil, false},
		{"service forgotten", func(tr *sliceTracker) { tr.written(trackedSlice("b", 1)); tr.forget(svc) }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newSliceTracker()
			tt.setup(tr)
			if got := tr.stale(svc, tt.cached); got != tt.wantStale {
				t.Errorf("stale = %v, want %v", got, tt.wantStale)
			}
		})
	}

	tr := newSliceTracker()
	if !tr.shouldSync(trackedSlice("a", 1)) {
		t.Error("unknown slice: want a sync")
	}
	tr.written(trackedSlice("a", 2))
	if tr.shouldSync(trackedSlice("a", 2)) || tr.shouldSync(trackedSlice("a", 1)) {
		t.Error("own write (or older) triggered a sync")
	}
	if !tr.shouldSync(trackedSlice("a", 3)) {
		t.Error("someone else's write did not trigger a sync")
	}
	tr.deleted(trackedSlice("a", 2))
	if !tr.observedDeletion(trackedSlice("a", 2)) {
		t.Error("own deletion reported as unexpected")
	}
	tr.written(trackedSlice("b", 1))
	if tr.observedDeletion(trackedSlice("b", 1)) {
		t.Error("someone else's deletion reported as expected")
	}
}

func TestStaleEndpoints(t *testing.T) {
	ep := func(rv string) *corev1.Endpoints {
		return &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", ResourceVersion: rv}}
	}
	s := newStaleEndpoints()
	if s.isStale("ns", "web", nil) || s.isStale("ns", "web", ep("1")) {
		t.Error("stale without a write")
	}
	s.created("ns", "web")
	if !s.isStale("ns", "web", nil) {
		t.Error("created but missing from the cache: want stale")
	}
	if s.isStale("ns", "web", ep("1")) {
		t.Error("created and cached: stale")
	}
	s.replaced(ep("1"))
	if !s.isStale("ns", "web", ep("1")) {
		t.Error("replaced version still cached: want stale")
	}
	if s.isStale("ns", "web", ep("2")) {
		t.Error("new version cached: stale")
	}
	s.forget("ns", "web")
	if s.isStale("ns", "web", ep("1")) {
		t.Error("forgotten: stale")
	}
}
