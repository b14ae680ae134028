package events

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/drover/drover/internal/testenv"
)

// An event the API server rejects is not tried again: the worker posting
// the object's events goes on to the next one.
func TestAsyncSinkDropsRejectedEvents(t *testing.T) {
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := NewAsyncSink(ctx, NewPoster(ctx, env.Kube.CoreV1()), 1, slog.New(slog.DiscardHandler))
	defer sink.Wait()
	defer cancel()
	sink.retry = time.Hour // a retried rejection would hold the one worker past the test's deadline
	now := metav1.Now()
	mk := func(ns string) *corev1.Event {
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "p.1", Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "p", UID: "uid-p"},
			Reason:         "Started", Message: "Started container app", Type: corev1.EventTypeNormal, Count: 1,
			FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet", Host: "n"},
		}
	}
	// Invalid: an event needs a reason and involvedObject's namespace must
	// match its own.
	bad := mk("default")
	bad.Name, bad.InvolvedObject.Namespace = "bad.1", "elsewhere"
	if _, err := sink.Create(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Create(mk("default")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		_, err := env.Kube.CoreV1().Events("default").Get(ctx, "p.1", metav1.GetOptions{})
		return err
	})
	if _, err := env.Kube.CoreV1().Events("default").Get(ctx, "bad.1", metav1.GetOptions{}); err == nil {
		t.Error("the invalid event was stored")
	}
}

// BenchmarkEventCreate posts events through the typed client's sink and
// through NewPoster's sink, which does not decode the answers.
func BenchmarkEventCreate(b *testing.B) {
	env := testenv.Start(b)
	ctx := context.Background()
	seq := 0 // names stay unique across the benchmark's runs
	for _, tc := range []struct {
		name string
		sink record.EventSink
	}{
		{"typed", &typedcorev1.EventSinkImpl{Interface: env.Kube.CoreV1().Events("")}},
		{"poster", NewPoster(ctx, env.Kube.CoreV1())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			now := metav1.Now()
			for range b.N {
				seq++
				ev := &corev1.Event{
					ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("p.%d", seq), Namespace: "default"},
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p", UID: "uid-p", APIVersion: "v1"},
					Reason:         "Started", Message: "Started container app", Type: corev1.EventTypeNormal, Count: 1,
					FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet", Host: "n"},
				}
				if _, err := tc.sink.Create(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
