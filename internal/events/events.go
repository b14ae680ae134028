// Package events makes event recorders that drop spam before it costs
// anything.
//
// client-go's broadcaster correlates every event it is given (aggregation,
// then a strategic merge patch against the last similar event) and only
// then applies its spam filter (a token bucket per source and involved
// object: a burst of 25, then one every 5 minutes), so an event the filter
// drops has already paid for JSON encoding and a patch. A controller that
// creates 10,000 pods for one ReplicaSet records 10,000 SuccessfulCreate
// events on it, of which the filter keeps 25.
//
// A Recorder applies the same filter, with the same key and limits, to
// each event before it enters the broadcaster, so a dropped event costs a
// reference, a key and a token bucket check. The events that pass are the
// ones client-go's own filter passes, and the broadcaster aggregates them
// as upstream does. One difference: upstream's aggregation also counts the
// events its filter then drops, so when the bucket refills (5 minutes
// later) its combined event's count jumps by them; here the count grows by
// the events that were recorded.
package events

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
)

// Spam limits of client-go's default event correlator, per source and
// involved object (and event type).
const (
	// SpamBurst is how many events pass before the rate applies.
	SpamBurst = 25
	// SpamQPS is the rate after the burst: one event every 5 minutes.
	SpamQPS = 1. / 300.
	// lruSize is how many source+object keys the filter remembers, as
	// client-go's correlator.
	lruSize = 4096
)

// Recorder is a record.EventRecorder that applies client-go's spam filter
// before handing an event to the recorder it wraps.
type Recorder struct {
	next   record.EventRecorder
	scheme *runtime.Scheme
	source corev1.EventSource

	mu     sync.Mutex // the filter's LRU cache is not safe for concurrent use
	filter *record.EventSourceObjectSpamFilter
}

var _ record.EventRecorder = (*Recorder)(nil)

// NewRecorder returns broadcaster's recorder for source, with spam dropped
// before it reaches the broadcaster.
func NewRecorder(broadcaster record.EventBroadcaster, scheme *runtime.Scheme, source corev1.EventSource) *Recorder {
	return Wrap(broadcaster.NewRecorder(scheme, source), scheme, source, clock.RealClock{})
}

// Wrap filters the events given to next, a recorder for source that
// builds references with scheme, timing the token buckets with clk.
func Wrap(next record.EventRecorder, scheme *runtime.Scheme, source corev1.EventSource, clk clock.PassiveClock) *Recorder {
	return &Recorder{
		next:   next,
		scheme: scheme,
		source: source,
		filter: record.NewEventSourceObjectSpamFilter(lruSize, SpamBurst, SpamQPS, clk, spamKey),
	}
}

// spamKey is client-go's (unexported) getSpamKey: the source, the
// involved object and the event type.
func spamKey(e *corev1.Event) string {
	o := &e.InvolvedObject
	return e.Source.Component + e.Source.Host + o.Kind + o.Namespace + o.Name + string(o.UID) + o.APIVersion + e.Type
}

// allow reports whether an event of eventtype about object gets past the
// spam filter, consuming a token if so. An event the wrapped recorder
// would refuse anyway (no reference, unknown type) is let through to it,
// without a token, as client-go refuses it before its filter.
func (r *Recorder) allow(object runtime.Object, eventtype string) bool {
	ref, err := reference.GetReference(r.scheme, object)
	if err != nil || !util.ValidateEventType(eventtype) {
		return true
	}
	e := corev1.Event{InvolvedObject: *ref, Source: r.source, Type: eventtype}
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.filter.Filter(&e)
}

// Event records an event unless it is spam.
func (r *Recorder) Event(object runtime.Object, eventtype, reason, message string) {
	if r.allow(object, eventtype) {
		r.next.Event(object, eventtype, reason, message)
	}
}

// Eventf records an event unless it is spam; the message is formatted
// only if it is recorded.
func (r *Recorder) Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if r.allow(object, eventtype) {
		r.next.Eventf(object, eventtype, reason, messageFmt, args...)
	}
}

// AnnotatedEventf records an annotated event unless it is spam.
func (r *Recorder) AnnotatedEventf(object runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any) {
	if r.allow(object, eventtype) {
		r.next.AnnotatedEventf(object, annotations, eventtype, reason, messageFmt, args...)
	}
}
