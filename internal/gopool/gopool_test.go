package gopool

import (
	"errors"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestRunCallsAndWaits(t *testing.T) {
	var p Pool
	done := false
	p.Run(func() { done = true })
	if !done {
		t.Fatal("Run returned before its function ran")
	}
}

// TestPanicReachesCaller: the caller's recover sees the value the function
// panicked with, as net/http's does for http.ErrAbortHandler, and the pool
// goes on working.
func TestPanicReachesCaller(t *testing.T) {
	var p Pool
	for _, want := range []any{http.ErrAbortHandler, "boom"} {
		got := func() (v any) {
			defer func() { v = recover() }()
			p.Run(func() { panic(want) })
			return nil
		}()
		if got != want {
			t.Errorf("recovered %v, want %v", got, want)
		}
	}
	var nilPanic *runtime.PanicNilError
	got := func() (v any) {
		defer func() { v = recover() }()
		p.Run(func() { panic(nil) })
		return nil
	}()
	if err, ok := got.(error); !ok || !errors.As(err, &nilPanic) {
		t.Errorf("panic(nil) recovered as %v, want a *runtime.PanicNilError", got)
	}
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Error("the pool did not run work after a panic")
	}
}

// TestWorkersAreReused: sequential calls share one worker, concurrent calls
// get one each, and idle workers exit after MaxIdleTime.
func TestWorkersAreReused(t *testing.T) {
	before := runtime.NumGoroutine()
	p := Pool{MaxIdleTime: 50 * time.Millisecond}
	for range 100 {
		p.Run(func() {})
	}
	if n := idleWorkers(&p); n != 1 {
		t.Errorf("%d idle workers after sequential calls, want 1", n)
	}

	const concurrent = 8
	var started, release sync.WaitGroup
	started.Add(concurrent)
	release.Add(1)
	var wg sync.WaitGroup
	for range concurrent {
		wg.Go(func() {
			p.Run(func() {
				started.Done()
				release.Wait()
			})
		})
	}
	started.Wait()
	release.Done()
	wg.Wait()
	if n := idleWorkers(&p); n != concurrent {
		t.Errorf("%d idle workers after %d concurrent calls, want %d", n, concurrent, concurrent)
	}

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before || idleWorkers(&p) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d idle workers: idle workers did not exit (%d goroutines before)", runtime.NumGoroutine(), idleWorkers(&p), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The pool works again after its workers have exited.
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Error("the pool did not run work after its workers exited")
	}
}

func idleWorkers(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// deep uses about n KiB of stack, as serving an API request does.
//
//go:noinline
func deep(n int) byte {
	var buf [1024]byte
	buf[n%1024] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n%1024]
}

var sink byte

// BenchmarkDeepStack compares a fresh goroutine per call with the pool for
// work that needs a 32 KiB stack.
func BenchmarkDeepStack(b *testing.B) {
	b.Run("goroutine", func(b *testing.B) {
		for b.Loop() {
			done := make(chan byte)
			go func() { done <- deep(32) }()
			sink = <-done
		}
	})
	b.Run("pool", func(b *testing.B) {
		var p Pool
		for b.Loop() {
			p.Run(func() { sink = deep(32) })
		}
	})
}
