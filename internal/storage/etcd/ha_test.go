package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/storagetest"
)

// TestQuorumLoss runs three members, then stops two: the store on the last
// one must report ErrUnavailable for reads, writes and watches instead of
// hanging or serving stale data.
func TestQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	const n = 3
	members := startCluster(t, n)
	for _, m := range members {
		defer m.Close()
	}

	first := New(newClient(t, members[0].Endpoints()), Options{})
	defer first.Close()
	last := New(newClient(t, members[n-1].Endpoints()), Options{})
	defer last.Close()
	ctx := testContext(t)
	rev, err := first.Create(ctx, "/ha/k", []byte("v"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if kv, err := last.Get(ctx, "/ha/k"); err != nil || kv.Revision != rev {
		t.Fatalf("Get on another member = %+v, %v; want revision %d", kv, err, rev)
	}
	events, err := last.Watch(ctx, "/ha/", rev)
	if err != nil {
		t.Fatal(err)
	}

	for _, m := range members[:n-1] {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// The watch ends with ErrUnavailable once the member sees it has no leader.
	for ev := range events {
		if ev.Type == storage.Error {
			if !errors.Is(ev.Err, storage.ErrUnavailable) {
				t.Fatalf("watch ended with %v, want ErrUnavailable", ev.Err)
			}
			break
		}
		if ev.Type != storage.Progress {
			t.Fatalf("unexpected watch event %s", storagetest.Describe(ev))
		}
	}
	storagetest.WaitFor(t, func() bool {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := last.Get(rctx, "/ha/k")
		return errors.Is(err, storage.ErrUnavailable)
	}, "Get to report ErrUnavailable")
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := last.Create(wctx, "/ha/new", []byte("v")); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Create without quorum: err = %v, want ErrUnavailable", err)
	}
}

// startCluster starts an n-member cluster on free loopback ports. A port
// found free may be taken before its member binds it (by another test's
// listener, or as an outgoing connection's port): then the cluster is
// started again on other ports, a few times.
func startCluster(t *testing.T, n int) []*embedded.Member {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cfgs := make([]embedded.Config, n)
		var cluster []string
		for i := range cfgs {
			cfgs[i] = embedded.Config{
				DataDir:   t.TempDir(),
				Name:      fmt.Sprintf("m%d", i),
				ClientURL: "http://" + freeAddr(t),
				PeerURL:   "http://" + freeAddr(t),
			}
			cluster = append(cluster, cfgs[i].Name+"="+cfgs[i].PeerURL)
		}
		members := make([]*embedded.Member, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range cfgs {
			cfgs[i].InitialCluster = strings.Join(cluster, ",")
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				members[i], errs[i] = embedded.Start(ctx, cfgs[i])
			})
		}
		wg.Wait()
		err := errors.Join(errs...)
		if err == nil {
			return members
		}
		for _, m := range members {
			if m != nil {
				m.Close()
			}
		}
		if attempt == 3 || !(errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")) {
			t.Fatalf("starting a %d-member cluster: %v", n, err)
		}
		t.Logf("starting a %d-member cluster again on other ports: %v", n, err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
