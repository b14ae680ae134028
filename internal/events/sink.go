package events

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/drover/drover/internal/restwrite"
)

// Defaults of an AsyncSink.
const (
	// sinkQueue is each worker's backlog; beyond it the broadcaster's own
	// queue of 1000 fills and then drops, as client-go's does.
	sinkQueue = 512
	// sinkTries is how often an event that failed to reach the API server
	// is tried, as client-go's broadcaster does (12 tries).
	sinkTries = 12
	// sinkRetryDelay is the wait between tries (client-go's 10s).
	sinkRetryDelay = 10 * time.Second
)

// AsyncSink is a record.EventSink that returns at once and posts each
// event on one of its workers, chosen by the involved object's UID so that
// an object's events (a creation, then the patches counting its repeats)
// reach the API server in order. The broadcaster calls a sink from one
// goroutine: with client-go's EventSinkImpl each event waits for the one
// before it to be written, and under load (a scheduler binding hundreds of
// pods a second, a fleet of simulated nodes) the broadcaster's queue of
// 1000 fills and it drops events.
type AsyncSink struct {
	ctx   context.Context
	next  record.EventSink
	log   *slog.Logger
	work  []chan sinkOp
	wg    sync.WaitGroup
	retry time.Duration
}

// sinkOp is one event to create, or to patch when patch is set.
type sinkOp struct {
	ev    *corev1.Event
	patch []byte
}

// NewAsyncSink returns a sink that writes events to next from workers
// goroutines until ctx ends; events still queued then are dropped.
func NewAsyncSink(ctx context.Context, next record.EventSink, workers int, log *slog.Logger) *AsyncSink {
	s := &AsyncSink{ctx: ctx, next: next, log: log, work: make([]chan sinkOp, max(workers, 1)), retry: sinkRetryDelay}
	for i := range s.work {
		ch := make(chan sinkOp, sinkQueue)
		s.work[i] = ch
		s.wg.Go(func() {
			for {
				select {
				case op := <-ch:
					s.post(op)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return s
}

// Wait returns once the workers have stopped (ctx ended).
func (s *AsyncSink) Wait() { s.wg.Wait() }

// Create implements record.EventSink. The event's name is set by the
// recorder, so what the correlator keeps of it names the event the API
// server will hold.
func (s *AsyncSink) Create(ev *corev1.Event) (*corev1.Event, error) {
	return s.enqueue(sinkOp{ev: ev})
}

// Patch implements record.EventSink: the correlator's patch of a repeated
// event's count, message and lastTimestamp.
func (s *AsyncSink) Patch(old *corev1.Event, data []byte) (*corev1.Event, error) {
	return s.enqueue(sinkOp{ev: old, patch: data})
}

// Update implements record.EventSink; the broadcaster does not call it.
func (s *AsyncSink) Update(ev *corev1.Event) (*corev1.Event, error) {
	return s.next.Update(ev)
}

func (s *AsyncSink) enqueue(op sinkOp) (*corev1.Event, error) {
	select {
	case s.work[shard(op.ev.InvolvedObject.UID, len(s.work))] <- op:
		return op.ev, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func shard(uid types.UID, n int) int {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return int(h.Sum32() % uint32(n))
}

// post writes one event as client-go's recordEvent does: a patch of an
// event the API server no longer has becomes a creation; the server's
// rejection is final; anything else (no answer) is tried again.
func (s *AsyncSink) post(op sinkOp) {
	for try := 1; ; try++ {
		var err error
		if op.patch != nil {
			_, err = s.next.Patch(op.ev, op.patch)
		}
		if op.patch == nil || apierrors.IsNotFound(err) {
			ev := *op.ev
			ev.ResourceVersion = ""
			_, err = s.next.Create(&ev)
		}
		var status apierrors.APIStatus
		if err == nil || errors.As(err, &status) {
			if err != nil && !apierrors.IsAlreadyExists(err) {
				s.log.Warn("server rejected event", "reason", op.ev.Reason, "object", op.ev.InvolvedObject.Name, "err", err)
			}
			return
		}
		if try >= sinkTries || s.ctx.Err() != nil {
			s.log.Warn("unable to write event", "reason", op.ev.Reason, "object", op.ev.InvolvedObject.Name, "err", err)
			return
		}
		select {
		case <-time.After(s.retry):
		case <-s.ctx.Done():
			return
		}
	}
}

// poster is a record.EventSink that writes events as the typed
// client's EventSinkImpl does (protobuf, the same requests) but does not
// decode the server's answers: the AsyncSink makes no use of them, and
// decoding each posted event back was a tenth of what posting it cost the
// fleet. It sends them with restwrite, without client-go's request
// machinery.
type poster struct {
	ctx context.Context
	rc  *rest.RESTClient
}

// NewPoster returns a sink that writes events as client-go's EventSinkImpl
// does but does not decode the answers (an AsyncSink makes no use of
// them), over core's REST client; the typed EventSinkImpl when core has
// none of its own (a fake, a wrapper).
func NewPoster(ctx context.Context, core typedcorev1.CoreV1Interface) record.EventSink {
	rc, ok := core.RESTClient().(*rest.RESTClient)
	if !ok || rc == nil {
		return &typedcorev1.EventSinkImpl{Interface: core.Events("")}
	}
	return poster{ctx: ctx, rc: rc}
}

// write sends ev (or, with patch, the patch of it) as the typed client
// would, through restwrite: posting an event was, beyond its HTTP/2
// stream, mostly client-go's request bookkeeping.
func (p poster) write(method string, ev *corev1.Event, name string, patch []byte) error {
	req := restwrite.Request{Method: method, Path: restwrite.Path(p.rc.APIVersion(), ev.Namespace, "events", name, ""), Name: name,
		Resource: corev1.Resource("events")}
	if patch != nil {
		req.Body, req.ContentType = patch, string(types.StrategicMergePatchType)
	} else {
		e := *ev
		e.TypeMeta = metav1.TypeMeta{APIVersion: p.rc.APIVersion().String(), Kind: "Event"}
		body, err := restwrite.Encode(&e)
		if err != nil {
			return err
		}
		req.Body = body
	}
	_, err := restwrite.Do(p.ctx, p.rc, req)
	return err
}

// Create implements record.EventSink; it returns ev itself.
func (p poster) Create(ev *corev1.Event) (*corev1.Event, error) {
	return ev, p.write(http.MethodPost, ev, "", nil)
}

// Patch implements record.EventSink (a strategic merge patch of the
// event); it returns ev itself.
func (p poster) Patch(ev *corev1.Event, data []byte) (*corev1.Event, error) {
	return ev, p.write(http.MethodPatch, ev, ev.Name, data)
}

// Update implements record.EventSink; it returns ev itself.
func (p poster) Update(ev *corev1.Event) (*corev1.Event, error) {
	return ev, p.write(http.MethodPut, ev, ev.Name, nil)
}
