package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage/cacher"
	"github.com/drover/drover/internal/storage/etcd"
)

// TestEventTTL: with EventTTL set, events written through client-go expire
// that long after their last write (a watcher sees them deleted), a patched
// event lives on for a fresh TTL, and other objects stay.
func TestEventTTL(t *testing.T) {
	// Long enough that a loaded machine patches "repeated" well before its
	// first lease ends, and that the two expiries are seconds apart (etcd
	// checks leases every 500ms).
	const ttl = 5 * time.Second
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The watch cache closes its store when closed: not the shared one.
	m, err := cacher.NewMulti(unclosedStore{shared.store}, cacher.Options{Logger: quiet}, apiserver.StoragePrefixes(registry.All())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	authn := auth.NewTokenAuthenticator()
	authn.Add(adminToken, auth.User{Name: "admin", Groups: []string{"system:masters"}})
	h, err := apiserver.New(apiserver.Config{
		Storage: m, Resources: registry.All(), Authenticator: authn, Logger: quiet, EventTTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := kubernetes.NewForConfigOrDie(&rest.Config{Host: srv.URL, BearerToken: adminToken, QPS: -1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns = "event-ttl"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	events := client.CoreV1().Events(ns)
	w, err := events.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	newEvent := func(name string) *corev1.Event {
		now := metav1.Now()
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: "kept"},
			Reason:         "Test", Message: name, Type: corev1.EventTypeNormal, Count: 1,
			FirstTimestamp: now, LastTimestamp: now,
		}
	}
	start := time.Now()
	if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Create(ctx, newEvent("repeated"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Create(ctx, newEvent("once"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Patch "repeated" as client-go's correlator does a repeat, once its
	// first lease has at most two seconds left: it must then outlive
	// "once" by about three seconds.
	key := "/registry/core/events/" + ns + "/repeated"
	firstLease := leaseLeft(ctx, t, key, func(left int64) bool { return left <= 2 })
	patch := []byte(`{"count":2,"lastTimestamp":"` + time.Now().UTC().Format(time.RFC3339) + `"}`)
	if _, err := events.Patch(ctx, "repeated", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching the repeated event: %v", err)
	}
	if secondLease := leaseLeft(ctx, t, key, func(int64) bool { return true }); secondLease == firstLease {
		t.Fatalf("the patched event kept its lease %x; want a fresh one", firstLease)
	}

	var deleted []string
	for len(deleted) < 2 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed; deleted so far %q", deleted)
			}
			if ev.Type == watch.Error {
				t.Fatalf("watch error: %v", apierrors.FromObject(ev.Object))
			}
			if ev.Type != watch.Deleted {
				continue
			}
			name := ev.Object.(*corev1.Event).Name
			t.Logf("event %s deleted %v after it was created (TTL %v)", name, time.Since(start).Round(10*time.Millisecond), ttl)
			deleted = append(deleted, name)
			if name == "once" {
				// The patched one is still there.
				if got, err := events.Get(ctx, "repeated", metav1.GetOptions{}); err != nil || got.Count != 2 {
					t.Fatalf("the repeated event when the other expired: %v, %v; want it with count 2", got, err)
				}
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for the events to expire; deleted %q", deleted)
		}
	}
	if deleted[0] != "once" || deleted[1] != "repeated" {
		t.Fatalf("deleted %q, want once, then the patched repeated", deleted)
	}
	for _, name := range []string{"once", "repeated"} {
		if _, err := events.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("getting expired event %s: err = %v, want NotFound", name, err)
		}
	}
	if list, err := events.List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Fatalf("events left: %v, %v; want none", list, err)
	}
	if _, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("the configmap written with the events: %v; want it kept", err)
	}
}

// leaseLeft polls key's etcd lease until done(seconds left) holds, and
// returns the lease; it fails the test when the key has no lease.
func leaseLeft(ctx context.Context, t *testing.T, key string, done func(left int64) bool) int64 {
	t.Helper()
	c := shared.member.Client()
	for {
		resp, err := c.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("raw get %s: %v, %v", key, resp, err)
		}
		id := resp.Kvs[0].Lease
		if id == 0 {
			t.Fatalf("%s has no lease", key)
		}
		ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(id))
		if err != nil {
			t.Fatalf("lease of %s: %v", key, err)
		}
		if done(ttl.TTL) {
			return id
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting on the lease of %s: %v", key, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// unclosedStore is the shared etcd store, left open by Close.
type unclosedStore struct{ *etcd.Store }

func (unclosedStore) Close() error { return nil }
