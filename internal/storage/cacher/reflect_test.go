package cacher

import (
	"context"
	"fmt"
	"testing"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/storagetest"
)

// breakableStore is a real store whose watches can be ended on demand with
// an Error event, as etcd ends them on compaction or leader loss.
type breakableStore struct {
	storage.Interface
	breaks chan error
}

func (b *breakableStore) Watch(ctx context.Context, prefix string, from int64) (<-chan storage.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	in, err := b.Interface.Watch(ctx, prefix, from)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan storage.Event)
	go func() {
		defer close(out)
		defer cancel()
		for {
			var ev storage.Event
			select {
			case e, ok := <-in:
				if !ok {
					return
				}
				ev = e
			case err := <-b.breaks:
				ev = storage.Event{Type: storage.Error, Err: err}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Type == storage.Error {
				return
			}
		}
	}()
	return out, nil
}

func TestBrokenWatchResumesWithoutLosingOrRepeating(t *testing.T) {
	p := storagetest.Prefix(t)
	inner := &breakableStore{Interface: newEtcd(t, 0), breaks: make(chan error)}
	c, err := New(inner, Options{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitReady(t, c)
	ctx := storagetest.Context(t)
	events, err := c.Watch(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	r1 := storagetest.MustCreate(t, inner, p+"a", "v")
	if got := storagetest.NextChange(t, events); got.Revision != r1 {
		t.Fatalf("got %s, want the create at %d", storagetest.Describe(got), r1)
	}
	// A transient failure: the cache watches again from where it was, and
	// its watchers notice nothing.
	inner.breaks <- fmt.Errorf("test: %w", storage.ErrUnavailable)
	r2 := storagetest.MustCreate(t, inner, p+"b", "v")
	r3 := storagetest.MustCreate(t, inner, p+"c", "v")
	for _, want := range []int64{r2, r3} {
		if got := storagetest.NextChange(t, events); got.Revision != want {
			t.Fatalf("after a broken watch got %s, want the create at %d", storagetest.Describe(got), want)
		}
	}
}

func TestCompactedWatchRelists(t *testing.T) {
	p := storagetest.Prefix(t)
	inner := &breakableStore{Interface: newEtcd(t, 0), breaks: make(chan error)}
	c, err := New(inner, Options{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitReady(t, c)
	ctx := storagetest.Context(t)
	storagetest.MustCreate(t, inner, p+"a", "v")
	events, err := c.Watch(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	inner.breaks <- fmt.Errorf("test: %w", storage.ErrCompacted)
	// The cache may have missed events: its watchers are closed (their
	// clients watch again or list again) ...
	for ev := range events {
		if ev.Type == storage.Error {
			t.Fatalf("watcher ended with %v, want a plain close", ev.Err)
		}
	}
	// ... and it lists again, then serves lists from memory again.
	storagetest.MustCreate(t, inner, p+"b", "v")
	waitReady(t, c)
	storagetest.WaitFor(t, func() bool {
		before := c.cachedLists.Load()
		res, err := c.List(ctx, p, storage.ListOptions{})
		return err == nil && len(res.Items) == 2 && c.cachedLists.Load() == before+1
	}, "a cached list with both keys")
}

func TestRing(t *testing.T) {
	r := newRing(3)
	r.reset(10)
	collect := func(from int64) []int64 {
		var out []int64
		r.each(from, func(ev storage.Event) { out = append(out, ev.Revision) })
		return out
	}
	for _, rev := range []int64{11, 12, 14} {
		r.push(storage.Event{Revision: rev})
	}
	if got := fmt.Sprint(collect(10), collect(12), collect(14), r.start); got != "[11 12 14] [14] [] 10" {
		t.Fatalf("full ring: %s", got)
	}
	r.push(storage.Event{Revision: 15})
	r.push(storage.Event{Revision: 17})
	if got := fmt.Sprint(collect(12), collect(13), collect(0), r.start); got != "[14 15 17] [14 15 17] [14 15 17] 12" {
		t.Fatalf("after wrapping: %s", got)
	}
	r.reset(20)
	if got := fmt.Sprint(collect(0), r.start); got != "[] 20" {
		t.Fatalf("after reset: %s", got)
	}
	r.push(storage.Event{Revision: 21})
	if got := fmt.Sprint(collect(0), r.start); got != "[21] 20" {
		t.Fatalf("after reset and a push: %s", got)
	}
}

// TestRingGrows checks that a window allocates only for the events it
// has seen, and no more than its size.
func TestRingGrows(t *testing.T) {
	r := newRing(100)
	if cap(r.buf) != 0 {
		t.Fatalf("a new window holds %d slots, want none", cap(r.buf))
	}
	for rev := int64(1); rev <= 250; rev++ {
		r.push(storage.Event{Revision: rev})
		if want := min(rev, 100); int64(len(r.buf)) != want || cap(r.buf) > 100 {
			t.Fatalf("after %d events: %d held in %d slots, want %d in at most 100", rev, len(r.buf), cap(r.buf), want)
		}
	}
	var got []int64
	r.each(0, func(ev storage.Event) { got = append(got, ev.Revision) })
	if len(got) != 100 || got[0] != 151 || got[99] != 250 || r.start != 150 {
		t.Fatalf("window %v... (%d events), start %d; want 151..250, start 150", got[:3], len(got), r.start)
	}
}
