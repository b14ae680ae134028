package etcd

import (
	"context"
	"fmt"
	"os"

	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/storagetest"
)

// member is the etcd member every test and benchmark in this package shares.
var member *embedded.Member

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "drover-etcd-test-")
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

// newClient connects a new client to endpoints.
func newClient(tb testing.TB, endpoints []string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatalf("etcd client: %v", err)
	}
	return c
}

// newStore returns a Store on its own client to the shared member, closed
// when the test ends.
func newStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s := New(newClient(tb, member.Endpoints()), opts)
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// newInProcessStore returns a Store that calls the shared member's server in
// process, as a single server's control plane does, closed when the test
// ends.
func newInProcessStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	opts.KV = member.InProcessKV()
	s := New(member.InProcessClient(), opts)
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// prefix returns a key prefix unique to the test.
func prefix(tb testing.TB) string { return storagetest.Prefix(tb) }

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
