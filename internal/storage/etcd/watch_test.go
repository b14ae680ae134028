package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/storagetest"
)

// The watch contract itself is in storagetest; these tests cover the
// Store's progress requester and client lifetime.

func TestProgressRequesterOutlivesCanceledWatch(t *testing.T) {
	s := newStore(t, Options{ProgressInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	events, err := s.Watch(ctx, prefix(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(testContext(t), prefix(t), 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	storagetest.WaitClosed(t, events)
	if !running(s.progress) {
		t.Error("progress requests stopped while a watch is still open")
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
	storagetest.WaitClosed(t, events)
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

func running(p *progressRequester) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stop != nil
}

// TestWatchCurrentLeavesOutReplacedValues: WatchCurrent sends the same
// changes as Watch, without the values they replaced.
func TestWatchCurrentLeavesOutReplacedValues(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	p := prefix(t)
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	created := storagetest.MustCreate(t, s, p+"a", "v1")
	updated, err := s.Update(ctx, p+"a", []byte("v2"), created)
	if err != nil {
		t.Fatal(err)
	}
	_, deleted, err := s.Delete(ctx, p+"a", updated)
	if err != nil {
		t.Fatal(err)
	}
	current, err := s.WatchCurrent(ctx, p, from)
	if err != nil {
		t.Fatal(err)
	}
	full, err := s.Watch(ctx, p, from)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ current, full storage.Event }{
		{storage.Event{Type: storage.Added, Key: p + "a", Value: []byte("v1"), Revision: created},
			storage.Event{Type: storage.Added, Key: p + "a", Value: []byte("v1"), Revision: created}},
		{storage.Event{Type: storage.Modified, Key: p + "a", Value: []byte("v2"), Revision: updated},
			storage.Event{Type: storage.Modified, Key: p + "a", Value: []byte("v2"), PrevValue: []byte("v1"), PrevRevision: created, Revision: updated}},
		{storage.Event{Type: storage.Deleted, Key: p + "a", Revision: deleted},
			storage.Event{Type: storage.Deleted, Key: p + "a", Value: []byte("v2"), Revision: deleted}},
	}
	for i, w := range want {
		if got := storagetest.NextChange(t, current); !storagetest.EqualEvent(got, w.current) {
			t.Errorf("WatchCurrent event %d = %s, want %s", i, storagetest.Describe(got), storagetest.Describe(w.current))
		}
		if got := storagetest.NextChange(t, full); !storagetest.EqualEvent(got, w.full) {
			t.Errorf("Watch event %d = %s, want %s", i, storagetest.Describe(got), storagetest.Describe(w.full))
		}
	}
}
