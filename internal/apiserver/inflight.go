package apiserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/inprocess"
)

// Upstream's defaults (--max-requests-inflight, --max-mutating-requests-inflight).
const (
	defaultMaxRequestsInFlight         = 400
	defaultMaxMutatingRequestsInFlight = 200
)

// mastersGroup is the admin group; it keeps a reserved share of each limit.
const mastersGroup = "system:masters"

// retryAfterSeconds is what a rejected client is told to wait, as upstream.
const retryAfterSeconds = 1

// inflightQueueWait is how long a request that finds its pool full waits
// for a slot before it is rejected. A rejected client-go client waits
// Retry-After (a second) and tries again, so waiting up to as long here
// costs it nothing more, and a burst that outlasts the limit only briefly
// (a thousand-pod rollout) is served in order instead of with 429s.
const inflightQueueWait = time.Second

// inflightLimiter bounds concurrent requests, as upstream's max-in-flight
// filter does: read-only and mutating requests have separate pools, and a
// request that finds its pool full waits its turn in a queue no longer
// than the pool (see below), else is rejected at once (429, Retry-After).
// Long-running requests (watches, logs, exec) are not counted, nor are the
// control plane's own components' requests, served in process: their
// transport bounds them (inprocess.Transport.MaxConcurrent), and refusing
// them only delays the controllers and scheduler that would bring a flood
// to an end (upstream exempts its loopback client, a system:masters
// identity, from priority and fairness the same way). Other
// system:masters have, besides the shared pool, a reserved one
// (a tenth of the limit, at least 1) that others cannot use, so that an
// admin's kubectl works during a flood from other identities. Node
// heartbeats (Lease and node status writes) have a reserved pool of their
// own as well: late heartbeats make the node lifecycle controller mark
// nodes Unknown and evict their pods, which only adds to the load. The
// control plane's own Leases (kube-system: the controllers' leader lease,
// servers' leases) have a small reserve apart even from the nodes', so
// that a fleet's renewals cannot take every heartbeat slot and cost the
// controllers their leader (each change of leader restarts them all). A
// request that finds every slot it may take busy waits up to
// inflightQueueWait for a shared one, then is rejected; a request that
// finds as many others already waiting as the pool has slots is rejected
// at once, so that a flood gets 429s at once rather than a second later
// (upstream's priority and fairness bounds its queues the same way).
type inflightLimiter struct {
	readOnly, mutating pool
	wait               time.Duration
}

// pool is one limit: shared slots, then slots only masters may take,
// slots only heartbeats may take, and slots only control-plane Leases may
// take; waiting holds a token per request queued for a shared slot. A nil
// channel means no limit.
type pool struct {
	shared, reserved, heartbeat, controlPlane, waiting chan struct{}
}

func newPool(limit int) pool {
	if limit <= 0 {
		return pool{}
	}
	reserve := max(1, limit/10)
	return pool{shared: make(chan struct{}, limit), reserved: make(chan struct{}, reserve), heartbeat: make(chan struct{}, reserve),
		controlPlane: make(chan struct{}, max(1, limit/100)), waiting: make(chan struct{}, limit)}
}

// newInflightLimiter returns a limiter; a limit of 0 takes upstream's
// default, a negative one means unlimited.
func newInflightLimiter(readOnly, mutating int) *inflightLimiter {
	if readOnly == 0 {
		readOnly = defaultMaxRequestsInFlight
	}
	if mutating == 0 {
		mutating = defaultMaxMutatingRequestsInFlight
	}
	return &inflightLimiter{readOnly: newPool(readOnly), mutating: newPool(mutating), wait: inflightQueueWait}
}

// acquire takes a slot for r from u, returning the function that gives it
// back; ok is false when the request must be rejected.
func (l *inflightLimiter) acquire(r *http.Request, u *auth.User) (release func(), ok bool) {
	if isLongRunning(r) || inprocess.Served(r) {
		return func() {}, true
	}
	p := &l.readOnly
	if isMutating(r.Method) {
		p = &l.mutating
	}
	if p.shared == nil {
		return func() {}, true
	}
	select {
	case p.shared <- struct{}{}:
		return func() { <-p.shared }, true
	default:
	}
	switch heartbeatOf(r) {
	case controlPlaneHeartbeat:
		select {
		case p.controlPlane <- struct{}{}:
			return func() { <-p.controlPlane }, true
		default:
		}
		fallthrough // then the nodes' reserve
	case nodeHeartbeat:
		select {
		case p.heartbeat <- struct{}{}:
			return func() { <-p.heartbeat }, true
		default:
		}
	}
	if u != nil && slices.Contains(u.Groups, mastersGroup) {
		select {
		case p.reserved <- struct{}{}:
			return func() { <-p.reserved }, true
		default:
		}
	}
	if l.wait > 0 {
		select {
		case p.waiting <- struct{}{}:
			defer func() { <-p.waiting }()
		default:
			return nil, false // the queue is full too
		}
		t := time.NewTimer(l.wait)
		defer t.Stop()
		select {
		case p.shared <- struct{}{}:
			return func() { <-p.shared }, true
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	return nil, false
}

// heartbeat classes: how a request says some component is alive.
const (
	notHeartbeat = iota
	// nodeHeartbeat: a Lease (kube-node-lease, or any namespace but
	// kube-system) or a node's status.
	nodeHeartbeat
	// controlPlaneHeartbeat: reading, creating or writing one Lease in
	// kube-system, as leader election (the controllers', a scheduler's)
	// and servers do.
	controlPlaneHeartbeat
)

// heartbeatOf classifies r: Lease and node status requests are how nodes,
// servers and controller leaders say they are alive.
func heartbeatOf(r *http.Request) int {
	info, ok := parseRequestInfo(r)
	if !ok {
		return notHeartbeat
	}
	switch {
	case info.Group == "coordination.k8s.io" && info.Resource == "leases" && info.Subresource == "":
		if info.Namespace == leaseNamespaceControlPlane && (info.Name != "" || info.Verb == "create") {
			return controlPlaneHeartbeat
		}
		return nodeHeartbeat
	case info.Group == "" && info.Resource == "nodes" && info.Subresource == "status":
		return nodeHeartbeat
	}
	return notHeartbeat
}

// leaseNamespaceControlPlane holds the control plane's Leases.
const leaseNamespaceControlPlane = "kube-system"

// isMutating reports whether method changes state.
func isMutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// isLongRunning reports whether r is a watch or a streaming subresource,
// which may last for hours and so is not counted against the limits.
func isLongRunning(r *http.Request) bool {
	info, ok := parseRequestInfo(r)
	if !ok {
		return false
	}
	if info.Verb == "watch" {
		return true
	}
	switch info.Subresource {
	case "log", "exec", "attach", "portforward", "proxy":
		return true
	}
	return false
}

// writeTooManyRequests rejects a request beyond the limits as upstream
// does: 429, Retry-After, and a Status with reason TooManyRequests.
func writeTooManyRequests(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(tooManyRequestsBody)
}

// tooManyRequestsBody is the Status of every rejected request, encoded
// once: rejecting is what an overloaded server does most (at 5,000 nodes
// making the error afresh each time was 3.7% of its CPU).
var tooManyRequestsBody = func() []byte {
	s := apierrors.NewTooManyRequests("Too many requests, please try again later.", retryAfterSeconds).ErrStatus
	s.Kind, s.APIVersion = "Status", "v1"
	data, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return data
}()
