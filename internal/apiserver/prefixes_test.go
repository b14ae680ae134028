package apiserver_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/registry"
)

// TestStoragePrefixes checks the prefixes a watch cache is given: one per
// stored resource (HPAs' two versions share theirs), events left out, and
// none inside another (a cacher serves the longest matching prefix).
func TestStoragePrefixes(t *testing.T) {
	got := apiserver.StoragePrefixes(registry.All())
	for _, want := range []string{"/registry/core/pods/", "/registry/core/nodes/", "/registry/coordination.k8s.io/leases/", "/registry/apps/replicasets/", "/registry/autoscaling/horizontalpodautoscalers/"} {
		if !slices.Contains(got, want) {
			t.Errorf("prefixes %v lack %s", got, want)
		}
	}
	if slices.Contains(got, "/registry/core/events/") {
		t.Errorf("prefixes %v include events", got)
	}
	seen := map[string]bool{}
	for _, p := range got {
		if seen[p] {
			t.Errorf("prefix %s twice", p)
		}
		seen[p] = true
		for _, q := range got {
			if p != q && strings.HasPrefix(q, p) {
				t.Errorf("prefix %s is inside %s", q, p)
			}
		}
	}
}
