package apiserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
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

// defaultInflightQueueWait is how long a request that finds no slot it
// may take waits in its queue before it is rejected, as upstream's API
// Priority and Fairness (a quarter of the 60 s request timeout).
const defaultInflightQueueWait = 15 * time.Second

// queuedPerSlot is how many requests of one class may wait in a pool's
// queue per slot of the pool before newcomers are rejected at once.
const queuedPerSlot = 10

// inflightLimiter bounds concurrent requests, as upstream's max-in-flight
// filter does, and queues those beyond the bounds, as its API Priority and
// Fairness does, rather than refusing them at once.
//
// Read-only and mutating requests have separate pools. Long-running
// requests (watches, logs, exec) are not counted, nor are the control
// plane's own components' requests, served in process: their transport
// bounds them (inprocess.Transport.MaxConcurrent), and refusing them only
// delays the controllers and scheduler that would bring a flood to an end
// (upstream exempts its loopback client the same way).
//
// A pool has shared slots and reserves that only one class of request may
// take: system:masters over the network (an admin's kubectl works during a
// flood from other identities), node heartbeats (Lease and node status
// writes: late heartbeats make the node lifecycle controller mark nodes
// Unknown and evict their pods, which only adds to the load), and the
// control plane's own Leases (kube-system: the controllers' leader lease,
// servers' leases; a change of leader restarts every controller), which
// may also take the nodes' reserve.
//
// A request that finds every slot it may take busy waits in its class's
// queue. A freed slot goes to the waiting request of the highest class that
// may take it (control-plane Leases, node heartbeats, masters, then
// everything else), but every fourth shared one to the lowest, so that no
// class starves; within a class a slot goes to each identity in turn, so
// one client's flood delays another's requests by at most one of its own. A
// request is rejected (429, Retry-After) only when its class's queue is
// full or it has waited its limit. Clients such as kubelets send their
// next request only when the last one is answered: queued rather than
// refused, their requests wait instead of coming back a second later, each
// retry costing both ends a request's parsing, authentication and answer
// (at 5,000 nodes, 3.5 million requests were refused and retried).
type inflightLimiter struct {
	readOnly, mutating *pool
	wait               time.Duration
}

// LimitObserver is what Config.Metrics may also implement (package
// metrics' APIMetrics does) to see the in-flight limits at work, with
// upstream's names for what it sees: kinds "readOnly" and "mutating",
// priority levels "leader-election" (the control plane's Leases),
// "node-high" (node heartbeats), "system-masters" and "workload", and
// rejection reasons "queue-full", "time-out" and "cancelled".
type LimitObserver interface {
	// InflightInc and InflightDec count a request of kind holding a slot.
	InflightInc(kind string)
	InflightDec(kind string)
	// ObserveQueueWait records a request of a priority level that waited
	// d in its queue; executed is false if it was rejected then.
	ObserveQueueWait(priorityLevel string, executed bool, d time.Duration)
	// ObserveRejected counts a request rejected (429), and why.
	ObserveRejected(priorityLevel, reason string)
}

// Request kinds and rejection reasons, as LimitObserver sees them.
const (
	kindReadOnly      = "readOnly"
	kindMutating      = "mutating"
	rejectedQueueFull = "queue-full"
	rejectedTimeOut   = "time-out"
	rejectedCancelled = "cancelled"
)

// priorityLevels names the classes as upstream's priority levels do.
var priorityLevels = [numClasses]string{
	classWorkload:      "workload",
	classMasters:       "system-masters",
	classNodeHeartbeat: "node-high",
	classControlPlane:  "leader-election",
}

// class is what a request may take beyond the shared slots and how soon it
// is served when it must wait: a higher class first.
type class int

const (
	classWorkload class = iota
	classMasters
	classNodeHeartbeat
	classControlPlane
	numClasses
)

// lowFirstEvery is how often a freed shared slot is offered to the
// lowest class waiting first rather than the highest: a quarter of the
// shared slots that requests wait for go to the classes that would
// otherwise wait behind every heartbeat.
const lowFirstEvery = 4

var (
	classesHighFirst = [numClasses]class{classControlPlane, classNodeHeartbeat, classMasters, classWorkload}
	classesLowFirst  = [numClasses]class{classWorkload, classMasters, classNodeHeartbeat, classControlPlane}
)

// pool is one limit: shared slots, a reserve for each class but the
// workload's, and a queue per class of the requests waiting for a slot.
type pool struct {
	kind       string // kindReadOnly or kindMutating
	observe    LimitObserver
	mu         sync.Mutex
	free       [numClasses]int // free slots: the shared ones at classWorkload, else the class's reserve
	queues     [numClasses]fairQueue
	queueLimit int // waiting requests per class
	// sharedGrants counts the shared slots freed, for lowFirstEvery.
	sharedGrants uint64
}

// slot names which slots a request holds: shared, or a class's reserve.
type slot = class

func newPool(limit int, kind string, observe LimitObserver) *pool {
	if limit <= 0 {
		return nil
	}
	reserve := max(1, limit/10)
	p := &pool{kind: kind, observe: observe, queueLimit: queuedPerSlot * limit}
	p.free[classWorkload] = limit
	p.free[classMasters] = reserve
	p.free[classNodeHeartbeat] = reserve
	p.free[classControlPlane] = max(1, limit/100)
	return p
}

// mayTake reports whether a request of class c may hold slot s.
func mayTake(c class, s slot) bool {
	return s == classWorkload || s == c || (c == classControlPlane && s == classNodeHeartbeat)
}

// take takes a free slot c may hold, the shared ones first, with p.mu
// held; ok is false when every one is busy.
func (p *pool) take(c class) (s slot, ok bool) {
	for _, s := range [...]slot{classWorkload, c, classNodeHeartbeat} {
		if mayTake(c, s) && p.free[s] > 0 {
			p.free[s]--
			return s, true
		}
	}
	return 0, false
}

// release gives s back: to the first waiting request of the highest class
// that may hold it, or to the free slots.
func (p *pool) release(s slot) {
	p.mu.Lock()
	order := classesHighFirst
	if s == classWorkload {
		// Every lowFirstEvery-th shared slot goes to the lowest class
		// waiting, so that no class starves: at 5,000 nodes the
		// heartbeats alone could keep every slot busy.
		p.sharedGrants++
		if p.sharedGrants%lowFirstEvery == 0 {
			order = classesLowFirst
		}
	}
	for _, c := range order {
		if mayTake(c, s) {
			if w := p.queues[c].pop(); w != nil {
				p.mu.Unlock()
				w.granted <- s // buffered: the waiter may have stopped waiting
				return
			}
		}
	}
	p.free[s]++
	p.mu.Unlock()
	if p.observe != nil {
		p.observe.InflightDec(p.kind)
	}
}

// took counts a slot taken from the free ones (a slot handed from one
// request to the next stays counted).
func (p *pool) took() {
	if p.observe != nil {
		p.observe.InflightInc(p.kind)
	}
}

// rejected counts a request of class c rejected for reason.
func (p *pool) rejected(c class, reason string) {
	if p.observe != nil {
		p.observe.ObserveRejected(priorityLevels[c], reason)
	}
}

// waited records a request of class c that waited since start.
func (p *pool) waited(c class, executed bool, start time.Time) {
	if p.observe != nil {
		p.observe.ObserveQueueWait(priorityLevels[c], executed, time.Since(start))
	}
}

func (p *pool) releaseShared() { p.release(classWorkload) }

// newInflightLimiter returns a limiter; a limit of 0 takes upstream's
// default, a negative one means unlimited; a wait of 0 takes
// defaultInflightQueueWait, a negative one rejects at once.
func newInflightLimiter(readOnly, mutating int, wait time.Duration, observe LimitObserver) *inflightLimiter {
	if readOnly == 0 {
		readOnly = defaultMaxRequestsInFlight
	}
	if mutating == 0 {
		mutating = defaultMaxMutatingRequestsInFlight
	}
	if wait == 0 {
		wait = defaultInflightQueueWait
	}
	return &inflightLimiter{readOnly: newPool(readOnly, kindReadOnly, observe), mutating: newPool(mutating, kindMutating, observe), wait: max(wait, 0)}
}

// acquire takes a slot for r from u, waiting its turn if need be, and
// returns the function that gives it back; ok is false when the request
// must be rejected.
func (l *inflightLimiter) acquire(r *http.Request, u *auth.User) (release func(), ok bool) {
	if isLongRunning(r) || inprocess.Served(r) {
		return func() {}, true
	}
	p := l.readOnly
	if isMutating(r.Method) {
		p = l.mutating
	}
	if p == nil {
		return func() {}, true
	}
	p.mu.Lock()
	if p.free[classWorkload] > 0 { // a shared slot: no need to know the class
		p.free[classWorkload]--
		p.mu.Unlock()
		p.took()
		return p.releaseShared, true
	}
	p.mu.Unlock()
	c := classOf(r, u)
	p.mu.Lock()
	if s, ok := p.take(c); ok {
		p.mu.Unlock()
		p.took()
		return func() { p.release(s) }, true
	}
	q := &p.queues[c]
	if l.wait <= 0 || q.len() >= p.queueLimit {
		p.mu.Unlock()
		p.rejected(c, rejectedQueueFull)
		return nil, false
	}
	flow := ""
	if u != nil {
		flow = u.Name
	}
	w := &waiter{flow: flow, granted: make(chan slot, 1)}
	q.push(w)
	p.mu.Unlock()

	start := time.Now()
	t := time.NewTimer(l.wait)
	defer t.Stop()
	reason := rejectedTimeOut
	select {
	case s := <-w.granted:
		p.waited(c, true, start)
		return func() { p.release(s) }, true
	case <-t.C:
	case <-r.Context().Done():
		reason = rejectedCancelled
	}
	p.mu.Lock()
	removed := q.remove(w)
	p.mu.Unlock()
	if !removed { // granted meanwhile: hand the slot on
		p.release(<-w.granted)
	}
	p.waited(c, false, start)
	p.rejected(c, reason)
	return nil, false
}

// classOf is r's class: its heartbeat kind, else whether u is an admin.
func classOf(r *http.Request, u *auth.User) class {
	switch heartbeatOf(r) {
	case controlPlaneHeartbeat:
		return classControlPlane
	case nodeHeartbeat:
		return classNodeHeartbeat
	}
	if u != nil && slices.Contains(u.Groups, mastersGroup) {
		return classMasters
	}
	return classWorkload
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

// limitObserver is m as a LimitObserver, nil if it is not one.
func limitObserver(m Observer) LimitObserver {
	o, _ := m.(LimitObserver)
	return o
}
