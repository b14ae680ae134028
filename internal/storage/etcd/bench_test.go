package etcd

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
)

// value1K is a stored object of typical size.
var value1K = bytes.Repeat([]byte("x"), 1024)

// transports runs bench on a Store over gRPC (a client of the member's
// endpoints, as a control plane of several servers has) and on one calling
// the member in process (as a single server's control plane has).
func transports(b *testing.B, bench func(b *testing.B, s *Store)) {
	b.Run("grpc", func(b *testing.B) { bench(b, newStore(b, Options{})) })
	b.Run("inprocess", func(b *testing.B) { bench(b, newInProcessStore(b, Options{})) })
}

// processCPU returns the CPU time (user and system) the process has used:
// the member's server runs in the benchmark's process, so this counts the
// work of both sides of a request, which wall time (mostly waiting for the
// disk) hides.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
}

func BenchmarkCreate(b *testing.B) {
	transports(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		p := prefix(b)
		i := 0
		b.ReportAllocs()
		defer reportCPU(b, processCPU(b))
		for b.Loop() {
			if _, err := s.Create(ctx, fmt.Sprintf("%s%08d", p, i), value1K); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkGet(b *testing.B) {
	transports(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		key := prefix(b) + "k"
		mustCreate(b, s, key, string(value1K))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUpdate(b *testing.B) {
	transports(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		key := prefix(b) + "k"
		rev := mustCreate(b, s, key, string(value1K))
		b.ReportAllocs()
		defer reportCPU(b, processCPU(b))
		for b.Loop() {
			var err error
			if rev, err = s.Update(ctx, key, value1K, rev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDelete measures a compare-and-delete of a key created, untimed,
// just before (so no cpu-ns/op: the creates would count).
func BenchmarkDelete(b *testing.B) {
	transports(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		p := prefix(b)
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			key := fmt.Sprintf("%s%08d", p, i)
			rev := mustCreate(b, s, key, string(value1K))
			i++
			b.StartTimer()
			if _, _, err := s.Delete(ctx, key, rev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkList(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			s := newStore(b, Options{})
			ctx := context.Background()
			p := prefix(b)
			fill(b, s, p, n)
			b.SetBytes(int64(n * len(value1K)))
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
	}
}

// BenchmarkWatchFanOut measures one write until each of 100 watchers of its
// prefix has received it.
func BenchmarkWatchFanOut(b *testing.B) {
	const watchers = 100
	s := newStore(b, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := prefix(b)
	from, err := s.Revision(ctx)
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
	rev := mustCreate(b, s, key, string(value1K))
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

// fill creates n keys of 1 KiB under p, a few at a time in parallel.
func fill(b *testing.B, s *Store, p string, n int) {
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
