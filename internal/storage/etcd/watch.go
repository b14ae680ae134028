package etcd

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover/drover/internal/storage"
)

// watchBuffer is how many events a watcher may fall behind before the
// watch goroutine waits for it.
const watchBuffer = 64

// Watch streams changes under prefix with revisions > fromRevision
// (fromRevision 0: from now on). The channel closes when ctx ends or after an
// Error event: storage.ErrCompacted when fromRevision is older than the
// compacted history, storage.ErrUnavailable when etcd loses its leader or the
// store is closed. Progress events come from etcd (every ProgressInterval,
// carrying the current revision) and, while the watch stays idle, from the
// watch itself at the revision it last delivered.
func (s *Store) Watch(ctx context.Context, prefix string, fromRevision int64) (<-chan storage.Event, error) {
	return s.watch(ctx, prefix, fromRevision, true)
}

// WatchCurrent is Watch without the values a change replaced: Modified
// events have no PrevValue and Deleted events no Value. etcd reads each
// previous value back from its database for a watch that asks for them;
// a watcher that keeps its own copy of every key (the watch cache) does
// without.
func (s *Store) WatchCurrent(ctx context.Context, prefix string, fromRevision int64) (<-chan storage.Event, error) {
	return s.watch(ctx, prefix, fromRevision, false)
}

func (s *Store) watch(ctx context.Context, prefix string, fromRevision int64, previous bool) (<-chan storage.Event, error) {
	if fromRevision < 0 {
		return nil, fmt.Errorf("etcd: watch %s: negative revision %d", prefix, fromRevision)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcd: watch %s: %w", prefix, err)
	}
	start, end := listRange(prefix, "")
	opts := []clientv3.OpOption{
		clientv3.WithRange(end),
		clientv3.WithProgressNotify(),
	}
	if previous {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if fromRevision == 0 {
		// "From now" is the current revision, so that Progress events
		// always carry a real revision.
		cur, err := s.Revision(ctx)
		if err != nil {
			return nil, fmt.Errorf("etcd: watch %s: %w", prefix, err)
		}
		fromRevision = cur
	}
	opts = append(opts, clientv3.WithRev(fromRevision+1))

	wctx, cancel := context.WithCancel(leader(ctx))
	wch := s.client.Watch(wctx, start, opts...)
	out := make(chan storage.Event, watchBuffer)
	s.progress.add()
	go func() {
		defer close(out)
		defer cancel()
		defer s.progress.remove()
		w := watcher{ctx: ctx, out: out, prefix: prefix, lastRev: fromRevision}
		w.run(wch, s.progress.interval)
	}()
	return out, nil
}

// watcher turns one clientv3 watch stream into storage events.
type watcher struct {
	ctx    context.Context
	out    chan<- storage.Event
	prefix string
	// lastRev is the revision delivered last (an event's or a Progress's):
	// every change up to it has been sent, and no Progress may go below it.
	lastRev int64
	// sent tells whether anything was sent since the last tick.
	sent bool
}

// run forwards responses from wch until ctx ends or the stream fails.
//
// Progress comes from etcd when the progress requester asks for it. etcd
// withholds it from the whole gRPC stream while any watch on it starts past
// the current revision (a watch from "now" opened at revision R starts at
// R+1), which lasts until the next write anywhere. So a watch that stays
// idle for a whole interval also reports Progress at lastRev itself: true by
// construction, and the current revision in exactly that situation.
func (w *watcher) run(wch clientv3.WatchChan, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-ticker.C:
			if !w.sent && !w.send(storage.Event{Type: storage.Progress, Revision: w.lastRev}) {
				return
			}
			w.sent = false
		case resp, ok := <-wch:
			if !w.handle(resp, ok) {
				return
			}
		}
	}
}

// handle forwards one watch response; false means the watch is over.
func (w *watcher) handle(resp clientv3.WatchResponse, ok bool) bool {
	if !ok {
		if w.ctx.Err() == nil {
			w.send(errorEvent(fmt.Errorf("etcd: watch %s: stream closed: %w", w.prefix, storage.ErrUnavailable)))
		}
		return false
	}
	if err := resp.Err(); err != nil {
		if w.ctx.Err() == nil {
			w.send(errorEvent(mapErr("watch "+w.prefix, err)))
		}
		return false
	}
	if resp.IsProgressNotify() {
		// Never move a watch backwards, e.g. one from a future revision.
		if rev := resp.Header.Revision; rev >= w.lastRev {
			w.lastRev = rev
			return w.send(storage.Event{Type: storage.Progress, Revision: rev})
		}
		return true
	}
	for _, ev := range resp.Events {
		e := event(ev)
		w.lastRev = e.Revision
		if !w.send(e) {
			return false
		}
	}
	return true
}

// send delivers e unless the watch's context ends first.
func (w *watcher) send(e storage.Event) bool {
	select {
	case w.out <- e:
		w.sent = true
		return true
	case <-w.ctx.Done():
		return false
	}
}

func errorEvent(err error) storage.Event { return storage.Event{Type: storage.Error, Err: err} }

// event converts an etcd watch event.
func event(ev *clientv3.Event) storage.Event {
	e := storage.Event{Key: string(ev.Kv.Key), Revision: ev.Kv.ModRevision}
	switch {
	case ev.Type == mvccpb.DELETE:
		e.Type = storage.Deleted
		if ev.PrevKv != nil {
			e.Value = ev.PrevKv.Value
		}
	case ev.IsCreate():
		e.Type = storage.Added
		e.Value = ev.Kv.Value
	default:
		e.Type = storage.Modified
		e.Value = ev.Kv.Value
		if ev.PrevKv != nil {
			e.PrevValue, e.PrevRevision = ev.PrevKv.Value, ev.PrevKv.ModRevision
		}
	}
	return e
}

// progressRequester asks etcd for progress notifications on the client's
// require-leader watch stream every interval while any watch is open. etcd
// answers every watch on the stream at once, so one requester serves all of
// a Store's watches (etcd's own periodic progress notify is every 10 minutes).
type progressRequester struct {
	client   *clientv3.Client
	interval time.Duration

	mu       sync.Mutex
	watchers int
	closed   bool
	stop     context.CancelFunc // non-nil while the loop runs
	done     chan struct{}      // closed when the loop has exited
}

func newProgressRequester(client *clientv3.Client, interval time.Duration) *progressRequester {
	return &progressRequester{client: client, interval: interval}
}

// add counts a new watch, starting the loop for the first one.
func (p *progressRequester) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watchers++
	if p.stop != nil || p.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.stop, p.done = cancel, done
	go func() {
		defer close(done)
		p.loop(ctx)
	}()
}

// remove uncounts a watch, stopping the loop after the last one.
func (p *progressRequester) remove() {
	p.mu.Lock()
	p.watchers--
	if p.watchers > 0 {
		p.mu.Unlock()
		return
	}
	done := p.stopLocked()
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// close stops the loop for good.
func (p *progressRequester) close() {
	p.mu.Lock()
	p.closed = true
	done := p.stopLocked()
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

func (p *progressRequester) stopLocked() chan struct{} {
	if p.stop == nil {
		return nil
	}
	p.stop()
	done := p.done
	p.stop, p.done = nil, nil
	return done
}

func (p *progressRequester) loop(ctx context.Context) {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		// The require-leader metadata selects the gRPC stream Watch uses.
		rctx, cancel := context.WithTimeout(leader(ctx), p.interval)
		// An error here (no leader, client closed) also ends the watches,
		// which report it themselves.
		_ = p.client.RequestProgress(rctx)
		cancel()
	}
}
