package cacher

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/drover/drover/internal/storage"
)

// listPage is how many keys one request of the initial list reads.
const listPage = 10000

// reflect keeps the cache in step with the inner store: list, then watch
// from the list's revision; watch again from the last revision after a
// broken watch, list again after a compacted one.
func (c *Cacher) reflect() {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	var rev int64 // 0: a list is needed
	for c.ctx.Err() == nil {
		if rev == 0 {
			snap, err := c.listAll()
			if err != nil {
				c.opts.Logger.Warn("cacher: list failed", "prefix", c.opts.Prefix, "err", err)
				if !c.sleep(&backoff, maxBackoff) {
					return
				}
				continue
			}
			c.replace(snap)
			rev = snap.rev
		}
		events, err := c.watchInner(rev)
		if err == nil {
			var last int64
			last, err = c.follow(events)
			if last > rev {
				rev, backoff = last, minBackoff
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		if errors.Is(err, storage.ErrCompacted) {
			// Events were lost: the window and its watchers cannot continue.
			c.opts.Logger.Warn("cacher: watch compacted, listing again", "prefix", c.opts.Prefix, "revision", rev)
			c.mu.Lock()
			c.setReadyLocked(false)
			c.terminateAllLocked(nil)
			c.mu.Unlock()
			rev = 0
		} else if err != nil {
			c.opts.Logger.Warn("cacher: watch failed, watching again", "prefix", c.opts.Prefix, "revision", rev, "err", err)
		}
		if !c.sleep(&backoff, maxBackoff) {
			return
		}
	}
}

// currentWatcher is an inner store that can watch without the values a
// change replaced (etcd reads each back from its database for a watch that
// wants them); the cache has them.
type currentWatcher interface {
	WatchCurrent(ctx context.Context, prefix string, fromRevision int64) (<-chan storage.Event, error)
}

// watchInner watches the cache's prefix in the inner store from rev.
func (c *Cacher) watchInner(rev int64) (<-chan storage.Event, error) {
	ctx := c.innerCtx(c.ctx)
	if cw, ok := c.inner.(currentWatcher); ok {
		return cw.WatchCurrent(ctx, c.opts.Prefix, rev)
	}
	return c.inner.Watch(ctx, c.opts.Prefix, rev)
}

// sleep waits out the backoff, doubling it; false when the cacher closes.
func (c *Cacher) sleep(backoff *time.Duration, limit time.Duration) bool {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	*backoff = min(*backoff*2, limit)
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// listAll reads every key under the prefix at one revision.
func (c *Cacher) listAll() (snapshot, error) {
	tree := newTree()
	opts := storage.ListOptions{Limit: listPage}
	for {
		res, err := c.inner.List(c.ctx, c.opts.Prefix, opts)
		if err != nil {
			return snapshot{}, err
		}
		for _, kv := range res.Items {
			// Values from etcd share the response's buffer: a copy keeps
			// only the value alive (a third of the memory for 1 KiB values).
			kv.Value = bytes.Clone(kv.Value)
			tree.ReplaceOrInsert(kv)
		}
		opts.Revision = res.Revision
		if !res.More || len(res.Items) == 0 {
			return snapshot{rev: res.Revision, tree: tree}, nil
		}
		opts.StartKey = res.Items[len(res.Items)-1].Key + "\x00"
	}
}

// replace installs a fresh list as the cache's content.
func (c *Cacher) replace(snap snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.terminateAllLocked(nil)
	c.tree = snap.tree
	c.rev = snap.rev
	c.snaps = nil
	c.window.reset(snap.rev)
	c.setReadyLocked(true)
}

// follow applies the inner watch's events until it ends, returning the
// last revision applied and why the watch ended.
func (c *Cacher) follow(events <-chan storage.Event) (int64, error) {
	var last int64
	for ev := range events {
		switch ev.Type {
		case storage.Error:
			return last, ev.Err
		case storage.Progress:
			c.mu.Lock()
			c.progressAsked = time.Time{}
			if ev.Revision > c.rev {
				c.rev = ev.Revision
				c.wakeLocked()
			}
			c.mu.Unlock()
			last = max(last, ev.Revision)
		default:
			c.apply(ev)
			last = ev.Revision
		}
	}
	return last, nil
}

// apply records one change and hands it to the watchers of its key. The
// value a change replaced, when the inner watch did not send it, is the
// cache's own copy: the cache follows the inner store event by event.
func (c *Cacher) apply(ev storage.Event) {
	// Kept for long: copy the values out of the watch response's buffer.
	ev.Value, ev.PrevValue = bytes.Clone(ev.Value), bytes.Clone(ev.PrevValue)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Type == storage.Deleted {
		old, ok := c.tree.Delete(storage.KeyValue{Key: ev.Key})
		if ev.Value == nil && ok {
			ev.Value = old.Value
		}
	} else {
		old, ok := c.tree.ReplaceOrInsert(storage.KeyValue{Key: ev.Key, Value: ev.Value, Revision: ev.Revision})
		if ev.Type == storage.Modified && ev.PrevValue == nil && ok {
			ev.PrevValue, ev.PrevRevision = old.Value, old.Revision
		}
	}
	c.window.push(ev)
	c.rev = ev.Revision
	for w := range c.watchers {
		if ev.Revision <= w.from || !strings.HasPrefix(ev.Key, w.prefix) {
			continue
		}
		if !w.add(ev) {
			delete(c.watchers, w)
			c.slowWatchers.Add(1)
			c.opts.Logger.Info("cacher: closed a watcher that fell behind", "prefix", w.prefix, "revision", ev.Revision)
		}
	}
	c.wakeLocked()
}
