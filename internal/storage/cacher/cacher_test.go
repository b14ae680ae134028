package cacher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/storagetest"
)

func TestListFromCacheEqualsEtcd(t *testing.T) {
	p := storagetest.Prefix(t)
	c, inner := newCacher(t, Options{Prefix: p})
	ctx := storagetest.Context(t)
	for i := range 30 {
		storagetest.MustCreate(t, inner, fmt.Sprintf("%sk%02d", p, i), fmt.Sprint(i))
	}
	// The latest write is outside the prefix: the cache learns that it is
	// caught up from a progress request, not from an event of its own.
	storagetest.MustCreate(t, inner, p[:len(p)-1]+"-outside", "x")

	for _, opts := range []storage.ListOptions{{}, {Limit: 7}, {StartKey: p + "k10", Limit: 5}, {StartKey: p + "k29\x00"}} {
		before := c.cachedLists.Load()
		got, err := c.List(ctx, p, opts)
		if err != nil {
			t.Fatalf("List(%+v): %v", opts, err)
		}
		if c.cachedLists.Load() != before+1 {
			t.Fatalf("List(%+v) was not served from the cache", opts)
		}
		want, err := inner.List(ctx, p, storage.ListOptions{Revision: got.Revision, Limit: opts.Limit, StartKey: opts.StartKey})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got.Items, want.Items, storagetest.EqualKV) || got.More != want.More || got.Remaining != want.Remaining {
			t.Fatalf("List(%+v) from the cache = %d items More=%v Remaining=%d; etcd at %d has %d items More=%v Remaining=%d",
				opts, len(got.Items), got.More, got.Remaining, got.Revision, len(want.Items), want.More, want.Remaining)
		}
		cur, err := inner.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision != cur {
			t.Fatalf("cached List at revision %d, etcd is at %d: a stale read", got.Revision, cur)
		}
	}
}

func TestPagesComeFromTheFirstPagesSnapshot(t *testing.T) {
	p := storagetest.Prefix(t)
	c, inner := newCacher(t, Options{Prefix: p})
	ctx := storagetest.Context(t)
	for i := range 10 {
		storagetest.MustCreate(t, inner, fmt.Sprintf("%sk%02d", p, i), "v")
	}
	first, err := c.List(ctx, p, storage.ListOptions{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the first page must not show in the later ones.
	storagetest.MustCreate(t, inner, p+"k00a", "new")
	if _, _, err := inner.Delete(ctx, p+"k09", 0); err != nil {
		t.Fatal(err)
	}
	got := first.Items
	start := first.Items[len(first.Items)-1].Key + "\x00"
	before := c.innerLists.Load()
	for more := first.More; more; {
		page, err := c.List(ctx, p, storage.ListOptions{Revision: first.Revision, Limit: 4, StartKey: start})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Items...)
		more = page.More
		start = page.Items[len(page.Items)-1].Key + "\x00"
	}
	if n := c.innerLists.Load() - before; n != 0 {
		t.Errorf("%d later pages went to etcd, want all from the snapshot", n)
	}
	want, err := inner.List(ctx, p, storage.ListOptions{Revision: first.Revision})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want.Items, storagetest.EqualKV) {
		t.Fatalf("paged list %v differs from etcd at %d: %v", keys(got), first.Revision, keys(want.Items))
	}
}

// TestWatchersSeeWhatEtcdWatchesSee starts watches at random revisions,
// from the cache and from etcd, while writers create, update and delete
// keys; every cached watch must deliver exactly etcd's events, in order.
func TestWatchersSeeWhatEtcdWatchesSee(t *testing.T) {
	p := storagetest.Prefix(t)
	c, inner := newCacher(t, Options{Prefix: p, EventWindow: 100000, WatcherQueue: 100000})
	c.mu.Lock()
	windowStart := c.window.start
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(storagetest.Context(t))
	defer cancel()

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("%s%d/k%d", p, rng.IntN(3), rng.IntN(20))
				kv, err := inner.Get(ctx, key)
				switch {
				case errors.Is(err, storage.ErrNotFound):
					_, _ = inner.Create(ctx, key, []byte("c"))
				case err != nil:
					return
				case rng.IntN(3) == 0:
					_, _, _ = inner.Delete(ctx, key, kv.Revision)
				default:
					_, _ = inner.Update(ctx, key, fmt.Appendf(nil, "u%d", rng.IntN(100)), kv.Revision)
				}
			}
		})
	}

	type pair struct {
		prefix      string
		from        int64
		cached, raw <-chan storage.Event
	}
	var pairs []pair
	inWindow := int64(0)
	for i := range 40 {
		sub := p
		if i%2 == 1 {
			sub = fmt.Sprintf("%s%d/", p, i%3)
		}
		cur, err := inner.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		from := max(cur-int64(i%5)*3, 1)
		cached, err := c.Watch(ctx, sub, from)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := inner.Watch(ctx, sub, from)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, pair{sub, from, cached, raw})
		if from >= windowStart {
			inWindow++
		}
		time.Sleep(time.Millisecond) // spread the start revisions over the writes
	}
	close(stop)
	writers.Wait()
	// A last change in each subtree marks the end of every watch.
	end := map[string]int64{}
	for i := range 3 {
		sub := fmt.Sprintf("%s%d/", p, i)
		end[sub] = storagetest.MustCreate(t, inner, sub+"end", "v")
		end[p] = end[sub]
	}
	if c.cachedWatches.Load() != inWindow || inWindow < int64(len(pairs))/2 {
		t.Fatalf("%d of %d watches were served by the cache, want the %d from revisions in its window", c.cachedWatches.Load(), len(pairs), inWindow)
	}
	compared := 0
	for _, pr := range pairs {
		want := changesUntil(t, pr.raw, end[pr.prefix])
		compared += len(want)
		got := changesUntil(t, pr.cached, end[pr.prefix])
		if len(got) != len(want) {
			t.Fatalf("watch of %s from %d: %d events from the cache, %d from etcd", pr.prefix, pr.from, len(got), len(want))
		}
		for i := range want {
			if !storagetest.EqualEvent(got[i], want[i]) {
				t.Fatalf("watch of %s from %d: event %d = %s, etcd's %s", pr.prefix, pr.from, i, storagetest.Describe(got[i]), storagetest.Describe(want[i]))
			}
		}
	}
	t.Logf("%d watches, %d from the window, %d events compared", len(pairs), inWindow, compared)
	if compared < 10*len(pairs) {
		t.Fatalf("only %d events compared over %d watches: the writers did too little", compared, len(pairs))
	}
}

// changesUntil collects the changes of a watch until one at or after end,
// or a Progress that says it is there.
func changesUntil(t *testing.T, events <-chan storage.Event, end int64) []storage.Event {
	t.Helper()
	var out []storage.Event
	var last int64
	for last < end {
		ev := storagetest.NextEvent(t, events)
		if ev.Revision < last {
			t.Fatalf("revision went back from %d to %d: %s", last, ev.Revision, storagetest.Describe(ev))
		}
		switch ev.Type {
		case storage.Error:
			t.Fatalf("watch ended: %v", ev.Err)
		case storage.Progress:
		default:
			out = append(out, ev)
		}
		last = ev.Revision
	}
	return out
}

func TestSlowWatcherIsClosedOthersKeepUp(t *testing.T) {
	p := storagetest.Prefix(t)
	c, inner := newCacher(t, Options{Prefix: p, WatcherQueue: 10})
	ctx := storagetest.Context(t)
	from, err := inner.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := c.Watch(ctx, p, from)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := c.Watch(ctx, p, from)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var revs []int64
	for i := range n {
		revs = append(revs, storagetest.MustCreate(t, inner, fmt.Sprintf("%sk%02d", p, i), "v"))
		if got := storagetest.NextChange(t, fast); got.Revision != revs[i] {
			t.Fatalf("fast watcher got %s, want the create at %d", storagetest.Describe(got), revs[i])
		}
	}
	// The slow watcher gets what was queued for it, in order, then its
	// channel closes without an Error.
	var last int64 = from
	for ev := range slow {
		if ev.Type == storage.Error {
			t.Fatalf("slow watcher ended with an Error event: %v", ev.Err)
		}
		if ev.Type != storage.Progress && ev.Revision <= last {
			t.Fatalf("slow watcher: %s after revision %d", storagetest.Describe(ev), last)
		}
		last = ev.Revision
	}
	if last >= revs[n-1] {
		t.Fatalf("slow watcher got everything (up to %d): it was not closed", last)
	}
	if st := c.Stats(); st.SlowWatchersClosed != 1 || st.Watchers != 1 {
		t.Fatalf("Stats after closing the slow watcher: %+v, want 1 closed and 1 left", st)
	}
	// Watching again from the last revision seen replays the rest.
	again, err := c.Watch(ctx, p, last)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(revs, last) + 1
	for ; i < n; i++ {
		if got := storagetest.NextChange(t, again); got.Revision != revs[i] {
			t.Fatalf("resumed watcher got %s, want the create at %d", storagetest.Describe(got), revs[i])
		}
	}
}

func TestWatchOlderThanWindowGoesToEtcd(t *testing.T) {
	p := storagetest.Prefix(t)
	c, inner := newCacher(t, Options{Prefix: p, EventWindow: 5})
	ctx := storagetest.Context(t)
	var revs []int64
	for i := range 20 {
		revs = append(revs, storagetest.MustCreate(t, inner, fmt.Sprintf("%sk%02d", p, i), "v"))
	}
	storagetest.WaitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.rev >= revs[19]
	}, "the cache to see every write")

	for _, tc := range []struct {
		from       int64
		fromWindow bool
	}{
		// The window holds revs[15:]: complete after revs[14].
		{revs[0] - 1, false},
		{revs[13], false},
		{revs[14], true},
		{revs[16], true},
	} {
		cached, inner0 := c.cachedWatches.Load(), c.innerWatches.Load()
		events, err := c.Watch(ctx, p, tc.from)
		if err != nil {
			t.Fatal(err)
		}
		for _, rev := range revs {
			if rev <= tc.from {
				continue
			}
			if got := storagetest.NextChange(t, events); got.Revision != rev {
				t.Fatalf("watch from %d got %s, want the create at %d", tc.from, storagetest.Describe(got), rev)
			}
		}
		fromWindow := c.cachedWatches.Load() == cached+1 && c.innerWatches.Load() == inner0
		if fromWindow != tc.fromWindow {
			t.Errorf("watch from %d: served from the window = %v, want %v", tc.from, fromWindow, tc.fromWindow)
		}
	}
}

func TestCloseEndsWatchersWithUnavailable(t *testing.T) {
	p := storagetest.Prefix(t)
	inner := newEtcd(t, 0)
	c, err := New(inner, Options{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	events, err := c.Watch(storagetest.Context(t), p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ev := storagetest.NextEvent(t, events)
	if ev.Type != storage.Error || !errors.Is(ev.Err, storage.ErrUnavailable) {
		t.Fatalf("after Close: %s, want an Error wrapping ErrUnavailable", storagetest.Describe(ev))
	}
	storagetest.WaitClosed(t, events)
	// The inner store is still usable.
	if _, err := inner.Revision(storagetest.Context(t)); err != nil {
		t.Fatalf("inner store after the cacher's Close: %v", err)
	}
}

func TestNewRejectsBadPrefix(t *testing.T) {
	inner := newEtcd(t, 0)
	for _, p := range []string{"", "/registry/pods"} {
		if _, err := New(inner, Options{Prefix: p}); err == nil {
			t.Errorf("New with prefix %q succeeded", p)
		}
	}
}

func TestMultiRoutesByLongestPrefix(t *testing.T) {
	p := storagetest.Prefix(t)
	m, err := NewMulti(newEtcd(t, 0), Options{}, p, p+"pods/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, tc := range []struct{ prefix, want string }{
		{p + "pods/ns/", p + "pods/"},
		{p + "pods/", p + "pods/"},
		{p + "nodes/", p},
		{"/elsewhere/", ""},
	} {
		got := ""
		if c := m.Cacher(tc.prefix); c != nil {
			got = c.opts.Prefix
		}
		if got != tc.want {
			t.Errorf("Cacher(%q) serves %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func keys(kvs []storage.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

// TestListNotHeldBackByOtherWatches: etcd holds back progress on a stream
// while a watch on it waits for a future revision (one opened "from now"),
// so the cache's own watch has a stream of its own; otherwise the lists
// below would wait for FreshnessTimeout and go to etcd.
func TestListNotHeldBackByOtherWatches(t *testing.T) {
	p := storagetest.Prefix(t)
	c, inner := newCacher(t, Options{Prefix: p + "in/"})
	ctx := storagetest.Context(t)
	for i := range 5 {
		storagetest.MustCreate(t, inner, fmt.Sprintf("%sout/%d", p, i), "v")
		wctx, cancel := context.WithCancel(ctx)
		if _, err := inner.Watch(wctx, p+"other/", 0); err != nil {
			t.Fatal(err)
		}
		before := c.Stats()
		if _, err := c.List(ctx, p+"in/", storage.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if after := c.Stats(); after.CachedLists != before.CachedLists+1 {
			t.Fatalf("list %d went to etcd: the cache did not learn it was up to date (%+v)", i, after)
		}
	}
}
