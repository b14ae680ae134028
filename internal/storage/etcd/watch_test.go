package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
)

func TestWatchFromRevisionDeliversEachChangeOnceInOrder(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	p := prefix(t)
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Changes made before the watch starts, plus noise outside the prefix.
	created := mustCreate(t, s, p+"a", "v1")
	mustCreate(t, s, p[:len(p)-1]+"-outside", "x")
	updated, err := s.Update(ctx, p+"a", []byte("v2"), created)
	if err != nil {
		t.Fatal(err)
	}
	_, deletedAt, err := s.Delete(ctx, p+"a", updated)
	if err != nil {
		t.Fatal(err)
	}

	events, err := s.Watch(ctx, p, from)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	want := []storage.Event{
		{Type: storage.Added, Key: p + "a", Value: []byte("v1"), Revision: created},
		{Type: storage.Modified, Key: p + "a", Value: []byte("v2"), PrevValue: []byte("v1"), Revision: updated},
		{Type: storage.Deleted, Key: p + "a", Value: []byte("v2"), Revision: deletedAt},
	}
	for i, w := range want {
		if got := nextChange(t, events); !equalEvent(got, w) {
			t.Fatalf("event %d = %s, want %s", i, describe(got), describe(w))
		}
	}

	// A change after the watch started comes next: nothing was repeated.
	later := mustCreate(t, s, p+"b", "v3")
	w := storage.Event{Type: storage.Added, Key: p + "b", Value: []byte("v3"), Revision: later}
	if got := nextChange(t, events); !equalEvent(got, w) {
		t.Fatalf("event after the replay = %s, want %s", describe(got), describe(w))
	}
}

func TestWatchFromNowSkipsHistory(t *testing.T) {
	s := newStore(t, Options{ProgressInterval: 50 * time.Millisecond})
	ctx := testContext(t)
	p := prefix(t)
	mustCreate(t, s, p+"old", "v")

	now, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.Watch(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Progress starts at the revision the watch began at, and once it arrives
	// the watch is established: later writes are seen, earlier ones never are.
	waitProgress(t, events, now)
	rev := mustCreate(t, s, p+"new", "v")
	if got := nextChange(t, events); got.Key != p+"new" || got.Revision != rev {
		t.Fatalf("first change = %s, want the create of %snew at %d", describe(got), p, rev)
	}
}

func TestIdleWatchGetsProgress(t *testing.T) {
	s := newStore(t, Options{ProgressInterval: 100 * time.Millisecond})
	ctx := testContext(t)
	p := prefix(t)
	rev := mustCreate(t, s, p+"k", "v")

	events, err := s.Watch(ctx, p, rev)
	if err != nil {
		t.Fatal(err)
	}
	ev := waitProgress(t, events, rev)
	if ev.Key != "" || ev.Value != nil {
		t.Errorf("Progress event carries a key or value: %s", describe(ev))
	}
	// Progress keeps coming while idle, never going backwards.
	waitProgress(t, events, ev.Revision)
}

func TestProgressAdvancesPastWritesElsewhere(t *testing.T) {
	s := newStore(t, Options{ProgressInterval: 100 * time.Millisecond})
	ctx := testContext(t)
	p := prefix(t)
	from := mustCreate(t, s, p+"watched/k", "v")

	events, err := s.Watch(ctx, p+"watched/", from)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := mustCreate(t, s, p+"other/k", "v")
	// The watch sees no change, but etcd's progress tells it that it is
	// caught up with the write outside its prefix.
	for {
		ev := waitProgress(t, events, from)
		if ev.Revision >= elsewhere {
			break
		}
	}
}

func TestWatchClosesOnCancel(t *testing.T) {
	s := newStore(t, Options{ProgressInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	events, err := s.Watch(ctx, prefix(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Watch(testContext(t), prefix(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitClosed(t, events)
	if !running(s.progress) {
		t.Error("progress requests stopped while a watch is still open")
	}
	// The other watch still works.
	rev := mustCreate(t, s, prefix(t)+"k", "v")
	if got := nextChange(t, other); got.Revision != rev {
		t.Fatalf("surviving watch got %s, want the create at %d", describe(got), rev)
	}
	if _, err := s.Watch(ctx, prefix(t), 0); err == nil {
		t.Error("Watch with a canceled context succeeded")
	}
}

func TestProgressRequesterStopsWithLastWatch(t *testing.T) {
	s := newStore(t, Options{ProgressInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	events, err := s.Watch(ctx, prefix(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !running(s.progress) {
		t.Fatal("no progress requests while a watch is open")
	}
	cancel()
	waitClosed(t, events)
	if running(s.progress) {
		t.Fatal("progress requests still running after the last watch closed")
	}
}

func TestWatchEndsWhenStoreCloses(t *testing.T) {
	s := New(newClient(t, member.Endpoints()), Options{})
	events, err := s.Watch(testContext(t), prefix(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev.Type == storage.Error && !errors.Is(ev.Err, storage.ErrUnavailable) {
			t.Errorf("Error event %v does not wrap ErrUnavailable", ev.Err)
		}
	}
}

func TestWatchRejectsNegativeRevision(t *testing.T) {
	s := newStore(t, Options{})
	if _, err := s.Watch(testContext(t), prefix(t), -1); err == nil {
		t.Fatal("Watch from revision -1 succeeded")
	}
}

func running(p *progressRequester) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stop != nil
}

// nextEvent returns the next event, failing the test after a deadline.
func nextEvent(t *testing.T, events <-chan storage.Event) storage.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a watch event")
	}
	panic("unreachable")
}

// nextChange returns the next event that is not a Progress event.
func nextChange(t *testing.T, events <-chan storage.Event) storage.Event {
	t.Helper()
	for {
		if ev := nextEvent(t, events); ev.Type != storage.Progress {
			return ev
		}
	}
}

// waitProgress returns the next Progress event, failing on any other event
// or on a Progress below minRevision.
func waitProgress(t *testing.T, events <-chan storage.Event, minRevision int64) storage.Event {
	t.Helper()
	ev := nextEvent(t, events)
	if ev.Type != storage.Progress || ev.Revision < minRevision {
		t.Fatalf("got %s, want Progress at revision >= %d", describe(ev), minRevision)
	}
	return ev
}

// waitClosed drains events until the channel closes.
func waitClosed(t *testing.T, events <-chan storage.Event) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel did not close")
		}
	}
}

func equalEvent(a, b storage.Event) bool {
	return a.Type == b.Type && a.Key == b.Key && a.Revision == b.Revision &&
		string(a.Value) == string(b.Value) && string(a.PrevValue) == string(b.PrevValue) &&
		(a.PrevValue == nil) == (b.PrevValue == nil)
}

func describe(e storage.Event) string {
	names := map[storage.EventType]string{
		storage.Added: "Added", storage.Modified: "Modified", storage.Deleted: "Deleted",
		storage.Progress: "Progress", storage.Error: "Error",
	}
	if e.Type == storage.Error {
		return "Error(" + e.Err.Error() + ")"
	}
	return fmt.Sprintf("%s{%s %q prev=%q @%d}", names[e.Type], e.Key, e.Value, e.PrevValue, e.Revision)
}
