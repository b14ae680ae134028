package etcd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/embedded"
)

func TestCRUD(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	key := prefix(t) + "a"

	if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of a missing key: err = %v, want ErrNotFound", err)
	}
	rev1, err := s.Create(ctx, key, []byte("v1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if cur, err := s.Revision(ctx); err != nil || cur != rev1 {
		t.Fatalf("Revision() = %d, %v; want the create's revision %d", cur, err, rev1)
	}
	kv, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := (storage.KeyValue{Key: key, Value: []byte("v1"), Revision: rev1}); !equalKV(kv, want) {
		t.Fatalf("Get = %+v, want %+v", kv, want)
	}
	if _, err := s.Create(ctx, key, []byte("again")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create: err = %v, want ErrExists", err)
	}

	rev2, err := s.Update(ctx, key, []byte("v2"), rev1)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if rev2 <= rev1 {
		t.Fatalf("Update revision %d not after create revision %d", rev2, rev1)
	}
	if _, err := s.Update(ctx, key, []byte("stale"), rev1); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Update from a stale revision: err = %v, want ErrConflict", err)
	}
	if _, err := s.Update(ctx, prefix(t)+"missing", []byte("x"), rev1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Update of a missing key: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, prefix(t)+"missing", []byte("x"), 0); err == nil {
		t.Fatal("Update with expected revision 0 succeeded; it must not create keys")
	}
	if _, err := s.Get(ctx, prefix(t)+"missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a failed Update created its key: Get err = %v", err)
	}

	if _, _, err := s.Delete(ctx, key, rev1); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Delete from a stale revision: err = %v, want ErrConflict", err)
	}
	deleted, delRev, err := s.Delete(ctx, key, rev2)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if want := (storage.KeyValue{Key: key, Value: []byte("v2"), Revision: rev2}); !equalKV(deleted, want) {
		t.Fatalf("Delete returned %+v, want %+v", deleted, want)
	}
	if delRev <= rev2 {
		t.Fatalf("deletion revision %d not after last write %d", delRev, rev2)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Delete(ctx, key, rev2); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("conditional Delete of a missing key: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Delete(ctx, key, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unconditional Delete of a missing key: err = %v, want ErrNotFound", err)
	}

	// Unconditional delete of an existing key.
	rev3, err := s.Create(ctx, key, []byte("v3"))
	if err != nil {
		t.Fatalf("re-Create after Delete: %v", err)
	}
	deleted, delRev, err = s.Delete(ctx, key, 0)
	if err != nil {
		t.Fatalf("unconditional Delete: %v", err)
	}
	if want := (storage.KeyValue{Key: key, Value: []byte("v3"), Revision: rev3}); !equalKV(deleted, want) || delRev <= rev3 {
		t.Fatalf("unconditional Delete = %+v at %d, want %+v after %d", deleted, delRev, want, rev3)
	}
}

func TestCount(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	p := prefix(t)
	for i := range 7 {
		mustCreate(t, s, fmt.Sprintf("%s%d", p, i), "v")
	}
	// A sibling key sharing the prefix's text but not its subtree.
	mustCreate(t, s, p[:len(p)-1]+"x", "v")
	n, err := s.Count(ctx, p)
	if err != nil || n != 7 {
		t.Fatalf("Count = %d, %v; want 7", n, err)
	}
}

func TestConcurrentUpdatesFromOneRevision(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	key := prefix(t) + "contended"
	rev := mustCreate(t, s, key, "0")

	const writers = 20
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		wins, conflicts   int
		other             []error
		winner, winnerRev = "", int64(0)
	)
	for i := range writers {
		wg.Go(func() {
			v := fmt.Sprint(i + 1)
			newRev, err := s.Update(ctx, key, []byte(v), rev)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				winner, winnerRev = v, newRev
			case errors.Is(err, storage.ErrConflict):
				conflicts++
			default:
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || conflicts != writers-1 || len(other) > 0 {
		t.Fatalf("wins=%d conflicts=%d other errors=%v; want 1 win and %d conflicts", wins, conflicts, other, writers-1)
	}
	kv, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(kv.Value) != winner || kv.Revision != winnerRev {
		t.Fatalf("stored %q@%d, want the winner's %q@%d", kv.Value, kv.Revision, winner, winnerRev)
	}
}

func TestListPagesAreOneSnapshot(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	p := prefix(t)
	const n = 25
	for i := range n {
		mustCreate(t, s, fmt.Sprintf("%sk%02d", p, i), fmt.Sprint(i))
	}
	mustCreate(t, s, p[:len(p)-1]+"-outside", "x")

	snapshot, err := s.List(ctx, p, storage.ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(snapshot.Items) != n || snapshot.More || snapshot.Remaining != 0 {
		t.Fatalf("full List: %d items, More=%v, Remaining=%d; want %d, false, 0",
			len(snapshot.Items), snapshot.More, snapshot.Remaining, n)
	}
	if !slices.IsSortedFunc(snapshot.Items, func(a, b storage.KeyValue) int { return strings.Compare(a.Key, b.Key) }) {
		t.Fatal("List items are not in key order")
	}

	// Writers change the subtree while we page through the snapshot.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = s.Create(ctx, fmt.Sprintf("%sk%02d-new%d", p, i%n, i), []byte("new"))
			_, _, _ = s.Delete(ctx, fmt.Sprintf("%sk%02d", p, (i*7)%n), 0)
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	waitFor(t, func() bool {
		cur, err := s.Count(ctx, p)
		return err == nil && cur != n
	}, "writers to change the subtree")

	var (
		got   []storage.KeyValue
		start string
	)
	for page := 0; ; page++ {
		res, err := s.List(ctx, p, storage.ListOptions{Revision: snapshot.Revision, Limit: 7, StartKey: start})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if res.Revision != snapshot.Revision {
			t.Fatalf("page %d read at %d, want %d", page, res.Revision, snapshot.Revision)
		}
		got = append(got, res.Items...)
		if wantRemaining := int64(n - len(got)); res.Remaining != wantRemaining || res.More != (wantRemaining > 0) {
			t.Fatalf("page %d: More=%v Remaining=%d; want Remaining %d", page, res.More, res.Remaining, wantRemaining)
		}
		if !res.More {
			break
		}
		start = res.Items[len(res.Items)-1].Key + "\x00"
	}
	if !slices.EqualFunc(got, snapshot.Items, equalKV) {
		t.Fatalf("paged List differs from the snapshot:\n got %v\nwant %v", keys(got), keys(snapshot.Items))
	}
}

func TestListStartKey(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	p := prefix(t)
	for _, k := range []string{"a", "b", "c"} {
		mustCreate(t, s, p+k, k)
	}
	for _, tc := range []struct {
		startKey string
		want     []string
	}{
		{"", []string{"a", "b", "c"}},
		{p + "b", []string{"b", "c"}},
		{p + "bb", []string{"c"}},
		{"/", []string{"a", "b", "c"}}, // before the prefix: from the prefix
		{p + "\xff", nil},              // past every key under the prefix
		{"/zzzz", nil},                 // past the prefix
	} {
		res, err := s.List(ctx, p, storage.ListOptions{StartKey: tc.startKey})
		if err != nil {
			t.Fatalf("List from %q: %v", tc.startKey, err)
		}
		var got []string
		for _, kv := range res.Items {
			got = append(got, kv.Key[len(p):])
		}
		if !slices.Equal(got, tc.want) || res.More {
			t.Errorf("List from %q = %v (More=%v), want %v", tc.startKey, got, res.More, tc.want)
		}
	}
}

func TestListFutureRevision(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	cur, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, prefix(t), storage.ListOptions{Revision: cur + 1000}); !errors.Is(err, storage.ErrFutureRevision) {
		t.Fatalf("List at a future revision: err = %v, want ErrFutureRevision", err)
	}
}

func TestCompacted(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testContext(t)
	p := prefix(t)
	rev1 := mustCreate(t, s, p+"k", "v1")
	rev2, err := s.Update(ctx, p+"k", []byte("v2"), rev1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, rev2); err != nil {
		t.Fatalf("Compact: %v", err)
	}

	if _, err := s.List(ctx, p, storage.ListOptions{Revision: rev1}); !errors.Is(err, storage.ErrCompacted) {
		t.Fatalf("List at a compacted revision: err = %v, want ErrCompacted", err)
	}
	if res, err := s.List(ctx, p, storage.ListOptions{Revision: rev2}); err != nil || len(res.Items) != 1 || string(res.Items[0].Value) != "v2" {
		t.Fatalf("List at the compaction revision = %+v, %v; want v2", res, err)
	}
	if err := s.Compact(ctx, rev1); !errors.Is(err, storage.ErrCompacted) {
		t.Fatalf("Compact to an older revision: err = %v, want ErrCompacted", err)
	}

	events, err := s.Watch(ctx, p, rev1-1)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	ev := nextEvent(t, events)
	if ev.Type != storage.Error || !errors.Is(ev.Err, storage.ErrCompacted) {
		t.Fatalf("Watch from a compacted revision: first event %+v, want an Error wrapping ErrCompacted", ev)
	}
	waitClosed(t, events)
}

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

func equalKV(a, b storage.KeyValue) bool {
	return a.Key == b.Key && a.Revision == b.Revision && string(a.Value) == string(b.Value)
}

func keys(kvs []storage.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
