package controlplane

import (
	"sync"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// sharedResyncCheck is the shared factory's default resync period. The
// controllers register their handlers with their own resync periods (none,
// 5 or 10 minutes); a non-zero default lets the informers honour those, and
// is only how often each informer checks whether a handler is due.
const sharedResyncCheck = time.Minute

// termInformers is the one SharedInformerFactory that the leader-only
// components share during a leadership term, so that every pod, node or
// ReplicaSet event is decoded and cached once rather than once per
// controller. Each sharing component registers its informers and handlers
// and then calls Start; the informers start when the last of them has, so
// that every handler and index is in place before the first list. The
// owner shuts it down once the term's components have returned.
type termInformers struct {
	informers.SharedInformerFactory
	stop <-chan struct{}

	mu      sync.Mutex
	waiting int // sharing components that have not called Start yet
}

// newTermInformers returns a factory for sharers components, started on
// the last one's Start call and stopped when stop closes.
func newTermInformers(client kubernetes.Interface, sharers int, stop <-chan struct{}) *termInformers {
	t := &termInformers{
		SharedInformerFactory: informers.NewSharedInformerFactory(client, sharedResyncCheck),
		stop:                  stop,
		waiting:               sharers,
	}
	if sharers == 0 {
		t.SharedInformerFactory.Start(stop)
	}
	return t
}

// Start records that a sharing component has registered its informers;
// once all have, it starts the informers (with the term's stop channel,
// whatever the caller passes) and, as the factory's Start does, any
// informer requested later on a further call.
func (t *termInformers) Start(<-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.waiting > 0 {
		t.waiting--
	}
	if t.waiting == 0 {
		t.SharedInformerFactory.Start(t.stop)
	}
}
