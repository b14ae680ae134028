// Package metrics holds the API server's Prometheus metrics, named and
// labelled as upstream kube-apiserver's so existing dashboards and queries
// work, on a registry of their own (not the process-global default).
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DurationBuckets are the request-duration histogram's buckets in seconds,
// upstream's.
var DurationBuckets = []float64{
	0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5,
	2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60,
}

// Request kinds of the in-flight gauge.
const (
	ReadOnly = "readOnly"
	Mutating = "mutating"
)

// APIMetrics is the API server's request metrics plus Go runtime and
// process metrics, all on one registry. Its methods are safe for
// concurrent use.
type APIMetrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	waits    *prometheus.HistogramVec
	rejected *prometheus.CounterVec
}

// QueueWaitBuckets are the queue-wait histogram's buckets in seconds,
// upstream's.
var QueueWaitBuckets = []float64{0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30}

// NewAPIMetrics returns metrics registered on a fresh registry, with the
// in-process components' metrics (see ObserveSchedulingAttempt).
func NewAPIMetrics() *APIMetrics {
	m := &APIMetrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out for each verb, API group, resource, subresource and HTTP response code.",
		}, []string{"verb", "group", "resource", "subresource", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds for each verb, API group, resource and subresource (WATCH and CONNECT excluded).",
			Buckets: DurationBuckets,
		}, []string{"verb", "group", "resource", "subresource"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_current_inflight_requests",
			Help: "Number of requests currently being served, per request kind (long-running requests excluded).",
		}, []string{"request_kind"}),
		waits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_flowcontrol_request_wait_duration_seconds",
			Help:    "Length of time a request spent waiting in its queue for an in-flight slot, by priority level and whether it was then executed.",
			Buckets: QueueWaitBuckets,
		}, []string{"priority_level", "execute"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_flowcontrol_rejected_requests_total",
			Help: "Number of requests rejected (429) by the in-flight limits, by priority level and reason (queue-full, time-out, cancelled).",
		}, []string{"priority_level", "reason"}),
	}
	m.registry.MustRegister(
		m.requests, m.duration, m.inflight, m.waits, m.rejected,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	registerComponents(m.registry)
	// Both kinds exist from the start, at zero, as upstream's do.
	m.inflight.WithLabelValues(ReadOnly)
	m.inflight.WithLabelValues(Mutating)
	return m
}

// Observe records one finished request. verb is the Kubernetes verb in any
// case (get, list, watch, create or post, update or put, patch, delete,
// deletecollection, connect); it is reported upper-case as upstream does,
// with create as POST and update as PUT. group is "" for the core group;
// code is the HTTP status. WATCH and CONNECT requests are counted but their
// duration (the life of a stream) is not observed.
func (m *APIMetrics) Observe(verb, group, resource, subresource string, code int, d time.Duration) {
	verb = canonicalVerb(verb)
	m.requests.WithLabelValues(verb, group, resource, subresource, strconv.Itoa(code)).Inc()
	if verb == "WATCH" || verb == "CONNECT" {
		return
	}
	m.duration.WithLabelValues(verb, group, resource, subresource).Observe(d.Seconds())
}

// InflightInc counts a request of kind ReadOnly or Mutating as in flight.
// Long-running requests (watches, exec, followed logs) should not be
// counted, as upstream does not.
func (m *APIMetrics) InflightInc(kind string) { m.inflight.WithLabelValues(kind).Inc() }

// InflightDec ends what InflightInc started.
func (m *APIMetrics) InflightDec(kind string) { m.inflight.WithLabelValues(kind).Dec() }

// ObserveQueueWait records a request of priorityLevel that waited d for
// an in-flight slot; executed is false if it was rejected then.
func (m *APIMetrics) ObserveQueueWait(priorityLevel string, executed bool, d time.Duration) {
	m.waits.WithLabelValues(priorityLevel, strconv.FormatBool(executed)).Observe(d.Seconds())
}

// ObserveRejected counts a request of priorityLevel the in-flight limits
// rejected, and why.
func (m *APIMetrics) ObserveRejected(priorityLevel, reason string) {
	m.rejected.WithLabelValues(priorityLevel, reason).Inc()
}

// RequestKind is the in-flight kind of a verb: ReadOnly for get, list and
// watch, Mutating otherwise.
func RequestKind(verb string) string {
	switch canonicalVerb(verb) {
	case "GET", "LIST", "WATCH":
		return ReadOnly
	default:
		return Mutating
	}
}

// Handler serves the registry in the Prometheus text or OpenMetrics format,
// for /metrics.
func (m *APIMetrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the registry the metrics live on, for callers that add
// collectors of their own.
func (m *APIMetrics) Registry() *prometheus.Registry { return m.registry }

func canonicalVerb(verb string) string {
	switch v := strings.ToUpper(verb); v {
	case "CREATE":
		return "POST"
	case "UPDATE":
		return "PUT"
	default:
		return v
	}
}
