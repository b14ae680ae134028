package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/controller/clusterroleaggregation"
	"github.com/drover/drover/internal/controller/deployment"
	"github.com/drover/drover/internal/controller/disruption"
	"github.com/drover/drover/internal/controller/endpoints"
	"github.com/drover/drover/internal/controller/gc"
	"github.com/drover/drover/internal/controller/hpa"
	"github.com/drover/drover/internal/controller/namespace"
	"github.com/drover/drover/internal/controller/nodelifecycle"
	"github.com/drover/drover/internal/controller/replicaset"
	"github.com/drover/drover/internal/inprocess"
	"github.com/drover/drover/internal/kubeclient"
	"github.com/drover/drover/internal/scheduler"
)

// Component is something started in-process once the API serves, with
// admin clients. Run blocks until ctx is done and then returns; an error
// return before that stops the whole control plane.
type Component struct {
	Name string
	Run  func(ctx context.Context, clients Clients, logger *slog.Logger) error
	// LeaderOnly components (controllers, the scheduler) run only while
	// this server holds the leader lease, so that of several servers on
	// one etcd exactly one acts.
	LeaderOnly bool
	// SharedInformers marks a leader-only component that takes its
	// informers from Clients.Informers, the factory all such components
	// share for one leadership term, and calls its Start exactly once,
	// after registering them; the informers start when every sharing
	// component has done so.
	SharedInformers bool
}

// Clients are the admin's API clients, shared by in-process components.
// They call the API server's handler in process (see package inprocess):
// as the admin, through the same authentication, authorization and
// admission as any client, without TLS or sockets.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Metadata reads and watches objects as PartialObjectMetadata; its
	// watches are served in process where the server serves the kind, with
	// metadata shared with the server (see localMetadataClient), so what
	// it watches must not be modified.
	Metadata metadata.Interface
	// Discovery caches discovery documents in memory.
	Discovery discovery.CachedDiscoveryInterface
	// Config is the admin client configuration; copy before changing. It
	// reaches this server only, in process: its Host is no address.
	Config *rest.Config
	// URL is the API server's address on the network, for what must go
	// through it (a node joining).
	URL string
	// InformerClient is the client informers list and watch through: Kube
	// with pods watched straight from the API server's watch cache (see
	// localWatchClient); nil means Kube. Objects it watches are shared
	// with the server and must not be modified.
	InformerClient kubernetes.Interface
	// Informers is set for leader-only components only: the informer
	// factory shared by the components marked SharedInformers during the
	// current leadership term. They must not shut it down.
	Informers informers.SharedInformerFactory
}

func newClients(cfg *rest.Config, url string) (Clients, error) {
	hc, err := httpClientFor(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("admin HTTP client: %w", err)
	}
	kube, err := kubernetes.NewForConfigAndClient(kubeclient.Protobuf(cfg), hc)
	if err != nil {
		return Clients{}, fmt.Errorf("admin client: %w", err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return Clients{}, fmt.Errorf("admin dynamic client: %w", err)
	}
	md, err := metadata.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return Clients{}, fmt.Errorf("admin metadata client: %w", err)
	}
	return Clients{
		Kube:      kube,
		Dynamic:   dyn,
		Metadata:  md,
		Discovery: memory.NewMemCacheClient(kube.Discovery()),
		Config:    cfg,
		URL:       url,
	}, nil
}

// gcSharedResources are the resources the garbage collector watches
// through the term's shared typed informers rather than as metadata of its
// own: only those that the other sharing components below watch anyway
// (pods, nodes, ReplicaSets, Deployments, Services, EndpointSlices), so
// that their objects are decoded and cached once.
var gcSharedResources = []schema.GroupVersionResource{
	{Version: "v1", Resource: "pods"},
	{Version: "v1", Resource: "nodes"},
	{Version: "v1", Resource: "services"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
}

// httpClientFor is the HTTP client client-go would make for cfg (one for
// the three clients, as each of its NewForConfig does for its own). In
// process with a plain bearer token, the in-process transport sets the
// token and the user agent on the request it builds for the handler
// (inprocess.Transport.As) instead of client-go's RoundTrippers copying
// every request for each: the server sees the same headers.
func httpClientFor(cfg *rest.Config) (*http.Client, error) {
	t, ok := cfg.Transport.(*inprocess.Transport)
	if !ok || cfg.WrapTransport != nil || cfg.BearerTokenFile != "" || cfg.Username != "" || cfg.Password != "" ||
		cfg.AuthProvider != nil || cfg.ExecProvider != nil || cfg.Impersonate.UserName != "" || cfg.Impersonate.UID != "" ||
		len(cfg.Impersonate.Groups) > 0 || len(cfg.Impersonate.Extra) > 0 {
		return rest.HTTPClientFor(cfg)
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = rest.DefaultKubernetesUserAgent() // client-go's default
	}
	return &http.Client{Transport: t.As(inprocess.Identity{BearerToken: cfg.BearerToken, UserAgent: ua}), Timeout: cfg.Timeout}, nil
}

// builtinComponents are the controllers every control plane runs, with
// cfg's timings.
func builtinComponents(cfg Config) []Component {
	return []Component{
		{Name: "clusterrole-aggregation-controller", LeaderOnly: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return clusterroleaggregation.Run(ctx, c.Kube, log)
		}},
		{Name: "namespace-controller", LeaderOnly: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return namespace.Run(ctx, c.Kube, c.Dynamic, c.Discovery, log)
		}},
		{Name: "scheduler", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return scheduler.Run(ctx, c.Kube, log, scheduler.Options{Informers: c.Informers})
		}},
		{Name: "garbage-collector", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return gc.Run(ctx, c.Kube, c.Metadata, c.Discovery, log, gc.Options{Informers: c.Informers, Shared: gcSharedResources})
		}},
		{Name: "endpoints-controller", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return endpoints.Run(ctx, c.Kube, log, endpoints.Options{Informers: c.Informers})
		}},
		{Name: "node-lifecycle-controller", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return nodelifecycle.Run(ctx, c.Kube, log, nodelifecycle.Options{Informers: c.Informers, NodeMonitorGracePeriod: cfg.NodeMonitorGracePeriod})
		}},
		{Name: "disruption-controller", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return disruption.RunShared(ctx, c.Kube, c.Informers, log)
		}},
		{Name: "deployment-controller", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return deployment.Run(ctx, c.Kube, log, deployment.Options{Informers: c.Informers})
		}},
		{Name: "horizontal-pod-autoscaler", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return hpa.Run(ctx, c.Kube, c.Config, log, hpa.Options{Informers: c.Informers})
		}},
		{Name: "replicaset-controller", LeaderOnly: true, SharedInformers: true, Run: func(ctx context.Context, c Clients, log *slog.Logger) error {
			return replicaset.Run(ctx, c.Kube, log, replicaset.Options{Informers: c.Informers})
		}},
	}
}

// arrange puts the leader-only components behind one leader election and
// returns what to start; released is called once the election has stopped
// (see leaderComponent).
func arrange(comps []Component, le LeaderElection, released func()) []Component {
	var always, leaderOnly []Component
	for _, c := range comps {
		if c.LeaderOnly {
			leaderOnly = append(leaderOnly, c)
		} else {
			always = append(always, c)
		}
	}
	if len(leaderOnly) > 0 {
		always = append(always, leaderComponent(le, leaderOnly, released))
	} else if released != nil {
		released() // no election: nothing to release
	}
	return always
}

// informerClient returns InformerClient, or Kube when there is none.
func (c Clients) informerClient() kubernetes.Interface {
	if c.InformerClient != nil {
		return c.InformerClient
	}
	return c.Kube
}
