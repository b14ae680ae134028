package simfleet

import (
	"context"
	"log/slog"

	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/drover/drover/internal/events"
)

// Defaults of the fleet's event sink.
const (
	// eventWorkers is how many events the fleet posts at once.
	eventWorkers = 64
	// eventCacheSize is the shared correlator's LRU size: client-go's
	// 4096 is per kubelet, and the fleet's one correlator serves every
	// node's pods.
	eventCacheSize = 1 << 16
)

// newEventBroadcaster is the fleet's one event broadcaster: each node makes
// its recorder (source kubelet, host: the node) from it, so every event is
// correlated (deduplicated, aggregated and spam-filtered per node and
// object, as the kubelet's) by one goroutine, and posted by an events.AsyncSink.
// A broadcaster per node, as each agent makes on its own, cost a 500-node
// fleet 1000 goroutines, two 1000-event queues per node (28 MB of live heap
// for the GC to mark) and one serial poster per node.
func newEventBroadcaster(ctx context.Context, core typedcorev1.CoreV1Interface, workers int, log *slog.Logger) (record.EventBroadcaster, *events.AsyncSink) {
	b := record.NewBroadcaster(record.WithContext(ctx),
		record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheSize}))
	sink := events.NewAsyncSink(ctx, events.NewPoster(ctx, core), workers, log)
	b.StartRecordingToSink(sink)
	return b, sink
}
