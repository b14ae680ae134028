package apiserver

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestInflightHeartbeatClasses: the control plane's Leases in kube-system
// (the controllers' leader lease, a scheduler's) are control-plane
// heartbeats whether read, created or written; node Leases and node status
// writes are node heartbeats; everything else is neither.
func TestInflightHeartbeatClasses(t *testing.T) {
	const leases = "/apis/coordination.k8s.io/v1/namespaces/"
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", leases + "kube-system/leases/drover-controllers", controlPlaneHeartbeat},
		{"PUT", leases + "kube-system/leases/drover-controllers", controlPlaneHeartbeat},
		{"PATCH", leases + "kube-system/leases/kube-scheduler", controlPlaneHeartbeat},
		{"POST", leases + "kube-system/leases", controlPlaneHeartbeat},
		{"GET", leases + "kube-system/leases", nodeHeartbeat}, // a list: no reserve of the control plane's
		{"PUT", leases + "kube-node-lease/leases/n1", nodeHeartbeat},
		{"GET", leases + "kube-node-lease/leases/n1", nodeHeartbeat},
		{"PUT", leases + "default/leases/my-app", nodeHeartbeat},
		{"PUT", "/api/v1/nodes/n1/status", nodeHeartbeat},
		{"PATCH", "/api/v1/nodes/n1/status", nodeHeartbeat},
		{"PUT", "/api/v1/nodes/n1", notHeartbeat},
		{"PUT", "/api/v1/namespaces/kube-system/configmaps/drover-controllers", notHeartbeat},
		{"PUT", "/apis/apps/v1/namespaces/kube-system/deployments/leases", notHeartbeat},
		{"GET", "/healthz", notHeartbeat},
	} {
		if got := heartbeatOf(httptest.NewRequest(tc.method, tc.path, nil)); got != tc.want {
			t.Errorf("%s %s: class %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
}

// TestInflightControlPlaneLeaseReserve fills a mutating pool with other
// writes and its heartbeat reserve with node Lease renewals: the leader
// lease's renewal still gets in (its own reserve), a further node renewal
// does not, and once the control plane's reserve is taken too its next
// write falls back to the nodes' reserve when a slot frees there.
func TestInflightControlPlaneLeaseReserve(t *testing.T) {
	l := &inflightLimiter{readOnly: newPool(100, kindReadOnly, nil), mutating: newPool(100, kindReadOnly, nil)} // no queue wait: full means 429 at once
	req := func(method, path string) *http.Request { return httptest.NewRequest(method, path, nil) }
	nodeLease := func() *http.Request {
		return req("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1")
	}
	leaderLease := func() *http.Request {
		return req("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/drover-controllers")
	}
	// The limiter is the test's own: slots taken are not given back.
	take := func(r *http.Request, what string) func() {
		t.Helper()
		release, ok := l.acquire(r, nil)
		if !ok {
			t.Fatalf("%s rejected", what)
		}
		return release
	}
	for range l.mutating.free[classWorkload] {
		take(req("POST", "/api/v1/namespaces/default/pods"), "pod create while the pool has room")
	}
	if _, ok := l.acquire(req("POST", "/api/v1/namespaces/default/pods"), nil); ok {
		t.Fatal("a pod create beyond the pool was admitted")
	}
	var firstNode func()
	for i := range l.mutating.free[classNodeHeartbeat] {
		r := take(nodeLease(), "node lease renewal within the heartbeat reserve")
		if i == 0 {
			firstNode = r
		}
	}
	if _, ok := l.acquire(nodeLease(), nil); ok {
		t.Fatal("a node lease renewal beyond the heartbeat reserve was admitted")
	}
	for range l.mutating.free[classControlPlane] {
		take(leaderLease(), "leader lease renewal with the heartbeat reserve full")
	}
	if _, ok := l.acquire(leaderLease(), nil); ok {
		t.Fatal("a leader lease renewal was admitted with every slot it may take busy")
	}
	firstNode()
	take(leaderLease(), "leader lease renewal once a heartbeat slot is free")
	// Reads of the leader lease have the read-only pool's reserve.
	for range l.readOnly.free[classWorkload] {
		take(req("GET", "/api/v1/pods"), "a read while the pool has room")
	}
	take(req("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/drover-controllers"), "leader lease read with the read-only pool full")
}
