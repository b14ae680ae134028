// Package metricsapi is Drover's built-in metrics pipeline: the resource
// metrics API (metrics.k8s.io/v1beta1, PodMetrics and NodeMetrics) that
// `kubectl top` and the HPA controller read, as metrics-server serves it.
//
// A Server polls every node agent's kubelet-style /stats/summary every
// Options.Interval (nodes come from an informer), keeps the latest point
// per node and per pod, and answers
//
//	GET /apis/metrics.k8s.io/v1beta1/nodes[/{name}]
//	GET /apis/metrics.k8s.io/v1beta1/pods
//	GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods[/{name}]
//
// with labelSelector and fieldSelector (metadata.name, metadata.namespace)
// support, plus the group's discovery documents at /apis/metrics.k8s.io
// and /apis/metrics.k8s.io/v1beta1. CPU is a rate: the difference of the
// cumulative CPU time of two scrapes over their interval (the window), or,
// for the first scrape of a container, the agent's own rate.
//
// The API server mounts Handler under /apis/metrics.k8s.io and lists
// APIGroup in /apis.
package metricsapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Defaults of Options.
const (
	DefaultInterval    = 5 * time.Second
	DefaultTimeout     = 4 * time.Second
	DefaultConcurrency = 64
	// MaxScrapesPerSecond lengthens the interval of big clusters: each
	// scrape costs the agent a summary of all its pods and the server its
	// decoding; at 500 nodes every 5s that was 3% of the control plane's
	// CPU and as much of a simulated fleet's. 100 nodes keep the 5s
	// resolution, 500 get 25s, and no cluster more than MaxInterval.
	MaxScrapesPerSecond = 20
	// MaxInterval is metrics-server's default resolution, the longest
	// interval IntervalFor picks.
	MaxInterval = time.Minute
)

// GroupName is the API group served.
const GroupName = metricsv1beta1.GroupName

// Options tune a Server; zero values mean the defaults.
type Options struct {
	// Interval is how often every agent is scraped (the metric
	// resolution); default DefaultInterval. Clusters of more than
	// MaxScrapesPerSecond × Interval nodes are scraped less often (see
	// IntervalFor).
	Interval time.Duration
	// Timeout bounds one scrape of one agent; default DefaultTimeout.
	Timeout time.Duration
	// Concurrency is how many agents are scraped at once; default
	// DefaultConcurrency.
	Concurrency int
	// HTTPClient reaches the agents; default a plain-HTTP client.
	HTTPClient *http.Client
	// Resync is the informers' resync period; default 10 minutes.
	Resync time.Duration
	// Informers, when set, is a factory other readers of nodes and pods
	// share (one watch of each for all of them): Run takes its listers
	// from it and starts the informers it needs, which stop when Run's
	// context ends; its owner shuts it down. Without it Run has its own,
	// with only what serving needs of each object kept.
	Informers informers.SharedInformerFactory
}

// Server scrapes the agents and serves the metrics they report.
type Server struct {
	client kubernetes.Interface
	log    *slog.Logger
	opts   Options

	// Set by Run before synced is closed.
	nodes  corelisters.NodeLister
	pods   corelisters.PodLister
	synced chan struct{}

	mu        sync.RWMutex
	nodePts   map[string]nodePoint            // by node name
	podPts    map[string]map[podKey]podPoint  // by node name
	cumulated map[string]map[cpuKey]cpuSample // previous CPU samples by node name
	scraped   map[string]time.Time            // last successful scrape by node
}

// New returns a Server that lists nodes and pods with client. Call Run to
// scrape and Handler to serve.
func New(client kubernetes.Interface, logger *slog.Logger, opts Options) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: opts.Timeout}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     3 * opts.Interval,
		}}
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Minute
	}
	return &Server{
		client:    client,
		log:       logger.With("component", "metrics"),
		opts:      opts,
		synced:    make(chan struct{}),
		nodePts:   map[string]nodePoint{},
		podPts:    map[string]map[podKey]podPoint{},
		cumulated: map[string]map[cpuKey]cpuSample{},
		scraped:   map[string]time.Time{},
	}
}

// Run watches nodes and pods and scrapes every agent each interval until
// ctx is done, then returns nil. It returns an error only if it cannot
// start.
func (s *Server) Run(ctx context.Context) error {
	factory := s.opts.Informers
	if factory == nil {
		factory = informers.NewSharedInformerFactory(s.client, s.opts.Resync)
		defer factory.Shutdown()
	}
	nodeInf, podInf := factory.Core().V1().Nodes(), factory.Core().V1().Pods()
	if s.opts.Informers == nil {
		// Keep only what serving needs: names, labels, addresses.
		if err := podInf.Informer().SetTransform(trimPod); err != nil {
			return fmt.Errorf("metrics: pod informer: %w", err)
		}
		if err := nodeInf.Informer().SetTransform(trimNode); err != nil {
			return fmt.Errorf("metrics: node informer: %w", err)
		}
	}
	s.nodes, s.pods = nodeInf.Lister(), podInf.Lister()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nodeInf.Informer().HasSynced, podInf.Informer().HasSynced) {
		return nil
	}
	close(s.synced)
	for {
		started := time.Now()
		n := s.scrapeAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(started.Add(IntervalFor(s.opts.Interval, n)))):
		}
	}
}

// IntervalFor is the scrape interval for a cluster of n nodes: interval,
// or longer, so that no more than MaxScrapesPerSecond nodes are scraped a
// second, up to MaxInterval.
func IntervalFor(interval time.Duration, n int) time.Duration {
	return max(interval, min(time.Duration(n)*time.Second/MaxScrapesPerSecond, MaxInterval))
}

// trimPod keeps a pod's identity, labels, node and phase.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, Labels: p.Labels,
			ResourceVersion: p.ResourceVersion, CreationTimestamp: p.CreationTimestamp, DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}, nil
}

// trimNode keeps a node's identity, labels and agent endpoint.
func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name, UID: n.UID, Labels: n.Labels,
			ResourceVersion: n.ResourceVersion, CreationTimestamp: n.CreationTimestamp,
		},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses, DaemonEndpoints: n.Status.DaemonEndpoints},
	}, nil
}

// scrapeAll scrapes every node once, at most Concurrency at a time, and
// returns how many there are.
func (s *Server) scrapeAll(ctx context.Context) int {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		s.log.Warn("listing nodes", "err", err)
		return 0
	}
	sem := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	for _, n := range nodes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.scrapeNode(ctx, n)
		})
	}
	wg.Wait()
	s.forgetGoneNodes(nodes)
	return len(nodes)
}

func (s *Server) forgetGoneNodes(nodes []*corev1.Node) {
	live := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		live[n.Name] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.scraped {
		if !live[name] {
			s.dropLocked(name)
			delete(s.cumulated, name)
			delete(s.scraped, name)
		}
	}
	for name := range s.nodePts {
		if !live[name] {
			s.dropLocked(name)
		}
	}
}

func (s *Server) dropLocked(node string) {
	delete(s.nodePts, node)
	delete(s.podPts, node)
}

// scrapeNode reads one agent's summary and replaces the node's points;
// on failure the node's points are dropped, as metrics-server does, so
// stale usage is never served.
func (s *Server) scrapeNode(ctx context.Context, n *corev1.Node) {
	sum, err := s.fetch(ctx, n)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("scraping node", "node", n.Name, "err", err)
		}
		s.mu.Lock()
		s.dropLocked(n.Name)
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cumulated[n.Name]
	b := decodeSummary(sum, prev, s.opts.Interval)
	s.cumulated[n.Name] = b.samples
	s.scraped[n.Name] = time.Now()
	if b.node != nil {
		s.nodePts[n.Name] = *b.node
	} else {
		delete(s.nodePts, n.Name)
	}
	s.podPts[n.Name] = b.pods
}

// fetch GETs the node agent's /stats/summary.
func (s *Server) fetch(ctx context.Context, n *corev1.Node) (*summary, error) {
	url, err := SummaryURL(n)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return readSummary(resp.Body)
}

// SummaryURL is the address of the node agent's /stats/summary: the
// node's InternalIP (else ExternalIP, else Hostname) and its
// daemonEndpoints.kubeletEndpoint port, over plain HTTP.
func SummaryURL(n *corev1.Node) (string, error) {
	host := ""
	for _, want := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range n.Status.Addresses {
			if a.Type == want && host == "" {
				host = a.Address
			}
		}
	}
	port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
	if host == "" || port == 0 {
		return "", fmt.Errorf("node %s reports no agent endpoint (address and daemonEndpoints.kubeletEndpoint.port)", n.Name)
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(int(port))) + "/stats/summary", nil
}
