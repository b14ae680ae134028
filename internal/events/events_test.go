package events

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/drover/drover/internal/testenv"
)

// countingRecorder counts the events that reach it, by involved object
// name and type.
type countingRecorder struct{ got map[string]int }

func (c *countingRecorder) Event(obj runtime.Object, eventtype, reason, message string) {
	c.got[obj.(*corev1.Pod).Name+"/"+eventtype]++
}

func (c *countingRecorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	c.Event(obj, eventtype, reason, fmt.Sprintf(messageFmt, args...))
}

func (c *countingRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventtype, reason, messageFmt string, args ...any) {
	c.Event(obj, eventtype, reason, fmt.Sprintf(messageFmt, args...))
}

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)}}
}

// TestFilterMatchesUpstream feeds the same events at the same (fake)
// times to client-go's correlator and to a Recorder and checks that the
// Recorder passes exactly the events the correlator does not skip: the
// burst, the refill after 5 minutes, and separate buckets per object,
// event type and source.
func TestFilterMatchesUpstream(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	upstream := record.NewEventCorrelatorWithOptions(record.CorrelatorOptions{Clock: clk})
	source := corev1.EventSource{Component: "replicaset-controller"}
	other := corev1.EventSource{Component: "scheduler"}
	counted := &countingRecorder{got: map[string]int{}}
	mine := Wrap(counted, scheme.Scheme, source, clk)
	otherCounted := &countingRecorder{got: map[string]int{}}
	theirs := Wrap(otherCounted, scheme.Scheme, other, clk)
	counterOf := map[*Recorder]*countingRecorder{mine: counted, theirs: otherCounted}

	n := 0
	step := func(src corev1.EventSource, r *Recorder, p *corev1.Pod, eventtype string) {
		t.Helper()
		n++
		msg := fmt.Sprintf("Created pod: p-%d", n)
		e := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", p.Name, n), Namespace: p.Namespace},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, APIVersion: "v1"},
			Reason:         "SuccessfulCreate", Message: msg, Type: eventtype, Source: src, Count: 1,
			FirstTimestamp: metav1.NewTime(clk.Now()), LastTimestamp: metav1.NewTime(clk.Now()),
		}
		res, err := upstream.EventCorrelate(e)
		if err != nil {
			t.Fatalf("EventCorrelate: %v", err)
		}
		before := counterOf[r].got[p.Name+"/"+eventtype]
		r.Eventf(p, eventtype, "SuccessfulCreate", "%s", msg)
		if passed := counterOf[r].got[p.Name+"/"+eventtype] > before; passed == res.Skip {
			t.Fatalf("event %d (%s %s at %s): upstream skip=%v, recorder passed=%v",
				n, p.Name, eventtype, clk.Since(start), res.Skip, passed)
		}
	}
	a, b := pod("a"), pod("b")
	for range 40 { // the burst of 25, then drops
		step(source, mine, a, corev1.EventTypeNormal)
	}
	if got := counted.got["a/Normal"]; got != SpamBurst {
		t.Fatalf("%d events of a passed, want the burst %d", got, SpamBurst)
	}
	for range 30 { // another object, another type, another source: own buckets
		step(source, mine, b, corev1.EventTypeNormal)
		step(source, mine, a, corev1.EventTypeWarning)
		step(other, theirs, a, corev1.EventTypeNormal)
	}
	if got := counted.got["b/Normal"] + counted.got["a/Warning"] + otherCounted.got["a/Normal"]; got != 3*SpamBurst {
		t.Fatalf("%d events passed in the other buckets, want %d", got, 3*SpamBurst)
	}
	clk.Step(299 * time.Second)
	step(source, mine, a, corev1.EventTypeNormal) // not yet
	clk.Step(time.Second)
	for range 3 { // one more after 5 minutes
		step(source, mine, a, corev1.EventTypeNormal)
	}
	clk.Step(20 * time.Minute)
	for range 10 { // four more after 20 minutes
		step(source, mine, a, corev1.EventTypeNormal)
	}
	if got := counted.got["a/Normal"]; got != SpamBurst+1+4 {
		t.Errorf("%d events of a passed, want %d", got, SpamBurst+1+4)
	}
	// Refused by the wrapped recorder anyway: no token taken.
	c := pod("c")
	for range 30 {
		mine.Event(c, "Bogus", "X", "y")
	}
	for range SpamBurst {
		step(source, mine, c, corev1.EventTypeNormal)
	}
	if got := counted.got["c/Normal"]; got != SpamBurst {
		t.Errorf("%d events of c passed after invalid ones, want %d", got, SpamBurst)
	}
}

// eventShape is what kubectl get events shows of one event.
type eventShape struct {
	Type, Reason, Message string
	Count                 int32
}

// TestSameEventsAsUpstream records the same 100 SuccessfulCreate events
// on two ReplicaSets, one through a Recorder and one through the plain
// broadcaster recorder, both into the API, and checks that the events
// stored are the same: 9 single ones, then one combined event counting
// the rest of the burst of 25.
func TestSameEventsAsUpstream(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	env.CreateNamespace(t, "ev")
	source := corev1.EventSource{Component: "replicaset-controller"}
	broadcaster := record.NewBroadcaster()
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: env.Kube.CoreV1().Events("")})
	plain := broadcaster.NewRecorder(scheme.Scheme, source)
	filtered := NewRecorder(broadcaster, scheme.Scheme, source)

	rsOf := func(name string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ev", UID: types.UID("uid-" + name)}}
	}
	up, wrapped := rsOf("upstream"), rsOf("wrapped")
	for i := range 100 {
		plain.Eventf(up, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s-%d", up.Name, i)
		filtered.Eventf(wrapped, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s-%d", up.Name, i)
	}
	shapes := func(name string) ([]eventShape, int32, error) {
		list, err := env.Kube.CoreV1().Events("ev").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
		if err != nil {
			return nil, 0, err
		}
		var out []eventShape
		var total int32
		for _, e := range list.Items {
			out = append(out, eventShape{e.Type, e.Reason, e.Message, e.Count})
			total += e.Count
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Message < out[j].Message })
		return out, total, nil
	}
	var want, got []eventShape
	testenv.Eventually(t, time.Minute, func() error {
		var wantTotal, gotTotal int32
		var err error
		if want, wantTotal, err = shapes(up.Name); err != nil {
			return err
		}
		if got, gotTotal, err = shapes(wrapped.Name); err != nil {
			return err
		}
		if wantTotal != SpamBurst || gotTotal != SpamBurst {
			return fmt.Errorf("event counts %d (upstream) and %d (wrapped), want %d", wantTotal, gotTotal, SpamBurst)
		}
		return nil
	})
	if len(want) != 10 {
		t.Errorf("upstream stored %d events, want 9 single and 1 combined: %+v", len(want), want)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("wrapped recorder stored\n%+v\nupstream\n%+v", got, want)
	}
}
