// Package storagetest is the contract test suite of storage.Interface: every
// implementation (the etcd store, the watch cache) runs the same tests, so
// the API server can rely on one behaviour whichever store it is given.
//
// A suite run needs a Factory that returns a fresh store for one test; tests
// share the backing store and keep to their own key prefix.
package storagetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
)

// Options configures a store a test asks its Factory for.
type Options struct {
	// ProgressInterval is how often idle watches must receive a Progress
	// event; 0 takes the implementation's default.
	ProgressInterval time.Duration
}

// Factory returns a new store for a test whose keys live under prefix (it
// also writes a few sibling keys next to prefix, which watches and lists of
// prefix must not see). The factory arranges for the store to be closed when
// tb ends.
type Factory func(tb testing.TB, prefix string, opts Options) storage.Interface

// contractCase is one contract test.
type contractCase struct {
	name     string
	progress time.Duration
	run      func(t *testing.T, s storage.Interface, p string)
}

var cases = []contractCase{
	{"CRUD", 0, testCRUD},
	{"Count", 0, testCount},
	{"ConcurrentUpdatesFromOneRevision", 0, testConcurrentUpdatesFromOneRevision},
	{"ListPagesAreOneSnapshot", 0, testListPagesAreOneSnapshot},
	{"ListStartKey", 0, testListStartKey},
	{"ListFutureRevision", 0, testListFutureRevision},
	{"Compacted", 0, testCompacted},
	{"WatchFromRevisionDeliversEachChangeOnceInOrder", 0, testWatchFromRevisionDeliversEachChangeOnceInOrder},
	{"WatchFromNowSkipsHistory", 50 * time.Millisecond, testWatchFromNowSkipsHistory},
	{"IdleWatchGetsProgress", 100 * time.Millisecond, testIdleWatchGetsProgress},
	{"ProgressAdvancesPastWritesElsewhere", 100 * time.Millisecond, testProgressAdvancesPastWritesElsewhere},
	{"WatchRejectsNegativeRevision", 0, testWatchRejectsNegativeRevision},
	{"WatchClosesOnCancel", 50 * time.Millisecond, testWatchClosesOnCancel},
	{"WatchFromFutureRevision", 50 * time.Millisecond, testWatchFromFutureRevision},
	{"KeysExpire", 0, testKeysExpire},
	{"UpdateRefreshesTTL", 0, testUpdateRefreshesTTL},
}

// Run runs the contract suite against stores from newStore, one subtest per
// behaviour.
func Run(t *testing.T, newStore Factory) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Prefix(t)
			s := newStore(t, p, Options{ProgressInterval: tc.progress})
			tc.run(t, s, p)
		})
	}
}

var (
	prefixMu sync.Mutex
	prefixes = map[testing.TB]string{}
)

// Prefix returns a key prefix unique to the test, also across -count runs on
// a shared store. It ends in "/".
func Prefix(tb testing.TB) string {
	prefixMu.Lock()
	defer prefixMu.Unlock()
	p, ok := prefixes[tb]
	if !ok {
		p = fmt.Sprintf("/test/%d/%s/", len(prefixes), tb.Name())
		prefixes[tb] = p
	}
	return p
}

// Context returns a context with a generous deadline, canceled when tb ends.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// MustCreate creates key or fails the test, returning the revision.
func MustCreate(tb testing.TB, s storage.Interface, key, value string) int64 {
	tb.Helper()
	rev, err := s.Create(context.Background(), key, []byte(value))
	if err != nil {
		tb.Fatalf("Create %s: %v", key, err)
	}
	return rev
}

// EqualKV compares key, value and revision.
func EqualKV(a, b storage.KeyValue) bool {
	return a.Key == b.Key && a.Revision == b.Revision && string(a.Value) == string(b.Value)
}

func keys(kvs []storage.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NextEvent returns the next event, failing the test after a deadline.
func NextEvent(t testing.TB, events <-chan storage.Event) storage.Event {
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

// NextChange returns the next event that is not a Progress event.
func NextChange(t testing.TB, events <-chan storage.Event) storage.Event {
	t.Helper()
	for {
		if ev := NextEvent(t, events); ev.Type != storage.Progress {
			return ev
		}
	}
}

// WaitProgress returns the next Progress event, failing on any other event
// or on a Progress below minRevision.
func WaitProgress(t testing.TB, events <-chan storage.Event, minRevision int64) storage.Event {
	t.Helper()
	ev := NextEvent(t, events)
	if ev.Type != storage.Progress || ev.Revision < minRevision {
		t.Fatalf("got %s, want Progress at revision >= %d", Describe(ev), minRevision)
	}
	return ev
}

// WaitClosed drains events until the channel closes.
func WaitClosed(t testing.TB, events <-chan storage.Event) {
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

// EqualEvent compares two events field by field (not Err).
func EqualEvent(a, b storage.Event) bool {
	return a.Type == b.Type && a.Key == b.Key && a.Revision == b.Revision &&
		string(a.Value) == string(b.Value) && string(a.PrevValue) == string(b.PrevValue) &&
		(a.PrevValue == nil) == (b.PrevValue == nil) && a.PrevRevision == b.PrevRevision
}

// Describe formats an event for failure messages.
func Describe(e storage.Event) string {
	names := map[storage.EventType]string{
		storage.Added: "Added", storage.Modified: "Modified", storage.Deleted: "Deleted",
		storage.Progress: "Progress", storage.Error: "Error",
	}
	if e.Type == storage.Error {
		return "Error(" + e.Err.Error() + ")"
	}
	return fmt.Sprintf("%s{%s %q prev=%q@%d @%d}", names[e.Type], e.Key, e.Value, e.PrevValue, e.PrevRevision, e.Revision)
}
