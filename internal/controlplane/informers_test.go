package controlplane

import (
	"context"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The shared factory starts its informers only once every sharing
// component has called Start, and then with the term's stop channel.
func TestTermInformersStartWhenAllSharersRegistered(t *testing.T) {
	// Nothing listens here: the informers, once started, only retry.
	client, err := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	term, stop := context.WithCancel(context.Background())
	shared := newTermInformers(client, 2, term.Done())
	defer shared.Shutdown()
	defer stop()

	shared.Core().V1().Pods().Informer()
	shared.Core().V1().Nodes().Informer()
	done, cancel := context.WithCancel(context.Background())
	cancel() // WaitForCacheSync then just reports the started informers
	started := func() int { return len(shared.WaitForCacheSync(done.Done())) }

	shared.Start(done.Done()) // first sharer; its own channel is ignored
	if n := started(); n != 0 {
		t.Fatalf("after 1 of 2 sharers called Start, %d informers started, want 0", n)
	}
	shared.Start(done.Done())
	if n := started(); n != 2 {
		t.Fatalf("after 2 of 2 sharers called Start, %d informers started, want 2", n)
	}
	// An informer asked for later starts on a further Start, as with the
	// factory itself.
	shared.Apps().V1().ReplicaSets().Informer()
	shared.Start(done.Done())
	if n := started(); n != 3 {
		t.Fatalf("after a later Start, %d informers started, want 3", n)
	}
}
