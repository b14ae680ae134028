package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKill9LosesNothingAcknowledged writes from several clients, kills the
// server with SIGKILL in the middle, restarts it on the same data dir and
// checks that every create the server acknowledged is there.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir, listen := t.TempDir(), freeAddr(t)
	s := startServer(t, dir, listen)
	cs := s.clientset(t)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "load"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []string
		count atomic.Int64
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("cm-%d-%d", w, i)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cs.CoreV1().ConfigMaps("load").Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": name}}, metav1.CreateOptions{})
				cancel()
				if err != nil {
					continue // unacknowledged: may or may not exist
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
				count.Add(1)
			}
		}(w)
	}
	// Kill once a good number of writes have been acknowledged.
	deadline := time.Now().Add(60 * time.Second)
	for count.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s.kill9(t)
	close(stop)
	wg.Wait()
	if len(acked) < 200 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}

	s2 := startServer(t, dir, listen)
	list, err := s2.clientset(t).CoreV1().ConfigMaps("load").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	missing := 0
	for _, name := range acked {
		if !have[name] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged creates lost after kill -9", missing, len(acked))
	}
	t.Logf("%d acknowledged creates, all present after kill -9 and restart", len(acked))
}
