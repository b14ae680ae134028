package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
)

// testKeysExpire: a key written with a TTL is deleted by the store after it,
// and a watch sees it Deleted; a key written without one stays.
func testKeysExpire(t *testing.T, s storage.Interface, p string) {
	e := expirer(t, s)
	ctx := Context(t)
	events, err := s.Watch(ctx, p, 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	start := time.Now()
	rev, err := e.CreateWithTTL(ctx, p+"expiring", []byte("v1"), 2*time.Second)
	if err != nil {
		t.Fatalf("CreateWithTTL: %v", err)
	}
	kept := MustCreate(t, s, p+"kept", "k")
	if ev := NextChange(t, events); ev.Type != storage.Added || ev.Key != p+"expiring" || ev.Revision != rev {
		t.Fatalf("first event %s, want the expiring key Added at %d", Describe(ev), rev)
	}
	if ev := NextChange(t, events); ev.Type != storage.Added || ev.Key != p+"kept" || ev.Revision != kept {
		t.Fatalf("second event %s, want the kept key Added at %d", Describe(ev), kept)
	}
	ev := NextChange(t, events)
	if ev.Type != storage.Deleted || ev.Key != p+"expiring" || ev.Revision <= kept {
		t.Fatalf("third event %s, want the expiring key Deleted after revision %d", Describe(ev), kept)
	}
	t.Logf("the key expired %v after its write (TTL 2s)", time.Since(start).Round(10*time.Millisecond))
	if _, err := s.Get(ctx, p+"expiring"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of the expired key: err = %v, want ErrNotFound", err)
	}
	if kv, err := s.Get(ctx, p+"kept"); err != nil || string(kv.Value) != "k" {
		t.Fatalf("Get of the key written without a TTL = %+v, %v; want it kept", kv, err)
	}
}

// testUpdateRefreshesTTL: an update with a TTL sets the key's expiry afresh
// from the update, and a plain update makes the key permanent.
func testUpdateRefreshesTTL(t *testing.T, s storage.Interface, p string) {
	e := expirer(t, s)
	ctx := Context(t)
	events, err := s.Watch(ctx, p, 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// refreshed and permanent would expire 2 s from now; marker 3 s.
	refreshed, err := e.CreateWithTTL(ctx, p+"refreshed", []byte("v1"), 2*time.Second)
	if err != nil {
		t.Fatalf("CreateWithTTL: %v", err)
	}
	permanent, err := e.CreateWithTTL(ctx, p+"permanent", []byte("v1"), 2*time.Second)
	if err != nil {
		t.Fatalf("CreateWithTTL: %v", err)
	}
	if refreshed, err = e.UpdateWithTTL(ctx, p+"refreshed", []byte("v2"), refreshed, 4*time.Second); err != nil {
		t.Fatalf("UpdateWithTTL: %v", err)
	}
	if _, err := e.UpdateWithTTL(ctx, p+"refreshed", []byte("stale"), refreshed-1, 4*time.Second); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("UpdateWithTTL from a stale revision: err = %v, want ErrConflict", err)
	}
	if _, err := s.Update(ctx, p+"permanent", []byte("v2"), permanent); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if _, err := e.CreateWithTTL(ctx, p+"marker", []byte("m"), 3*time.Second); err != nil {
		t.Fatalf("CreateWithTTL: %v", err)
	}
	if _, err := e.CreateWithTTL(ctx, p+"marker", []byte("again"), 3*time.Second); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second CreateWithTTL: err = %v, want ErrExists", err)
	}
	// The marker goes first, then the refreshed key; the permanent one stays.
	var deleted []string
	for len(deleted) < 2 {
		if ev := NextChange(t, events); ev.Type == storage.Deleted {
			deleted = append(deleted, ev.Key)
		}
	}
	if deleted[0] != p+"marker" || deleted[1] != p+"refreshed" {
		t.Fatalf("deleted %q, want the marker (3 s TTL) then the key updated with a 4 s TTL", deleted)
	}
	if kv, err := s.Get(ctx, p+"permanent"); err != nil || string(kv.Value) != "v2" {
		t.Fatalf("Get of the key updated without a TTL = %+v, %v; want it kept", kv, err)
	}
}

func expirer(t *testing.T, s storage.Interface) storage.Expirer {
	t.Helper()
	e, ok := s.(storage.Expirer)
	if !ok {
		t.Skipf("%T does not implement storage.Expirer", s)
	}
	return e
}
