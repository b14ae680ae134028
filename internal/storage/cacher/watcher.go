package cacher

import (
	"context"
	"sync"

	"github.com/drover/drover/internal/storage"
)

// watcher is one client watch served from the cache. The cache's reader
// appends to its queue without ever waiting for the client; the watcher's
// goroutine moves the queue to the client's channel.
type watcher struct {
	prefix string
	// from is the revision the watch started after: it gets no event or
	// Progress at or below it.
	from int64
	// limit is how long the queue may grow before the watcher is closed.
	limit int

	mu     sync.Mutex
	queue  []storage.Event
	spare  []storage.Event
	ended  bool          // no more events will be queued
	notify chan struct{} // a token when the queue or ended changes
}

func newWatcher(prefix string, from int64) *watcher {
	return &watcher{prefix: prefix, from: from, notify: make(chan struct{}, 1)}
}

// add queues ev; false means the watcher is too far behind and has been
// ended (the caller forgets it).
func (w *watcher) add(ev storage.Event) bool {
	w.mu.Lock()
	if w.ended {
		w.mu.Unlock()
		return false
	}
	if len(w.queue) >= w.limit {
		w.ended = true
		w.mu.Unlock()
		w.wake()
		return false
	}
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	w.wake()
	return true
}

// offerProgress queues a Progress event if the watcher has nothing else to
// deliver: a busy watcher learns its revision from the events themselves.
func (w *watcher) offerProgress(rev int64) {
	w.mu.Lock()
	if w.ended || len(w.queue) > 0 {
		w.mu.Unlock()
		return
	}
	w.queue = append(w.queue, storage.Event{Type: storage.Progress, Revision: rev})
	w.mu.Unlock()
	w.wake()
}

// terminate ends the watcher after what it has queued, then an Error event
// if err is set.
func (w *watcher) terminate(err error) {
	w.mu.Lock()
	if !w.ended && err != nil {
		w.queue = append(w.queue, storage.Event{Type: storage.Error, Err: err})
	}
	w.ended = true
	w.mu.Unlock()
	w.wake()
}

func (w *watcher) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// run delivers the queue to out until the watcher ends or ctx does.
func (w *watcher) run(ctx context.Context, out chan<- storage.Event) {
	defer func() {
		w.mu.Lock()
		w.ended = true
		w.queue, w.spare = nil, nil
		w.mu.Unlock()
	}()
	for {
		w.mu.Lock()
		batch, ended := w.queue, w.ended
		w.queue = w.spare[:0]
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Type == storage.Error {
				return
			}
		}
		clear(batch)
		w.mu.Lock()
		w.spare = batch[:0]
		w.mu.Unlock()
		if len(batch) > 0 {
			continue
		}
		if ended {
			return
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return
		}
	}
}
