package replicaset

import (
	"sync"
	"time"
)

// ExpectationsTimeout is how long the controller waits to observe its own
// creations and deletions before it stops trusting the count and syncs
// anyway (upstream's 5 minutes).
const ExpectationsTimeout = 5 * time.Minute

// Expectations records, per ReplicaSet key, the pod creations and
// deletions the controller has asked for but not yet seen in its informer,
// so a sync never acts twice on one gap (upstream's
// UIDTrackingControllerExpectations). Deletions are tracked by pod key, so
// a deletion seen twice (deletionTimestamp, then gone) counts once.
type Expectations struct {
	mu  sync.Mutex
	m   map[string]*expectation
	now func() time.Time
}

type expectation struct {
	add int
	del map[string]bool
	at  time.Time
}

// NewExpectations returns empty expectations reading time from now (nil
// means time.Now).
func NewExpectations(now func() time.Time) *Expectations {
	if now == nil {
		now = time.Now
	}
	return &Expectations{m: map[string]*expectation{}, now: now}
}

// ExpectCreations records that n pods are being created for key,
// replacing any previous record.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{add: n, at: e.now()}
}

// ExpectDeletions records that the pods podKeys are being deleted for key,
// replacing any previous record.
func (e *Expectations) ExpectDeletions(key string, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	del := make(map[string]bool, len(podKeys))
	for _, k := range podKeys {
		del[k] = true
	}
	e.m[key] = &expectation{del: del, at: e.now()}
}

// CreationObserved records that one expected creation for key was seen
// (or will never be: the create failed).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[key]; x != nil && x.add > 0 {
		x.add--
	}
}

// DeletionObserved records that the deletion of podKey for key was seen
// (or will never be).
func (e *Expectations) DeletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[key]; x != nil {
		delete(x.del, podKey)
	}
}

// Satisfied reports whether key may be synced: nothing is pending, or the
// pending record is older than ExpectationsTimeout.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	if x == nil {
		return true
	}
	return (x.add <= 0 && len(x.del) == 0) || e.now().Sub(x.at) > ExpectationsTimeout
}

// Delete forgets key (its ReplicaSet is gone).
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
