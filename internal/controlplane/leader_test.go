package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/storage/embedded"
)

// actors records which servers' leader-only components are running.
type actors struct {
	mu      sync.Mutex
	running map[string]int
	ever    map[string]bool
}

func (a *actors) component(server string) Component {
	return Component{Name: "probe", LeaderOnly: true, Run: func(ctx context.Context, _ Clients, _ *slog.Logger) error {
		a.mu.Lock()
		a.running[server]++
		a.ever[server] = true
		a.mu.Unlock()
		<-ctx.Done()
		a.mu.Lock()
		a.running[server]--
		a.mu.Unlock()
		return nil
	}}
}

// acting returns the servers whose component runs now.
func (a *actors) acting() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for s, n := range a.running {
		if n > 0 {
			out = append(out, s)
		}
	}
	return out
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOnlyTheLeaderActs runs two servers on one etcd: exactly one runs
// the leader-only components, and when it stops the other takes over.
func TestOnlyTheLeaderActs(t *testing.T) {
	member, err := embedded.Start(context.Background(), embedded.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Close() })
	a := &actors{running: map[string]int{}, ever: map[string]bool{}}
	le := LeaderElection{LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}
	servers := map[string]*started{}
	for _, name := range []string{"one", "two"} {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan Info, 1)
		done := make(chan error, 1)
		le := le
		le.Identity = name
		go func() {
			done <- Run(ctx, Config{
				DataDir: t.TempDir(), Listen: "127.0.0.1:0", EtcdEndpoints: member.Endpoints(),
				Logger: testLogger(t), Components: []Component{a.component(name)}, LeaderElection: le,
				Ready: func(i Info) { ready <- i },
			})
		}()
		s := &started{cancel: cancel, done: done}
		t.Cleanup(func() { s.stop(t) })
		select {
		case s.info = <-ready:
		case err := <-done:
			done <- err // let stop see it too
			t.Fatalf("server %s: %v", name, err)
		}
		servers[name] = s
	}
	var leader string
	waitUntil(t, 30*time.Second, func() error {
		if got := a.acting(); len(got) != 1 {
			return fmt.Errorf("acting servers %v, want exactly one", got)
		}
		leader = a.acting()[0]
		return nil
	})
	// The lease names the leader.
	clients, err := newClients(servers["one"].info.RestConfig, servers["one"].info.URL)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := clients.Kube.CoordinationV1().Leases(metav1.NamespaceSystem).Get(context.Background(), LeaderLeaseName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != leader {
		t.Fatalf("lease %+v (err %v), want holder %s", lease.Spec, err, leader)
	}
	// Several renewals later still exactly one.
	waitUntil(t, 30*time.Second, func() error {
		l, err := clients.Kube.CoordinationV1().Leases(metav1.NamespaceSystem).Get(context.Background(), LeaderLeaseName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !l.Spec.RenewTime.After(lease.Spec.RenewTime.Add(time.Second)) {
			return fmt.Errorf("lease not renewed yet")
		}
		if got := a.acting(); len(got) != 1 || got[0] != leader {
			return fmt.Errorf("acting %v while %s leads", got, leader)
		}
		return nil
	})
	other := map[string]string{"one": "two", "two": "one"}[leader]
	servers[leader].stop(t)
	// A cleanly stopped leader has released its lease before it stopped
	// serving (its elector's connection is its own, closed first).
	otherClients, err := newClients(servers[other].info.RestConfig, servers[other].info.URL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := otherClients.Kube.CoordinationV1().Leases(metav1.NamespaceSystem).Get(context.Background(), LeaderLeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == leader {
		t.Errorf("the stopped leader %s still holds the lease", leader)
	}
	waitUntil(t, 30*time.Second, func() error {
		if got := a.acting(); len(got) != 1 || got[0] != other {
			return fmt.Errorf("acting %v, want %s to take over", got, other)
		}
		return nil
	})
}
