package cacher

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/storagetest"
)

// Each benchmark runs the same work on the etcd store alone (store=etcd)
// and through a cacher of the prefix in front of it (store=cacher).

// benchPrefix is a key prefix unique to one run of a benchmark, also with
// -count (which may hand the same *testing.B to each run).
func benchPrefix(b *testing.B) string {
	return fmt.Sprintf("%s%d/", storagetest.Prefix(b), benchRuns.Add(1))
}

var benchRuns atomic.Int64

// value1K is a stored object of typical size.
var value1K = bytes.Repeat([]byte("x"), 1024)

// stores runs f on etcd and on a cacher for p.
func stores(b *testing.B, p string, f func(b *testing.B, s storage.Interface, inner storage.Interface)) {
	b.Run("store=etcd", func(b *testing.B) {
		s := newEtcd(b, 0)
		f(b, s, s)
	})
	b.Run("store=cacher", func(b *testing.B) {
		c, inner := newCacher(b, Options{Prefix: p})
		f(b, c, inner)
	})
}

func BenchmarkList(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			p := benchPrefix(b)
			fill(b, newEtcd(b, 0), p, n)
			stores(b, p, func(b *testing.B, s, _ storage.Interface) {
				ctx := context.Background()
				for b.Loop() {
					res, err := s.List(ctx, p, storage.ListOptions{})
					if err != nil {
						b.Fatal(err)
					}
					if len(res.Items) != n {
						b.Fatalf("listed %d keys, want %d", len(res.Items), n)
					}
				}
			})
		})
	}
}

// BenchmarkListPage reads the first 500 keys of 10000, as client-go's
// paginated lists do.
func BenchmarkListPage(b *testing.B) {
	p := benchPrefix(b)
	fill(b, newEtcd(b, 0), p, 10000)
	stores(b, p, func(b *testing.B, s, _ storage.Interface) {
		ctx := context.Background()
		for b.Loop() {
			res, err := s.List(ctx, p, storage.ListOptions{Limit: 500})
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Items) != 500 || res.Remaining != 9500 {
				b.Fatalf("listed %d keys, %d remaining", len(res.Items), res.Remaining)
			}
		}
	})
}

// BenchmarkUpdate is the write path, with the cacher watching the prefix.
func BenchmarkUpdate(b *testing.B) {
	p := benchPrefix(b)
	stores(b, p, func(b *testing.B, s, inner storage.Interface) {
		ctx := context.Background()
		key := fmt.Sprintf("%sk%d", p, benchRuns.Add(1))
		rev := storagetest.MustCreate(b, inner, key, string(value1K))
		for b.Loop() {
			var err error
			if rev, err = s.Update(ctx, key, value1K, rev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWatchFanOut measures one write until each watcher of its
// prefix has received it.
func BenchmarkWatchFanOut(b *testing.B) {
	for _, watchers := range []int{100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			p := benchPrefix(b)
			stores(b, p, func(b *testing.B, s, inner storage.Interface) {
				fanOut(b, s, inner, fmt.Sprintf("%s%d/", p, benchRuns.Add(1)), watchers)
			})
		})
	}
}

func fanOut(b *testing.B, s, inner storage.Interface, p string, watchers int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	from, err := inner.Revision(ctx)
	if err != nil {
		b.Fatal(err)
	}
	seen := make([]chan int64, watchers)
	for i := range seen {
		events, err := s.Watch(ctx, p, from)
		if err != nil {
			b.Fatal(err)
		}
		seen[i] = make(chan int64, 1)
		go func(out chan<- int64) {
			for ev := range events {
				switch ev.Type {
				case storage.Added, storage.Modified:
					out <- ev.Revision
				case storage.Error:
					panic(ev.Err)
				}
			}
		}(seen[i])
	}
	key := p + "k"
	rev := storagetest.MustCreate(b, inner, key, string(value1K))
	for _, ch := range seen {
		<-ch // every watcher is established
	}
	for b.Loop() {
		if rev, err = s.Update(ctx, key, value1K, rev); err != nil {
			b.Fatal(err)
		}
		for _, ch := range seen {
			for got := <-ch; got != rev; got = <-ch {
			}
		}
	}
}

// BenchmarkWatchOpen opens and closes a watch from the current revision,
// as every client watch request does.
func BenchmarkWatchOpen(b *testing.B) {
	p := benchPrefix(b)
	stores(b, p, func(b *testing.B, s, inner storage.Interface) {
		rev := storagetest.MustCreate(b, inner, fmt.Sprintf("%sk%d", p, benchRuns.Add(1)), "v")
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			if _, err := s.Watch(ctx, p, rev); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	})
}

// fill creates n keys of 1 KiB under p, a few at a time in parallel.
func fill(b *testing.B, s storage.Interface, p string, n int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if _, err := s.Create(ctx, fmt.Sprintf("%s%08d", p, i), value1K); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkListAfterWriteElsewhere lists 1000 keys right after a write
// outside the prefix: the cacher has to learn from a progress request that
// it is up to date before it may answer.
func BenchmarkListAfterWriteElsewhere(b *testing.B) {
	p := benchPrefix(b)
	fill(b, newEtcd(b, 0), p+"in/", 1000)
	stores(b, p+"in/", func(b *testing.B, s, inner storage.Interface) {
		ctx := context.Background()
		run, i := benchRuns.Add(1), 0
		for b.Loop() {
			i++
			if _, err := inner.Create(ctx, fmt.Sprintf("%sout/%d/%d", p, run, i), nil); err != nil {
				b.Fatal(err)
			}
			res, err := s.List(ctx, p+"in/", storage.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Items) != 1000 {
				b.Fatalf("listed %d keys", len(res.Items))
			}
		}
		if c, ok := s.(*Cacher); ok && c.innerLists.Load() > 0 {
			b.Errorf("%d lists fell back to etcd", c.innerLists.Load())
		}
	})
}

// BenchmarkCacheMemory reports the heap a cacher of 10000 keys of 1 KiB
// holds, per key: what its Close frees (the embedded etcd member shares the
// heap, so growth from before New would count etcd's own caches too).
func BenchmarkCacheMemory(b *testing.B) {
	const n = 10000
	p := benchPrefix(b)
	inner := newEtcd(b, 0)
	fill(b, inner, p, n)
	var perKey float64
	for b.Loop() {
		var live, freed runtime.MemStats
		c, err := New(inner, Options{Prefix: p})
		if err != nil {
			b.Fatal(err)
		}
		waitReady(b, c)
		runtime.GC()
		runtime.ReadMemStats(&live)
		c.Close()
		c = nil
		runtime.GC()
		runtime.ReadMemStats(&freed)
		perKey = (float64(live.HeapAlloc) - float64(freed.HeapAlloc)) / n
	}
	b.ReportMetric(perKey, "heapB/key")
}
