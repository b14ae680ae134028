// Package gopool runs functions on goroutines kept between calls, so that a
// stack grown by one call serves the next.
//
// A new goroutine starts with a small stack and copies it each time it
// outgrows it. Serving an API request (decoding, admitting, encoding and
// storing a Pod) takes a stack several times the initial size, so a server
// that runs each request on a fresh goroutine, as net/http does, copies
// stacks on every request: a twentieth of the control plane's CPU under
// load. A Pool's workers keep their grown stacks (until the garbage
// collector shrinks an idle one) and exit after MaxIdleTime without work.
package gopool

import (
	"sync"
	"time"
)

// DefaultMaxIdleTime is how long a worker waits for work, when
// Pool.MaxIdleTime is zero, before it exits.
const DefaultMaxIdleTime = 10 * time.Second

// Pool runs functions on reused goroutines. Its zero value is ready to use;
// it needs no closing: idle workers exit by themselves.
type Pool struct {
	// MaxIdleTime is how long a worker waits for work before it exits:
	// DefaultMaxIdleTime when zero.
	MaxIdleTime time.Duration

	mu       sync.Mutex
	idle     []*worker // most recently used last
	cleaning bool      // a cleaner goroutine runs while workers are idle
}

// worker is a goroutine that runs the functions sent on work and answers
// each on done with what the function panicked with, nil if it returned.
type worker struct {
	work     chan func()
	done     chan any
	lastUsed time.Time
}

// Run calls f on one of the pool's goroutines and returns when f does. If
// f panics, Run panics with the same value in the caller's goroutine (the
// worker survives), so that a recover in the caller, such as net/http's
// for http.ErrAbortHandler, sees it; the panic's stack is the caller's.
// f must not call runtime.Goexit.
func (p *Pool) Run(f func()) {
	w := p.get()
	w.work <- f
	v := <-w.done
	p.put(w)
	if v != nil {
		panic(v)
	}
}

// get returns the most recently used idle worker, or starts one.
func (p *Pool) get() *worker {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	w := &worker{work: make(chan func()), done: make(chan any)}
	go w.loop()
	return w
}

// put makes w idle, and starts the cleaner if none runs.
func (p *Pool) put(w *worker) {
	w.lastUsed = time.Now()
	p.mu.Lock()
	p.idle = append(p.idle, w)
	start := !p.cleaning
	p.cleaning = true
	p.mu.Unlock()
	if start {
		go p.clean()
	}
}

// clean stops the workers idle for longer than the pool's MaxIdleTime,
// and returns once none is idle.
func (p *Pool) clean() {
	maxIdle := p.MaxIdleTime
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdleTime
	}
	for {
		time.Sleep(maxIdle / 2)
		cutoff := time.Now().Add(-maxIdle)
		p.mu.Lock()
		// Idle workers are in the order they were last used: the
		// expired ones come first.
		n := 0
		for n < len(p.idle) && p.idle[n].lastUsed.Before(cutoff) {
			close(p.idle[n].work)
			n++
		}
		p.idle = append(p.idle[:0], p.idle[n:]...)
		clear(p.idle[len(p.idle):cap(p.idle)])
		if len(p.idle) == 0 {
			p.cleaning = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// loop runs work until the pool closes the channel.
func (w *worker) loop() {
	for f := range w.work {
		w.done <- call(f)
	}
}

// call calls f and returns what it panicked with, nil if it returned.
func call(f func()) (panicked any) {
	defer func() { panicked = recover() }()
	f()
	return nil
}
