package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/util/workqueue"
)

// Scheduling attempt results, upstream's values of the result label.
const (
	ResultScheduled     = "scheduled"
	ResultUnschedulable = "unschedulable"
	ResultError         = "error"
)

// Metrics of the in-process components (scheduler, controllers' work
// queues, agents), named as upstream's. They are process-wide, as
// client-go's work queue metrics must be, and NewAPIMetrics registers them
// on the API server's /metrics, so a control plane (and `drover up`'s
// agent) shows them there. Work queues of the same name (every agent's
// "pods" queue in a simulated fleet) share their series.
var (
	schedulingAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scheduler_schedule_attempts_total",
		Help: "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
	}, []string{"result"})
	schedulingAlgorithm = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scheduler_scheduling_algorithm_duration_seconds",
		Help:    "Scheduling algorithm latency in seconds (filtering and scoring the nodes for one pod), by the result.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 20),
	}, []string{"result"})
	podStart = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kubelet_pod_start_duration_seconds",
		Help:    "Duration in seconds from the agent seeing a pod for the first time to the pod's status being written Running.",
		Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600},
	})

	wqDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "workqueue_depth", Help: "Current depth of workqueue",
	}, []string{"name"})
	wqAdds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "workqueue_adds_total", Help: "Total number of adds handled by workqueue",
	}, []string{"name"})
	wqLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "workqueue_queue_duration_seconds", Help: "How long in seconds an item stays in workqueue before being requested.",
		Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12),
	}, []string{"name"})
	wqWork = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "workqueue_work_duration_seconds", Help: "How long in seconds processing an item from workqueue takes.",
		Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12),
	}, []string{"name"})
	wqUnfinished = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "workqueue_unfinished_work_seconds",
		Help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.",
	}, []string{"name"})
	wqLongest = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "workqueue_longest_running_processor_seconds",
		Help: "How many seconds has the longest running processor for workqueue been running.",
	}, []string{"name"})
	wqRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "workqueue_retries_total", Help: "Total number of retries handled by workqueue",
	}, []string{"name"})

	componentCollectors = []prometheus.Collector{
		schedulingAttempts, schedulingAlgorithm, podStart,
		wqDepth, wqAdds, wqLatency, wqWork, wqUnfinished, wqLongest, wqRetries,
	}
	providerOnce sync.Once

	componentsOnce    sync.Once
	componentsHandler http.Handler
)

// ComponentsHandler serves the component metrics, with the Go runtime's
// and the process's, on a registry of their own: /metrics of a process
// without an API server (a node agent, a simulated fleet). Call it before
// creating work queues that should have metrics. One handler serves the
// whole process.
func ComponentsHandler() http.Handler {
	componentsOnce.Do(func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		registerComponents(reg)
		componentsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	})
	return componentsHandler
}

// ObserveSchedulingAttempt records one scheduling attempt: its result
// (ResultScheduled, ResultUnschedulable or ResultError) and how long the
// algorithm took.
func ObserveSchedulingAttempt(result string, d time.Duration) {
	schedulingAttempts.WithLabelValues(result).Inc()
	schedulingAlgorithm.WithLabelValues(result).Observe(d.Seconds())
}

// ObservePodStart records how long an agent took from first seeing a pod
// to writing it Running.
func ObservePodStart(d time.Duration) { podStart.Observe(d.Seconds()) }

// registerComponents puts the component metrics on reg and makes them
// client-go's work queue metrics (once per process: client-go takes the
// first provider only, and only queues created after it get metrics).
func registerComponents(reg prometheus.Registerer) {
	providerOnce.Do(func() { workqueue.SetProvider(workqueueProvider{}) })
	for _, c := range componentCollectors {
		reg.MustRegister(c)
	}
}

// workqueueProvider implements workqueue.MetricsProvider with the
// workqueue_* series above.
type workqueueProvider struct{}

var _ workqueue.MetricsProvider = workqueueProvider{}

func (workqueueProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return wqDepth.WithLabelValues(name)
}
func (workqueueProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return wqAdds.WithLabelValues(name)
}
func (workqueueProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return wqLatency.WithLabelValues(name)
}
func (workqueueProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return wqWork.WithLabelValues(name)
}
func (workqueueProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqUnfinished.WithLabelValues(name)
}
func (workqueueProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqLongest.WithLabelValues(name)
}
func (workqueueProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return wqRetries.WithLabelValues(name)
}
