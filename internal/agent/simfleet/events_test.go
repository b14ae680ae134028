package simfleet

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/events"
	"github.com/drover/drover/internal/testenv"
)

// eventsAbout lists the events about the object named name in ns.
func eventsAbout(ctx context.Context, env *testenv.Env, ns, name string) ([]corev1.Event, error) {
	list, err := env.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// The fleet's one broadcaster correlates each node's events as a kubelet's
// would: an event repeated about the same object is one Event whose count
// grows (a creation, then patches, in order through the async sink), under
// the node's own source.
func TestFleetEventsAreCorrelatedPerObject(t *testing.T) {
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, sink := newEventBroadcaster(ctx, env.Kube.CoreV1(), 4, slog.New(slog.DiscardHandler))
	defer sink.Wait()
	defer b.Shutdown()
	defer cancel()
	if _, ok := events.NewPoster(ctx, env.Kube.CoreV1()).(*typedcorev1.EventSinkImpl); ok {
		t.Fatal("a clientset's events are not posted by events.NewPoster's poster: the test would not exercise it")
	}
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: "node-a"})
	ref := &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web", UID: "uid-web", APIVersion: "v1"}
	other := &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "db", UID: "uid-db", APIVersion: "v1"}
	for range 3 {
		rec.Eventf(ref, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s", "app")
	}
	rec.Eventf(other, corev1.EventTypeNormal, "Started", "Started container %s", "db")

	testenv.Eventually(t, 30*time.Second, func() error {
		evs, err := eventsAbout(ctx, env, "default", "web")
		if err != nil {
			return err
		}
		if len(evs) != 1 {
			return fmt.Errorf("%d events about web, want 1 counted 3 times", len(evs))
		}
		e := evs[0]
		if e.Count != 3 {
			return fmt.Errorf("event count %d, want 3", e.Count)
		}
		if e.Source != (corev1.EventSource{Component: "kubelet", Host: "node-a"}) || e.Reason != "BackOff" || e.Type != corev1.EventTypeWarning ||
			e.Message != "Back-off restarting failed container app" || e.InvolvedObject.UID != "uid-web" {
			return fmt.Errorf("event %+v is not the recorded one", e)
		}
		return nil
	})
	// db's event is posted by another worker than web's: it may come later.
	testenv.Eventually(t, 30*time.Second, func() error {
		evs, err := eventsAbout(ctx, env, "default", "db")
		if err != nil {
			return err
		}
		if len(evs) != 1 || evs[0].Count != 1 || evs[0].Reason != "Started" {
			return fmt.Errorf("events about db: %+v, want one Started", evs)
		}
		return nil
	})
}

// The fleet's client has no client-side rate limiter (the nodes would
// share one bucket), and RESTConfig leaves its argument alone.
func TestRESTConfigHasNoRateLimiter(t *testing.T) {
	in := &rest.Config{Host: "https://127.0.0.1:6443", QPS: 5, Burst: 10}
	out := RESTConfig(in)
	if in.QPS != 5 || in.Burst != 10 {
		t.Errorf("RESTConfig changed its argument: QPS %v burst %d", in.QPS, in.Burst)
	}
	c, err := kubernetes.NewForConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if rl := c.CoreV1().RESTClient().GetRateLimiter(); rl != nil {
		t.Errorf("fleet client has rate limiter %T, want none", rl)
	}
	c, err = kubernetes.NewForConfig(in)
	if err != nil {
		t.Fatal(err)
	}
	if c.CoreV1().RESTClient().GetRateLimiter() == nil {
		t.Error("a client of the original config has no rate limiter either: the test shows nothing")
	}
}
