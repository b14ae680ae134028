package apiserver

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestInflightQueueIsBounded fills a pool of one slot and its queue of one
// waiter: the next request is rejected at once, not after the queue wait,
// and the waiter gets the slot when it is given back.
func TestInflightQueueIsBounded(t *testing.T) {
	l := &inflightLimiter{readOnly: newPool(1), mutating: newPool(1), wait: time.Hour}
	get := func() *http.Request { return httptest.NewRequest("GET", "/api/v1/nodes", nil) }
	release, ok := l.acquire(get(), nil)
	if !ok {
		t.Fatal("first request rejected")
	}
	waiter := make(chan func())
	go func() {
		r, ok := l.acquire(get(), nil)
		if !ok {
			r = nil
		}
		waiter <- r
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(l.readOnly.waiting) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("second request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	// The queue wait is an hour: only a full queue rejects in time.
	rejected := make(chan bool)
	go func() { _, ok := l.acquire(get(), nil); rejected <- !ok }()
	select {
	case r := <-rejected:
		if !r {
			t.Error("third request got a slot while the pool and its queue were full")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("third request waited although the queue was full")
	}
	release()
	if r := <-waiter; r == nil {
		t.Error("the queued request was rejected after the slot came back")
	} else {
		r()
	}
	if len(l.readOnly.shared) != 0 || len(l.readOnly.waiting) != 0 {
		t.Errorf("slots %d, waiting %d after all released", len(l.readOnly.shared), len(l.readOnly.waiting))
	}
}
