package cacher

import (
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/storagetest"
)

// waitCached waits until m's copy of key is at rev (0: until m lacks key).
func waitCached(t *testing.T, m *Multi, key string, rev int64) storage.KeyValue {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		kv, ok := m.GetCached(key)
		if (rev == 0 && !ok) || (ok && kv.Revision == rev) {
			return kv
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %s at %d (present %v), want revision %d", key, kv.Revision, ok, rev)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGetCachedFollowsWritesAndIgnoresOtherPrefixes(t *testing.T) {
	p := storagetest.Prefix(t)
	inner := newEtcd(t, 0)
	m, err := NewMulti(inner, Options{}, p+"cached/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	waitReady(t, m.Cacher(p+"cached/"))
	ctx := storagetest.Context(t)
	key := p + "cached/a"
	if _, ok := m.GetCached(key); ok {
		t.Fatalf("GetCached(%s) before any write found a value", key)
	}
	rev, err := m.Create(ctx, key, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if kv := waitCached(t, m, key, rev); string(kv.Value) != "one" || kv.Key != key {
		t.Fatalf("cached %s = %q, want %q", kv.Key, kv.Value, "one")
	}
	rev2, err := m.Update(ctx, key, []byte("two"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if kv := waitCached(t, m, key, rev2); string(kv.Value) != "two" {
		t.Fatalf("cached value after update = %q, want %q", kv.Value, "two")
	}
	if _, _, err := m.Delete(ctx, key, rev2); err != nil {
		t.Fatal(err)
	}
	waitCached(t, m, key, 0)

	// A key no cacher covers is never cached, though it exists.
	other := p + "uncached/b"
	storagetest.MustCreate(t, inner, other, "x")
	if _, ok := m.GetCached(other); ok {
		t.Fatalf("GetCached(%s) outside every cached prefix found a value", other)
	}
}
