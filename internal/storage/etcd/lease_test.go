package etcd

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestLeaseReuse: writes with one TTL share a lease while it expires within
// the reuse window (5% of a 60 s TTL: 3 s); a TTL with no window (2 s) gets
// a lease per write; a plain Update drops the key's lease; a lease etcd no
// longer knows is replaced. Over gRPC and in process.
func TestLeaseReuse(t *testing.T) {
	t.Run("grpc", func(t *testing.T) { testLeaseReuse(t, newStore(t, Options{})) })
	t.Run("inprocess", func(t *testing.T) { testLeaseReuse(t, newInProcessStore(t, Options{})) })
}

func testLeaseReuse(t *testing.T, s *Store) {
	ctx := testContext(t)
	p := prefix(t)
	leaseOf := func(key string) clientv3.LeaseID {
		t.Helper()
		resp, err := s.client.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("raw Get %s = %v, %v", key, resp, err)
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}

	revA, err := s.CreateWithTTL(ctx, p+"a", []byte("a"), time.Minute)
	if err != nil {
		t.Fatalf("CreateWithTTL a: %v", err)
	}
	if _, err := s.CreateWithTTL(ctx, p+"b", []byte("b"), time.Minute); err != nil {
		t.Fatalf("CreateWithTTL b: %v", err)
	}
	if _, err := s.UpdateWithTTL(ctx, p+"a", []byte("a2"), revA, time.Minute); err != nil {
		t.Fatalf("UpdateWithTTL a: %v", err)
	}
	shared := leaseOf(p + "a")
	if shared == 0 || leaseOf(p+"b") != shared {
		t.Fatalf("leases of a and b = %x, %x; want one shared lease", shared, leaseOf(p+"b"))
	}
	ttl, err := s.client.TimeToLive(ctx, shared)
	if err != nil {
		t.Fatalf("TimeToLive: %v", err)
	}
	if ttl.GrantedTTL != 63 {
		t.Fatalf("lease granted for %d s, want ttl + reuse = 63 s", ttl.GrantedTTL)
	}

	if _, err := s.CreateWithTTL(ctx, p+"short1", []byte("x"), 2*time.Second); err != nil {
		t.Fatalf("CreateWithTTL short1: %v", err)
	}
	if _, err := s.CreateWithTTL(ctx, p+"short2", []byte("x"), 2*time.Second); err != nil {
		t.Fatalf("CreateWithTTL short2: %v", err)
	}
	if l1, l2 := leaseOf(p+"short1"), leaseOf(p+"short2"); l1 == 0 || l1 == l2 || l1 == shared {
		t.Fatalf("leases of two 2 s keys = %x, %x (the minute's %x); want two new ones", l1, l2, shared)
	}

	kv, err := s.Get(ctx, p+"b")
	if err != nil {
		t.Fatalf("Get b: %v", err)
	}
	if _, err := s.Update(ctx, p+"b", []byte("b2"), kv.Revision); err != nil {
		t.Fatalf("Update b: %v", err)
	}
	if l := leaseOf(p + "b"); l != 0 {
		t.Fatalf("b's lease after a plain Update = %x, want none", l)
	}

	if _, err := s.client.Revoke(ctx, shared); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := s.CreateWithTTL(ctx, p+"c", []byte("c"), time.Minute); err != nil {
		t.Fatalf("CreateWithTTL after the shared lease was revoked: %v", err)
	}
	if l := leaseOf(p + "c"); l == 0 || l == shared {
		t.Fatalf("c's lease = %x, want a new one (not the revoked %x)", l, shared)
	}
	if _, err := s.Get(ctx, p+"a"); err == nil {
		t.Fatal("a outlived its revoked lease")
	}
}

// TestLeaseMaxAttached: a lease serves at most leaseMaxAttached writes.
func TestLeaseMaxAttached(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	first, err := s.leases.get(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < leaseMaxAttached; i++ {
		if id, err := s.leases.get(ctx, 60); err != nil || id != first {
			t.Fatalf("write %d got lease %x, %v; want the first one %x", i+1, id, err, first)
		}
	}
	if id, err := s.leases.get(ctx, 60); err != nil || id == first || id == 0 {
		t.Fatalf("write %d got lease %x, %v; want a new one", leaseMaxAttached+1, id, err)
	}
}

func TestTTLSeconds(t *testing.T) {
	for _, tc := range []struct {
		ttl        time.Duration
		secs, then int64
	}{
		{time.Millisecond, 1, 0}, {2 * time.Second, 2, 0}, {2500 * time.Millisecond, 3, 0},
		{time.Minute, 60, 3}, {time.Hour, 3600, 60}, {24 * time.Hour, 86400, 60},
	} {
		if got := ttlSeconds(tc.ttl); got != tc.secs {
			t.Errorf("ttlSeconds(%v) = %d, want %d", tc.ttl, got, tc.secs)
		}
		if got := reuseSeconds(tc.secs); got != tc.then {
			t.Errorf("reuseSeconds(%d) = %d, want %d", tc.secs, got, tc.then)
		}
	}
}

// BenchmarkCreateWithTTL is BenchmarkCreate with events' default TTL: a
// lease grant every 1000 writes.
func BenchmarkCreateWithTTL(b *testing.B) {
	s := newStore(b, Options{})
	ctx := context.Background()
	p := prefix(b)
	i := 0
	for b.Loop() {
		if _, err := s.CreateWithTTL(ctx, fmt.Sprintf("%s%08d", p, i), value1K, time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
