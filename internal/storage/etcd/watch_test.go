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
