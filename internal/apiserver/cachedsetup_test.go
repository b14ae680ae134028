package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/cacher"
	"github.com/drover/drover/internal/storage/etcd"
)

// gatedStore is the shared etcd store whose watches can be held back: while
// the gate is closed, events wait before reaching the watch cache, so the
// cache lags etcd as it may in production, but for as long as a test needs.
// Close leaves the shared store open.
type gatedStore struct {
	*etcd.Store
	mu   sync.Mutex
	open chan struct{} // closed while events flow
	gets atomic.Int64  // Get calls, which the watch cache should spare
}

func (g *gatedStore) Get(ctx context.Context, key string) (storage.KeyValue, error) {
	g.gets.Add(1)
	return g.Store.Get(ctx, key)
}

func newGatedStore(s *etcd.Store) *gatedStore {
	g := &gatedStore{Store: s, open: make(chan struct{})}
	close(g.open)
	return g
}

// hold stops events from reaching watchers until release.
func (g *gatedStore) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

// release lets held and later events flow.
func (g *gatedStore) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gatedStore) gate() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

func (g *gatedStore) Watch(ctx context.Context, prefix string, from int64) (<-chan storage.Event, error) {
	in, err := g.Store.Watch(ctx, prefix, from)
	if err != nil {
		return nil, err
	}
	return g.through(ctx, in), nil
}

// WatchCurrent is the watch the cache makes (etcd.Store's, gated).
func (g *gatedStore) WatchCurrent(ctx context.Context, prefix string, from int64) (<-chan storage.Event, error) {
	in, err := g.Store.WatchCurrent(ctx, prefix, from)
	if err != nil {
		return nil, err
	}
	return g.through(ctx, in), nil
}

// through passes a watch's events on while the gate is open.
func (g *gatedStore) through(ctx context.Context, in <-chan storage.Event) <-chan storage.Event {
	out := make(chan storage.Event)
	go func() {
		defer close(out)
		for ev := range in {
			select {
			case <-g.gate():
			case <-ctx.Done():
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (g *gatedStore) Close() error { return nil }

// cachedTestServer is an API server over the shared etcd behind a watch
// cache per resource, as the control plane runs it.
type cachedTestServer struct {
	*testServer
	gated *gatedStore
	cache *cacher.Multi
}

func newCachedTestServer(t testing.TB) *cachedTestServer {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gated := newGatedStore(shared.store)
	m, err := cacher.NewMulti(gated, cacher.Options{Logger: quiet}, apiserver.StoragePrefixes(registry.All())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gated.release()
		m.Close()
	})
	ts := &cachedTestServer{
		testServer: serveOver(t, m),
		gated:      gated,
		cache:      m,
	}
	for _, st := range m.Stats() {
		ts.waitReady(t, st.Prefix)
	}
	return ts
}

func (ts *cachedTestServer) waitReady(t testing.TB, prefix string) {
	t.Helper()
	c := ts.cache.Cacher(prefix)
	deadline := time.Now().Add(30 * time.Second)
	for !c.Stats().Ready {
		if time.Now().After(deadline) {
			t.Fatalf("watch cache of %s not ready", prefix)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCached waits until the cache holds key at revision rv ("" : until it
// does not hold key).
func (ts *cachedTestServer) waitCached(t testing.TB, key, rv string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		kv, ok := ts.cache.GetCached(key)
		if (rv == "" && !ok) || (ok && rv != "" && strconv.FormatInt(kv.Revision, 10) == rv) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %s at %d (present %v), want %q", key, kv.Revision, ok, rv)
		}
		time.Sleep(time.Millisecond)
	}
}
