package simfleet

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// dispatcher hands each event of the fleet's shared pod informer to the
// one node the pod is bound to. With a filtering handler per node, every
// event went to every node's handler (each with a goroutine and buffer of
// its own): a 500-node fleet did 500 times the work per pod event.
type dispatcher struct {
	idx      cache.Indexer
	mu       sync.RWMutex
	handlers map[string]*subscription
}

// subscription is one node's handler; its address tells subscriptions apart.
type subscription struct{ h cache.ResourceEventHandler }

func newDispatcher(idx cache.Indexer) *dispatcher {
	return &dispatcher{idx: idx, handlers: map[string]*subscription{}}
}

// subscribe registers h for node's pods, replaying as additions the pods
// the informer already holds for it; the returned func unregisters it.
func (d *dispatcher) subscribe(node string, h cache.ResourceEventHandler) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	sub := &subscription{h: h}
	d.handlers[node] = sub
	objs, _ := d.idx.ByIndex(nodeIndex, node)
	for _, obj := range objs {
		h.OnAdd(obj, true)
	}
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.handlers[node] == sub {
			delete(d.handlers, node)
		}
	}
}

func (d *dispatcher) handler(obj any) cache.ResourceEventHandler {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return nil
	}
	if sub := d.handlers[p.Spec.NodeName]; sub != nil {
		return sub.h
	}
	return nil
}

// OnAdd implements cache.ResourceEventHandler.
func (d *dispatcher) OnAdd(obj any, initial bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if h := d.handler(obj); h != nil {
		h.OnAdd(obj, initial)
	}
}

// OnUpdate implements cache.ResourceEventHandler. A pod's node is set
// once (by its binding), so the new object names the node to tell.
func (d *dispatcher) OnUpdate(oldObj, newObj any) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if h := d.handler(newObj); h != nil {
		h.OnUpdate(oldObj, newObj)
	}
}

// OnDelete implements cache.ResourceEventHandler.
func (d *dispatcher) OnDelete(obj any) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if h := d.handler(obj); h != nil {
		h.OnDelete(obj)
	}
}
