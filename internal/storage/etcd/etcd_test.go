package etcd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/embedded"
)

func TestUnavailableWhenMemberStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	m := startMember(t, dir)
	s := New(newClient(t, m.Endpoints()), Options{})
	defer s.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := s.Get(ctx, "/k")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Get from a stopped member: err = %v, want ErrUnavailable", err)
	}
}

func TestRestartKeepsAcknowledgedKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	m := startMember(t, dir)
	s := New(newClient(t, m.Endpoints()), Options{})
	ctx := testContext(t)
	const n = 100
	acked := map[string]int64{}
	for i := range n {
		key := fmt.Sprintf("/restart/%03d", i)
		rev, err := s.Create(ctx, key, []byte(key))
		if err != nil {
			t.Fatalf("Create %s: %v", key, err)
		}
		acked[key] = rev
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = startMember(t, dir)
	defer m.Close()
	s = New(newClient(t, m.Endpoints()), Options{})
	defer s.Close()
	res, err := s.List(ctx, "/restart/", storage.ListOptions{})
	if err != nil {
		t.Fatalf("List after restart: %v", err)
	}
	if len(res.Items) != n {
		t.Fatalf("after restart %d keys, want %d", len(res.Items), n)
	}
	for _, kv := range res.Items {
		if rev, ok := acked[kv.Key]; !ok || rev != kv.Revision || string(kv.Value) != kv.Key {
			t.Errorf("after restart %s@%d = %q; acknowledged at %d", kv.Key, kv.Revision, kv.Value, rev)
		}
	}
}

func TestMapErr(t *testing.T) {
	for _, tc := range []struct {
		in   error
		want error
	}{
		{rpctypes.ErrCompacted, storage.ErrCompacted},
		{rpctypes.ErrFutureRev, storage.ErrFutureRevision},
		{rpctypes.ErrNoLeader, storage.ErrUnavailable},
		{rpctypes.ErrTimeout, storage.ErrUnavailable},
		{rpctypes.ErrGRPCNoLeader, storage.ErrUnavailable},
		{status.Error(codes.Unavailable, "connection refused"), storage.ErrUnavailable},
		{context.DeadlineExceeded, storage.ErrUnavailable},
		{context.Canceled, context.Canceled},
	} {
		got := mapErr("op", tc.in)
		if !errors.Is(got, tc.want) {
			t.Errorf("mapErr(%v) = %v, want it to wrap %v", tc.in, got, tc.want)
		}
	}
	if err := mapErr("op", context.Canceled); errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("a caller's cancellation maps to ErrUnavailable: %v", err)
	}
}

func startMember(t *testing.T, dir string) *embedded.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: dir})
	if err != nil {
		t.Fatalf("start member: %v", err)
	}
	return m
}

func mustCreate(tb testing.TB, s *Store, key, value string) int64 {
	tb.Helper()
	rev, err := s.Create(context.Background(), key, []byte(value))
	if err != nil {
		tb.Fatalf("Create %s: %v", key, err)
	}
	return rev
}
