package simfleet

import (
	"context"
	"net"
	"runtime"
	"sync"
	"time"
)

// maxPending bounds what a coalescingConn holds unsent: a Write waits
// while this much is queued.
const maxPending = 256 << 10

// coalescingConn is a net.Conn whose writes are queued and sent by a
// goroutine of its own, so that writes made while it is sending go out
// together in one system call.
//
// The fleet's nodes share one HTTP/2 connection, and its client flushes
// each request twice (its HEADERS frame, then its DATA): two TLS records,
// each written with a system call of its own. Loopback writes are costly
// (the sender's call also delivers the segment to the receiver): at
// 500 nodes and 10,000 pods they were a ninth of the fleet's CPU. Queued
// here, a request's two records usually leave in one write, with those
// of other requests made meanwhile, and the server reads fewer segments.
//
// A Write returns once its bytes are queued; an error of the underlying
// connection is returned by the Writes after it. Order is kept (one
// goroutine sends). Close does not wait for queued bytes.
type coalescingConn struct {
	net.Conn
	mu      sync.Mutex
	drained sync.Cond // signalled when the queue shrinks or err is set
	queue   []byte    // bytes not yet handed to the sender
	spare   []byte    // the sender's last buffer, reused for the queue
	err     error     // sticky: the sender's write error, or net.ErrClosed
	wake    chan struct{}
	done    chan struct{}
	close   sync.Once
}

// coalesceWrites returns c with its writes coalesced.
func coalesceWrites(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	cc.drained.L = &cc.mu
	go cc.send()
	return cc
}

// Write queues p to be sent.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.queue) >= maxPending {
		c.drained.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	first := len(c.queue) == 0
	c.queue = append(c.queue, p...)
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default: // the sender has a wake-up pending and will find p
		}
	}
	return len(p), nil
}

// send writes what is queued, all of it at once, until the connection
// fails or is closed.
func (c *coalescingConn) send() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// Let the writer that woke us finish: an HTTP/2 request's body
		// follows its headers, and other requests are often ready too.
		// Measured at 500/10,000: 3.1 writes per system call without
		// this, 6.5 with it.
		runtime.Gosched()
		for {
			c.mu.Lock()
			b := c.queue
			if len(b) == 0 || c.err != nil {
				c.mu.Unlock()
				break
			}
			c.queue, c.spare = c.spare[:0], nil
			c.mu.Unlock()

			_, err := c.Conn.Write(b)

			c.mu.Lock()
			// The queue outgrows maxPending by a Write at most (TLS
			// records are at most 16 KiB): keep such buffers.
			if cap(b) <= 4*maxPending {
				c.spare = b[:0]
			}
			if err != nil && c.err == nil {
				c.err = err
			}
			c.drained.Broadcast()
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// Close closes the connection; bytes still queued are dropped.
func (c *coalescingConn) Close() error {
	c.close.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = net.ErrClosed
		}
		c.drained.Broadcast()
		c.mu.Unlock()
		close(c.done)
	})
	return c.Conn.Close()
}

// dialFunc is rest.Config's Dial.
type dialFunc = func(ctx context.Context, network, address string) (net.Conn, error)

// coalescingDial wraps dial (client-go's default dialer if nil) so that
// its connections coalesce their writes.
func coalescingDial(dial dialFunc) dialFunc {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return coalesceWrites(c), nil
	}
}
