package simfleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// gatedConn is a net.Conn whose first Write waits until release is
// closed, and which records what each Write was given.
type gatedConn struct {
	net.Conn
	entered chan struct{} // closed when the first Write starts
	release chan struct{}
	mu      sync.Mutex
	writes  []string
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	first := len(g.writes) == 0
	g.writes = append(g.writes, string(p))
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.release
	}
	return len(p), nil
}

func (g *gatedConn) Close() error { return nil }

func (g *gatedConn) recorded() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.writes...)
}

// Writes made while the connection is sending are queued without
// waiting, and leave together, in order, in the next write.
func TestCoalescingConnSendsQueuedWritesTogether(t *testing.T) {
	g := &gatedConn{entered: make(chan struct{}), release: make(chan struct{})}
	c := coalesceWrites(g)
	defer c.Close()
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	<-g.entered // the sender holds "a" and waits
	for _, s := range []string{"b", "c", "d"} {
		if n, err := c.Write([]byte(s)); n != 1 || err != nil {
			t.Fatalf("Write(%q) = %d, %v while the sender is busy", s, n, err)
		}
	}
	close(g.release)
	deadline := time.Now().Add(10 * time.Second)
	for len(g.recorded()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got, want := g.recorded(), []string{"a", "bcd"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("underlying writes %q, want %q", got, want)
	}
}

// Over a real connection, every byte of concurrent writers arrives, each
// Write's bytes contiguous.
func TestCoalescingConnKeepsEachWriteWhole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- s
	}()
	raw, err := coalescingDial(nil)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	defer server.Close()

	const writers, each, size = 8, 200, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rec := bytes.Repeat([]byte{byte('A' + w)}, size)
			for range each {
				if _, err := raw.Write(rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	got := make([]byte, writers*each*size)
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(server, got)
		readErr <- err
	}()
	wg.Wait()
	select {
	case err := <-readErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("not every byte arrived within 30 s")
	}
	counts := map[byte]int{}
	for i := 0; i < len(got); i += size {
		rec := got[i : i+size]
		if !bytes.Equal(rec, bytes.Repeat(rec[:1], size)) {
			t.Fatalf("record at %d mixes writers: %q", i, rec)
		}
		counts[rec[0]]++
	}
	for w := range writers {
		if counts[byte('A'+w)] != each {
			t.Errorf("writer %c: %d records arrived, want %d", 'A'+w, counts[byte('A'+w)], each)
		}
	}
	if err := raw.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := raw.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}

// A Write that waits for room (the peer reads nothing) returns an error
// once the connection is closed, and so does a Write after a failed send.
func TestCoalescingConnUnblocksOnClose(t *testing.T) {
	client, server := net.Pipe() // a Write waits for its reader: nobody reads
	defer server.Close()
	c := coalesceWrites(client)
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := c.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	}()
	// The queue fills (the sender is stuck in the pipe), then the writer
	// waits; Close must release it either way.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		full := len(c.queue) >= maxPending
		c.mu.Unlock()
		if full {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Write returned no error after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Write waiting for room was not released by Close")
	}
}

// A send that fails makes later Writes fail with its error.
func TestCoalescingConnReportsSendError(t *testing.T) {
	client, server := net.Pipe()
	server.Close() // the pipe's writes fail at once
	c := coalesceWrites(client)
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("first Write: %v (queued, it cannot have failed yet)", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Write([]byte("y"))
		if errors.Is(err, io.ErrClosedPipe) {
			return
		}
		if err != nil {
			t.Fatalf("Write after a failed send: %v, want the send's io.ErrClosedPipe", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("Writes still succeed 10 s after the send failed")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkLoopbackWrite writes 200-byte records (a small HTTP/2 frame in
// a TLS record) from 8 goroutines to a loopback TCP connection whose
// peer drains it, through a coalescingConn and directly.
func BenchmarkLoopbackWrite(b *testing.B) {
	for _, coalesce := range []bool{false, true} {
		b.Run(fmt.Sprintf("coalesce=%v", coalesce), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				defer s.Close()
				io.Copy(io.Discard, s)
			}()
			dial := (&net.Dialer{}).DialContext
			if coalesce {
				dial = coalescingDial(nil)
			}
			c, err := dial(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var mu sync.Mutex // HTTP/2's writers take turns, as here
			b.SetParallelism(4)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rec := make([]byte, 200)
				for pb.Next() {
					mu.Lock()
					_, err := c.Write(rec)
					mu.Unlock()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
