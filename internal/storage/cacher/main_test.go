package cacher

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
)

// member is the etcd member every test and benchmark in this package shares.
var member *embedded.Member

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "drover-cacher-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	member, err = embedded.Start(ctx, embedded.Config{DataDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer member.Close()
	return m.Run()
}

// newEtcd returns an etcd store on its own client, closed when tb ends.
func newEtcd(tb testing.TB, progress time.Duration) *etcd.Store {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   member.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatalf("etcd client: %v", err)
	}
	s := etcd.New(c, etcd.Options{ProgressInterval: progress})
	tb.Cleanup(func() { s.Close() })
	return s
}

// newCacher returns a Cacher on its own etcd store, both closed when tb
// ends, once the cacher has its first list.
func newCacher(tb testing.TB, opts Options) (*Cacher, *etcd.Store) {
	tb.Helper()
	inner := newEtcd(tb, opts.ProgressInterval)
	c, err := New(inner, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	waitReady(tb, c)
	return c, inner
}

// waitReady waits until c serves from memory.
func waitReady(tb testing.TB, c *Cacher) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		ready := c.ready
		c.mu.Unlock()
		if ready {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("cacher not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
