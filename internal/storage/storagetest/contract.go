package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/drover/drover/internal/storage"
)

func testCRUD(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	key := p + "a"

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
	if want := (storage.KeyValue{Key: key, Value: []byte("v1"), Revision: rev1}); !EqualKV(kv, want) {
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
	if _, err := s.Update(ctx, p+"missing", []byte("x"), rev1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Update of a missing key: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, p+"missing", []byte("x"), 0); err == nil {
		t.Fatal("Update with expected revision 0 succeeded; it must not create keys")
	}
	if _, err := s.Get(ctx, p+"missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a failed Update created its key: Get err = %v", err)
	}

	if _, _, err := s.Delete(ctx, key, rev1); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Delete from a stale revision: err = %v, want ErrConflict", err)
	}
	deleted, delRev, err := s.Delete(ctx, key, rev2)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if want := (storage.KeyValue{Key: key, Value: []byte("v2"), Revision: rev2}); !EqualKV(deleted, want) {
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
	if want := (storage.KeyValue{Key: key, Value: []byte("v3"), Revision: rev3}); !EqualKV(deleted, want) || delRev <= rev3 {
		t.Fatalf("unconditional Delete = %+v at %d, want %+v after %d", deleted, delRev, want, rev3)
	}

}
func testCompacted(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	rev1 := MustCreate(t, s, p+"k", "v1")
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
	ev := NextEvent(t, events)
	if ev.Type != storage.Error || !errors.Is(ev.Err, storage.ErrCompacted) {
		t.Fatalf("Watch from a compacted revision: first event %+v, want an Error wrapping ErrCompacted", ev)
	}
	WaitClosed(t, events)

}
func testConcurrentUpdatesFromOneRevision(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	key := p + "contended"
	rev := MustCreate(t, s, key, "0")

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
func testCount(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	for i := range 7 {
		MustCreate(t, s, fmt.Sprintf("%s%d", p, i), "v")
	}
	// A sibling key sharing the prefix's text but not its subtree.
	MustCreate(t, s, p[:len(p)-1]+"x", "v")
	n, err := s.Count(ctx, p)
	if err != nil || n != 7 {
		t.Fatalf("Count = %d, %v; want 7", n, err)
	}

}
func testIdleWatchGetsProgress(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	rev := MustCreate(t, s, p+"k", "v")

	events, err := s.Watch(ctx, p, rev)
	if err != nil {
		t.Fatal(err)
	}
	ev := WaitProgress(t, events, rev)
	if ev.Key != "" || ev.Value != nil {
		t.Errorf("Progress event carries a key or value: %s", Describe(ev))
	}
	// Progress keeps coming while idle, never going backwards.
	WaitProgress(t, events, ev.Revision)

}
func testListFutureRevision(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	cur, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, p, storage.ListOptions{Revision: cur + 1000}); !errors.Is(err, storage.ErrFutureRevision) {
		t.Fatalf("List at a future revision: err = %v, want ErrFutureRevision", err)
	}

}
func testListPagesAreOneSnapshot(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	const n = 25
	for i := range n {
		MustCreate(t, s, fmt.Sprintf("%sk%02d", p, i), fmt.Sprint(i))
	}
	MustCreate(t, s, p[:len(p)-1]+"-outside", "x")

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
	WaitFor(t, func() bool {
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
	if !slices.EqualFunc(got, snapshot.Items, EqualKV) {
		t.Fatalf("paged List differs from the snapshot:\n got %v\nwant %v", keys(got), keys(snapshot.Items))
	}

}
func testListStartKey(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	for _, k := range []string{"a", "b", "c"} {
		MustCreate(t, s, p+k, k)
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
func testProgressAdvancesPastWritesElsewhere(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	from := MustCreate(t, s, p+"watched/k", "v")

	events, err := s.Watch(ctx, p+"watched/", from)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := MustCreate(t, s, p+"other/k", "v")
	// The watch sees no change, but etcd's progress tells it that it is
	// caught up with the write outside its prefix.
	for {
		ev := WaitProgress(t, events, from)
		if ev.Revision >= elsewhere {
			break
		}
	}

}
func testWatchFromNowSkipsHistory(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	MustCreate(t, s, p+"old", "v")

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
	WaitProgress(t, events, now)
	rev := MustCreate(t, s, p+"new", "v")
	if got := NextChange(t, events); got.Key != p+"new" || got.Revision != rev {
		t.Fatalf("first change = %s, want the create of %snew at %d", Describe(got), p, rev)
	}

}
func testWatchFromRevisionDeliversEachChangeOnceInOrder(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Changes made before the watch starts, plus noise outside the prefix.
	created := MustCreate(t, s, p+"a", "v1")
	MustCreate(t, s, p[:len(p)-1]+"-outside", "x")
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
		{Type: storage.Modified, Key: p + "a", Value: []byte("v2"), PrevValue: []byte("v1"), PrevRevision: created, Revision: updated},
		{Type: storage.Deleted, Key: p + "a", Value: []byte("v2"), Revision: deletedAt},
	}
	for i, w := range want {
		if got := NextChange(t, events); !EqualEvent(got, w) {
			t.Fatalf("event %d = %s, want %s", i, Describe(got), Describe(w))
		}
	}

	// A change after the watch started comes next: nothing was repeated.
	later := MustCreate(t, s, p+"b", "v3")
	w := storage.Event{Type: storage.Added, Key: p + "b", Value: []byte("v3"), Revision: later}
	if got := NextChange(t, events); !EqualEvent(got, w) {
		t.Fatalf("event after the replay = %s, want %s", Describe(got), Describe(w))
	}

}
func testWatchRejectsNegativeRevision(t *testing.T, s storage.Interface, p string) {
	if _, err := s.Watch(Context(t), p, -1); err == nil {
		t.Fatal("Watch from revision -1 succeeded")
	}

}

func testWatchClosesOnCancel(t *testing.T, s storage.Interface, p string) {
	ctx, cancel := context.WithCancel(context.Background())
	events, err := s.Watch(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Watch(Context(t), p, 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	WaitClosed(t, events)
	// The other watch still works.
	rev := MustCreate(t, s, p+"k", "v")
	if got := NextChange(t, other); got.Revision != rev {
		t.Fatalf("surviving watch got %s, want the create at %d", Describe(got), rev)
	}
	if _, err := s.Watch(ctx, p, 0); err == nil {
		t.Error("Watch with a canceled context succeeded")
	}
}

func testWatchFromFutureRevision(t *testing.T, s storage.Interface, p string) {
	ctx := Context(t)
	cur, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Other tests may write to the shared store too: aim a little ahead and
	// check against what this test wrote.
	from := cur + 2
	events, err := s.Watch(ctx, p, from)
	if err != nil {
		t.Fatal(err)
	}
	var revs []int64
	for i := 0; len(revs) == 0 || revs[len(revs)-1] <= from; i++ {
		revs = append(revs, MustCreate(t, s, fmt.Sprintf("%sk%d", p, i), "v"))
	}
	for {
		ev := NextEvent(t, events)
		if ev.Type == storage.Progress {
			if ev.Revision < from {
				t.Fatalf("Progress at %d on a watch from %d", ev.Revision, from)
			}
			continue
		}
		if want := revs[len(revs)-1]; ev.Revision != want {
			t.Fatalf("watch from %d: first change %s, want the create at %d (writes at %v)", from, Describe(ev), want, revs)
		}
		return
	}
}
