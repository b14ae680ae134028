// Package cacher is a watch cache in front of a storage.Interface: one watch
// of the inner store per key prefix keeps an in-memory copy of every key under
// it and a window of recent events, so that many clients can list and watch
// that prefix without each of them reading or watching etcd.
//
// A Cacher serves
//   - Watch from its event window: events after the requested revision are
//     replayed, then live events follow, in the inner store's order, each
//     exactly once. A revision older than the window (or than the last
//     Compact) is handed to the inner store, which answers ErrCompacted when
//     etcd no longer has it either. A watcher that falls more than
//     Options.WatcherQueue events behind is closed without an Error event, as
//     upstream's cacher does: its client watches again from the last
//     revision it saw, and the window replays what it missed.
//   - List of the latest revision from memory once the cache has caught up
//     with the inner store's current revision (read with one cheap Revision
//     call, then, when the inner store can, a progress request), so a cached
//     list is never older than one read from etcd at the same moment. When
//     the cache does not catch up within Options.FreshnessTimeout the list
//     goes to the inner store. On etcd, the cache's watch and progress
//     requests use a gRPC stream of their own (etcd.Store.IsolatedContext):
//     etcd holds back progress on a stream while any watch on it waits for
//     a future revision, which made such lists wait the whole timeout.
//   - List at an explicit revision from the snapshot of an earlier cached
//     List at that revision (the later pages of a paginated list), or else
//     from the inner store.
//   - Progress events to idle watchers every Options.ProgressInterval, at the
//     cache's revision, which moves with the inner store's Progress too.
//
// Get, Count, writes, Revision and Compact go to the inner store; GetCached
// reads one key's cached copy, which may lag the inner store. Values
// returned by List are shared with the cache: callers must not modify them.
//
// Multi puts one Cacher per prefix in front of a store and routes every
// other prefix to the store itself.
package cacher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"

	"github.com/drover/drover/internal/storage"
)

// Defaults for the zero Options.
const (
	DefaultEventWindow      = 2000
	DefaultWatcherQueue     = 1000
	DefaultProgressInterval = 5 * time.Second
	DefaultFreshnessTimeout = 3 * time.Second
)

// Options configures a Cacher. Only Prefix is required.
type Options struct {
	// Prefix is the subtree the cacher keeps, e.g. "/registry/core/pods/".
	// Lists and watches of prefixes inside it are served from the cache;
	// others go to the inner store.
	Prefix string
	// EventWindow is how many recent events are kept for watches that start
	// from an earlier revision (default DefaultEventWindow). Each holds its
	// value and previous value, so a window costs about twice its events'
	// object size; watches from before it go to the inner store.
	EventWindow int
	// WatcherQueue is how many events a watcher may fall behind before it is
	// closed (default DefaultWatcherQueue).
	WatcherQueue int
	// ProgressInterval is how often idle watchers get a Progress event
	// (default DefaultProgressInterval).
	ProgressInterval time.Duration
	// FreshnessTimeout bounds how long a List or Watch from "now" waits for
	// the cache to reach the inner store's revision before it goes to the
	// inner store instead (default DefaultFreshnessTimeout).
	FreshnessTimeout time.Duration
	// Logger receives the cache's own trouble (lost watches, relists).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.EventWindow <= 0 {
		o.EventWindow = DefaultEventWindow
	}
	if o.WatcherQueue <= 0 {
		o.WatcherQueue = DefaultWatcherQueue
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.FreshnessTimeout <= 0 {
		o.FreshnessTimeout = DefaultFreshnessTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// progressRequester is implemented by stores that can be asked for a
// Progress event on their open watches now (the etcd store).
type progressRequester interface {
	RequestProgress(ctx context.Context) error
}

// streamIsolator is implemented by stores whose watches share streams on
// which one watch can hold back the progress of another (etcd): watches and
// progress requests made with an isolated context get a stream of their own.
type streamIsolator interface {
	IsolatedContext(ctx context.Context, name string) context.Context
}

// innerCtx marks ctx for the cache's own watch and progress requests.
func (c *Cacher) innerCtx(ctx context.Context) context.Context {
	if si, ok := c.inner.(streamIsolator); ok {
		return si.IsolatedContext(ctx, "cacher "+c.opts.Prefix)
	}
	return ctx
}

// snapshot is the cache's content at one revision. Its tree is a
// copy-on-write clone: it never changes.
type snapshot struct {
	rev  int64
	tree *btree.BTreeG[storage.KeyValue]
}

// maxSnapshots is how many List snapshots are kept for later pages.
const maxSnapshots = 16

// Cacher is a storage.Interface that serves lists and watches under one
// prefix from memory; see the package documentation.
type Cacher struct {
	inner  storage.Interface
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the background goroutines end

	mu       sync.Mutex
	ready    bool  // the cache holds a full list and follows the inner watch
	rev      int64 // every change up to rev is applied
	tree     *btree.BTreeG[storage.KeyValue]
	window   ring  // recent events, oldest first
	minWatch int64 // watches from revisions below minWatch go to the inner store
	watchers map[*watcher]struct{}
	fresh    chan struct{} // closed and replaced whenever rev or ready changes
	snaps    []snapshot    // newest last
	closed   bool
	// progressAsked is when a progress request was last sent; the next
	// Progress from the inner store answers it.
	progressAsked time.Time

	// Counters for Stats.
	cachedLists, innerLists, cachedWatches, innerWatches, slowWatchers atomic.Int64
}

// Stats describes a Cacher's state and how it has served requests.
type Stats struct {
	Prefix string
	// Ready tells that the cache holds a full list and follows the inner
	// store; Revision is the revision it has applied everything up to.
	Ready    bool
	Revision int64
	Keys     int
	Watchers int
	// Requests served from memory and handed to the inner store.
	CachedLists, InnerLists, CachedWatches, InnerWatches int64
	// SlowWatchersClosed counts watchers closed for falling behind.
	SlowWatchersClosed int64
}

// Stats returns the cache's state and counters.
func (c *Cacher) Stats() Stats {
	c.mu.Lock()
	st := Stats{Prefix: c.opts.Prefix, Ready: c.ready, Revision: c.rev, Keys: c.tree.Len(), Watchers: len(c.watchers)}
	c.mu.Unlock()
	st.CachedLists, st.InnerLists = c.cachedLists.Load(), c.innerLists.Load()
	st.CachedWatches, st.InnerWatches = c.cachedWatches.Load(), c.innerWatches.Load()
	st.SlowWatchersClosed = c.slowWatchers.Load()
	return st
}

var (
	_ storage.Interface = (*Cacher)(nil)
	_ storage.Expirer   = (*Cacher)(nil)
)

// New starts a Cacher for opts.Prefix on inner. It lists and watches inner in
// the background, serving from inner until the first list has arrived. The
// Cacher does not own inner: Close stops the cache only.
func New(inner storage.Interface, opts Options) (*Cacher, error) {
	if inner == nil {
		return nil, errors.New("cacher: nil inner store")
	}
	if opts.Prefix == "" || !strings.HasSuffix(opts.Prefix, "/") {
		return nil, fmt.Errorf("cacher: prefix %q must be non-empty and end in /", opts.Prefix)
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cacher{
		inner:    inner,
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		tree:     newTree(),
		window:   newRing(opts.EventWindow),
		watchers: map[*watcher]struct{}{},
		fresh:    make(chan struct{}),
	}
	var wg sync.WaitGroup
	wg.Go(c.reflect)
	wg.Go(c.progressLoop)
	go func() {
		wg.Wait()
		close(c.done)
	}()
	return c, nil
}

func newTree() *btree.BTreeG[storage.KeyValue] {
	return btree.NewG(32, func(a, b storage.KeyValue) bool { return a.Key < b.Key })
}

// covers reports whether a list or watch of prefix is served by the cache.
func (c *Cacher) covers(prefix string) bool { return strings.HasPrefix(prefix, c.opts.Prefix) }

// Get reads the inner store.
func (c *Cacher) Get(ctx context.Context, key string) (storage.KeyValue, error) {
	return c.inner.Get(ctx, key)
}

// GetCached returns the cache's copy of key, without reading the inner
// store: its value (shared with the cache: callers must not modify it) and
// its mod revision. ok is false when key is outside the cached prefix, the
// cache is not ready, or it does not hold key. The copy may be older than the
// inner store's, as upstream's watch cache is: a caller that writes
// conditionally on its revision learns so from ErrConflict; one that answers
// from it must confirm with Get what it cannot check otherwise (e.g. that the
// key is absent).
func (c *Cacher) GetCached(key string) (kv storage.KeyValue, ok bool) {
	if !c.covers(key) {
		return storage.KeyValue{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return storage.KeyValue{}, false
	}
	return c.tree.Get(storage.KeyValue{Key: key})
}

// Count reads the inner store.
func (c *Cacher) Count(ctx context.Context, prefix string) (int64, error) {
	return c.inner.Count(ctx, prefix)
}

// Create writes to the inner store.
func (c *Cacher) Create(ctx context.Context, key string, value []byte) (int64, error) {
	return c.inner.Create(ctx, key, value)
}

// Update writes to the inner store.
func (c *Cacher) Update(ctx context.Context, key string, value []byte, expectedRevision int64) (int64, error) {
	return c.inner.Update(ctx, key, value, expectedRevision)
}

// CreateWithTTL writes to the inner store, with the TTL if it can expire
// keys (see storage.CreateWithTTL).
func (c *Cacher) CreateWithTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	return storage.CreateWithTTL(ctx, c.inner, key, value, ttl)
}

// UpdateWithTTL writes to the inner store, with the TTL if it can expire
// keys (see storage.UpdateWithTTL).
func (c *Cacher) UpdateWithTTL(ctx context.Context, key string, value []byte, expectedRevision int64, ttl time.Duration) (int64, error) {
	return storage.UpdateWithTTL(ctx, c.inner, key, value, expectedRevision, ttl)
}

// Delete writes to the inner store.
func (c *Cacher) Delete(ctx context.Context, key string, expectedRevision int64) (storage.KeyValue, int64, error) {
	return c.inner.Delete(ctx, key, expectedRevision)
}

// Revision reads the inner store's current revision.
func (c *Cacher) Revision(ctx context.Context) (int64, error) { return c.inner.Revision(ctx) }

// Compact compacts the inner store and forgets the cached events before
// revision, so that watches from before it fail as they do on the inner
// store.
func (c *Cacher) Compact(ctx context.Context, revision int64) error {
	if err := c.inner.Compact(ctx, revision); err != nil {
		return err
	}
	c.compacted(revision)
	return nil
}

// compacted records a compaction of the inner store at revision: a watch
// from revision r reads events from r+1, which etcd refuses below revision.
func (c *Cacher) compacted(revision int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.minWatch = max(c.minWatch, revision-1)
}

// Close stops the cache; its watchers end with an Error event wrapping
// storage.ErrUnavailable. The inner store stays open.
func (c *Cacher) Close() error {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.setReadyLocked(false)
	c.terminateAllLocked(fmt.Errorf("cacher %s: closed: %w", c.opts.Prefix, storage.ErrUnavailable))
	return nil
}

// List answers from the cache when it can; see the package documentation.
func (c *Cacher) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	if opts.Limit < 0 || opts.Revision < 0 {
		return storage.ListResult{}, fmt.Errorf("cacher: list %s: negative limit or revision", prefix)
	}
	if !c.covers(prefix) {
		return c.inner.List(ctx, prefix, opts)
	}
	var snap snapshot
	var ok bool
	if opts.Revision > 0 {
		snap, ok = c.snapshotAt(opts.Revision)
	} else {
		snap, ok = c.freshSnapshot(ctx)
	}
	if !ok {
		c.innerLists.Add(1)
		return c.inner.List(ctx, prefix, opts)
	}
	c.cachedLists.Add(1)
	return listTree(snap, prefix, opts), nil
}

// listTree answers a List from a snapshot, as etcd would at its revision.
func listTree(snap snapshot, prefix string, opts storage.ListOptions) storage.ListResult {
	start := prefix
	if opts.StartKey > prefix {
		start = opts.StartKey
	}
	// The tree may hold keys outside prefix: a guess, capped by the limit.
	size := snap.tree.Len()
	if opts.Limit > 0 {
		size = min(size, int(opts.Limit))
	}
	res := storage.ListResult{Revision: snap.rev, Items: make([]storage.KeyValue, 0, size)}
	snap.tree.AscendGreaterOrEqual(storage.KeyValue{Key: start}, func(kv storage.KeyValue) bool {
		if !strings.HasPrefix(kv.Key, prefix) {
			return false
		}
		if opts.Limit > 0 && int64(len(res.Items)) >= opts.Limit {
			res.Remaining++
			return true
		}
		res.Items = append(res.Items, kv)
		return true
	})
	res.More = res.Remaining > 0
	return res
}

// snapshotAt returns the kept snapshot at rev, or the current content if the
// cache is at rev.
func (c *Cacher) snapshotAt(rev int64) (snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return snapshot{}, false
	}
	if rev == c.rev {
		return c.snapshotLocked(), true
	}
	for i := len(c.snaps) - 1; i >= 0; i-- {
		if c.snaps[i].rev == rev {
			return c.snaps[i], true
		}
	}
	return snapshot{}, false
}

// snapshotLocked returns the current content, keeping it for later pages.
func (c *Cacher) snapshotLocked() snapshot {
	if n := len(c.snaps); n > 0 && c.snaps[n-1].rev == c.rev {
		return c.snaps[n-1]
	}
	s := snapshot{rev: c.rev, tree: c.tree.Clone()}
	if len(c.snaps) == maxSnapshots {
		copy(c.snaps, c.snaps[1:])
		c.snaps = c.snaps[:maxSnapshots-1]
	}
	c.snaps = append(c.snaps, s)
	return s
}

// freshSnapshot returns the cache's content once it is at least as new as
// the inner store's current revision; false when it does not get there in
// time (or the inner store cannot tell its revision).
func (c *Cacher) freshSnapshot(ctx context.Context) (snapshot, bool) {
	cur, err := c.inner.Revision(ctx)
	if err != nil {
		return snapshot{}, false
	}
	if !c.waitFresh(ctx, cur) {
		return snapshot{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return snapshot{}, false
	}
	return c.snapshotLocked(), true
}

// waitFresh waits until the cache has applied every change up to rev.
func (c *Cacher) waitFresh(ctx context.Context, rev int64) bool {
	var timeout <-chan time.Time
	started := false
	for {
		c.mu.Lock()
		ready, cur, fresh := c.ready, c.rev, c.fresh
		c.mu.Unlock()
		if !ready {
			return false
		}
		if cur >= rev {
			return true
		}
		if !started {
			started = true
			timer := time.NewTimer(c.opts.FreshnessTimeout)
			defer timer.Stop()
			timeout = timer.C
		}
		// The changes up to rev may all be outside the prefix: ask the inner
		// store to tell the cache's watch how far it has got.
		c.requestProgress(ctx)
		select {
		case <-fresh:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// progressRetry is how long a progress request may go unanswered before
// another one is sent.
const progressRetry = 50 * time.Millisecond

// requestProgress asks the inner store for a Progress event on the cache's
// watch, unless a request is already on its way: many waiting lists share
// one request.
func (c *Cacher) requestProgress(ctx context.Context) {
	pr, ok := c.inner.(progressRequester)
	if !ok {
		return
	}
	c.mu.Lock()
	if time.Since(c.progressAsked) < progressRetry {
		c.mu.Unlock()
		return
	}
	c.progressAsked = time.Now()
	c.mu.Unlock()
	if err := pr.RequestProgress(c.innerCtx(ctx)); err != nil {
		c.opts.Logger.Debug("cacher: progress request failed", "prefix", c.opts.Prefix, "err", err)
	}
}

// setReadyLocked changes readiness and wakes waiters.
func (c *Cacher) setReadyLocked(ready bool) {
	c.ready = ready
	c.wakeLocked()
}

func (c *Cacher) wakeLocked() {
	close(c.fresh)
	c.fresh = make(chan struct{})
}

// Watch serves the watch from the cache when it can; see the package
// documentation.
func (c *Cacher) Watch(ctx context.Context, prefix string, fromRevision int64) (<-chan storage.Event, error) {
	if fromRevision < 0 {
		return nil, fmt.Errorf("cacher: watch %s: negative revision %d", prefix, fromRevision)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cacher: watch %s: %w", prefix, err)
	}
	if !c.covers(prefix) {
		return c.inner.Watch(ctx, prefix, fromRevision)
	}
	if fromRevision == 0 {
		// "From now" is the inner store's current revision, as for the
		// inner store itself.
		cur, err := c.inner.Revision(ctx)
		if err != nil {
			return nil, fmt.Errorf("cacher: watch %s: %w", prefix, err)
		}
		fromRevision = cur
		if !c.waitFresh(ctx, cur) {
			return c.innerWatch(ctx, prefix, fromRevision)
		}
	}
	c.mu.Lock()
	if !c.ready || fromRevision < c.minWatch || fromRevision < c.window.start {
		c.mu.Unlock()
		return c.innerWatch(ctx, prefix, fromRevision)
	}
	w := newWatcher(prefix, fromRevision)
	c.window.each(fromRevision, func(ev storage.Event) {
		if strings.HasPrefix(ev.Key, prefix) {
			w.queue = append(w.queue, ev)
		}
	})
	w.limit = c.opts.WatcherQueue + len(w.queue)
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	c.cachedWatches.Add(1)

	// Buffered, so that a consumer can tell more events are ready (the
	// API server then writes them out in one go); a small share of the
	// queue a watcher may fall behind by.
	out := make(chan storage.Event, min(watchOutBuffer, c.opts.WatcherQueue/16))
	go func() {
		defer close(out)
		w.run(ctx, out)
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}()
	return out, nil
}

// watchOutBuffer is the room in a cached watch's channel.
const watchOutBuffer = 64

func (c *Cacher) innerWatch(ctx context.Context, prefix string, from int64) (<-chan storage.Event, error) {
	c.innerWatches.Add(1)
	return c.inner.Watch(ctx, prefix, from)
}

// terminateAllLocked ends every watcher, with an Error event if err is set.
func (c *Cacher) terminateAllLocked(err error) {
	for w := range c.watchers {
		w.terminate(err)
		delete(c.watchers, w)
	}
}

// progressLoop sends Progress events to idle watchers.
func (c *Cacher) progressLoop() {
	ticker := time.NewTicker(c.opts.ProgressInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-ticker.C:
		}
		// Move the revision along with writes outside the prefix, so that
		// bookmarks do too.
		c.requestProgress(c.ctx)
		c.mu.Lock()
		if c.ready {
			for w := range c.watchers {
				// Never below a watch's start: a watch from a future
				// revision has been told nothing yet.
				if c.rev >= w.from {
					w.offerProgress(c.rev)
				}
			}
		}
		c.mu.Unlock()
	}
}
