package endpoints

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TriggerTimes computes the endpoints.kubernetes.io/last-change-trigger-time
// annotation as upstream's TriggerTimeTracker does: for a service seen for
// the first time, its creation time; afterwards the earliest of the
// changes seen since the previous sync (a pod's Ready condition
// transition, the service's creation), or zero when nothing changed.
// Safe for concurrent use on different services.
type TriggerTimes struct {
	mu     sync.Mutex
	states map[types.NamespacedName]triggerState
}

type triggerState struct {
	service time.Time
	pods    map[string]time.Time
}

// NewTriggerTimes returns an empty tracker.
func NewTriggerTimes() *TriggerTimes {
	return &TriggerTimes{states: map[types.NamespacedName]triggerState{}}
}

// Compute returns the time to publish for a sync of the service with
// these pods, and commit, which records them as seen: call it once the
// sync's write succeeded (or none was needed), so a failed write is
// retried with the same trigger time.
func (t *TriggerTimes) Compute(svc *corev1.Service, pods []*corev1.Pod) (trigger time.Time, commit func()) {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	t.mu.Lock()
	old, known := t.states[key]
	t.mu.Unlock()

	var earliest time.Time
	earlier := func(tm time.Time) {
		if earliest.IsZero() || tm.Before(earliest) {
			earliest = tm
		}
	}
	next := triggerState{service: svc.CreationTimestamp.Time, pods: make(map[string]time.Time, len(pods))}
	for _, p := range pods {
		c := readyCondition(p)
		if c == nil || c.LastTransitionTime.IsZero() {
			continue
		}
		tm := c.LastTransitionTime.Time
		next.pods[p.Name] = tm
		if tm.After(old.pods[p.Name]) {
			earlier(tm)
		}
	}
	if next.service.After(old.service) {
		earlier(next.service)
	}
	commit = func() {
		t.mu.Lock()
		t.states[key] = next
		t.mu.Unlock()
	}
	if !known {
		return svc.CreationTimestamp.Time, commit
	}
	return earliest, commit
}

// Forget drops a deleted service's state.
func (t *TriggerTimes) Forget(namespace, name string) {
	t.mu.Lock()
	delete(t.states, types.NamespacedName{Namespace: namespace, Name: name})
	t.mu.Unlock()
}

// staleEndpoints remembers, per Endpoints object, the controller's last
// write: the resourceVersion it replaced, or that it created the object.
// A sync that still finds the replaced version in the informer cache, or
// no object after creating one, knows the cache is behind and waits.
type staleEndpoints struct {
	mu     sync.Mutex
	writes map[types.NamespacedName]lastWrite
}

type lastWrite struct {
	created  bool
	replaced string
}

func newStaleEndpoints() *staleEndpoints {
	return &staleEndpoints{writes: map[types.NamespacedName]lastWrite{}}
}

func (s *staleEndpoints) created(namespace, name string) {
	s.mu.Lock()
	s.writes[types.NamespacedName{Namespace: namespace, Name: name}] = lastWrite{created: true}
	s.mu.Unlock()
}

func (s *staleEndpoints) replaced(ep *corev1.Endpoints) {
	s.mu.Lock()
	s.writes[types.NamespacedName{Namespace: ep.Namespace, Name: ep.Name}] = lastWrite{replaced: ep.ResourceVersion}
	s.mu.Unlock()
}

// isStale reports whether cached (nil: not in the cache) predates the
// controller's last write of the object.
func (s *staleEndpoints) isStale(namespace, name string, cached *corev1.Endpoints) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writes[types.NamespacedName{Namespace: namespace, Name: name}]
	switch {
	case !ok:
		return false
	case cached == nil:
		return w.created
	default:
		return !w.created && w.replaced == cached.ResourceVersion
	}
}

func (s *staleEndpoints) forget(namespace, name string) {
	s.mu.Lock()
	delete(s.writes, types.NamespacedName{Namespace: namespace, Name: name})
	s.mu.Unlock()
}

// deletionExpected marks a slice the controller deleted.
const deletionExpected = -1

// sliceTracker remembers, per service, the generation of every
// EndpointSlice the controller wrote (or that it deleted them), as
// upstream's EndpointSliceTracker: a cache missing a slice it created,
// holding an older generation, or still holding one it deleted is stale,
// and a slice event at a generation it does not know was made by someone
// else and needs a sync.
type sliceTracker struct {
	mu   sync.Mutex
	gens map[types.NamespacedName]map[types.UID]int64
}

func newSliceTracker() *sliceTracker {
	return &sliceTracker{gens: map[types.NamespacedName]map[types.UID]int64{}}
}

func sliceService(es *discoveryv1.EndpointSlice) types.NamespacedName {
	return types.NamespacedName{Namespace: es.Namespace, Name: es.Labels[discoveryv1.LabelServiceName]}
}

func (t *sliceTracker) set(es *discoveryv1.EndpointSlice, gen int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := sliceService(es)
	m := t.gens[key]
	if m == nil {
		m = map[types.UID]int64{}
		t.gens[key] = m
	}
	m[es.UID] = gen
}

// written records a slice the controller created or updated.
func (t *sliceTracker) written(es *discoveryv1.EndpointSlice) { t.set(es, es.Generation) }

// deleted records a slice the controller deleted.
func (t *sliceTracker) deleted(es *discoveryv1.EndpointSlice) { t.set(es, deletionExpected) }

// shouldSync reports whether an observed slice differs from what the
// controller last wrote.
func (t *sliceTracker) shouldSync(es *discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	gen, ok := t.gens[sliceService(es)][es.UID]
	return !ok || es.Generation > gen
}

// observedDeletion forgets a deleted slice and reports whether the
// controller had deleted it itself.
func (t *sliceTracker) observedDeletion(es *discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.gens[sliceService(es)]
	gen, ok := m[es.UID]
	delete(m, es.UID)
	return ok && gen == deletionExpected
}

// stale reports whether the cached slices of a service lag behind the
// controller's own writes.
func (t *sliceTracker) stale(svc types.NamespacedName, cached []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.gens[svc]
	if len(m) == 0 {
		return false
	}
	seen := make(map[types.UID]bool, len(cached))
	for _, es := range cached {
		seen[es.UID] = true
		if gen, ok := m[es.UID]; ok && (gen == deletionExpected || gen > es.Generation) {
			return true
		}
	}
	for uid, gen := range m {
		if gen != deletionExpected && !seen[uid] {
			return true
		}
	}
	return false
}

func (t *sliceTracker) forget(svc types.NamespacedName) {
	t.mu.Lock()
	delete(t.gens, svc)
	t.mu.Unlock()
}
