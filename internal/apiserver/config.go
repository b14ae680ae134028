// Package apiserver serves the Kubernetes REST API over Drover's storage:
// routing, discovery, CRUD, watch, patch, subresources and tables, generic
// over the resources described by package registry.
package apiserver

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"log/slog"
	"time"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/authz"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// Config is what the API server needs.
type Config struct {
	Storage   storage.Interface
	Resources []*registry.Resource
	// Authenticator identifies callers; requests it rejects get 401, except
	// the public health and version endpoints.
	Authenticator auth.Authenticator
	Logger        *slog.Logger
	// MaxRequestBodyBytes bounds request bodies (413 beyond); 0 means 3 MiB.
	MaxRequestBodyBytes int64
	// BookmarkInterval is how often an idle watch that allows bookmarks gets one; 0 means 10s.
	BookmarkInterval time.Duration
	// GitVersion is reported at /version.
	GitVersion string
	// ServiceCIDR is the range services' cluster IPs come from; "" means
	// 10.96.0.0/12. Node ports come from registry.NodePortRange.
	ServiceCIDR string
	// ExtraGroups are API groups served by handlers mounted with Mount
	// (e.g. metrics.k8s.io): they are listed in /apis after the
	// registry's groups; their own discovery documents are the mounted
	// handler's to serve.
	ExtraGroups []metav1.APIGroup
	// Metrics, if set, observes every request.
	Metrics Observer
	// Authorizer decides on every authenticated request (403 when it does
	// not allow); nil allows everything.
	Authorizer authz.Authorizer
	// Admission, if set, checks each object before it is stored.
	Admission Admitter
	// MaxRequestsInFlight and MaxMutatingRequestsInFlight bound concurrent
	// read-only and mutating requests, as upstream's flags of those names:
	// a request beyond them waits in a queue, heartbeats and admins first
	// and each identity in turn, and gets 429 with Retry-After when the
	// queue is full or it has waited InflightQueueWait. Watches and other
	// long-running requests do not count; system:masters and node
	// heartbeats keep a reserved tenth. 0 means 400 and 200; negative
	// means no limit.
	MaxRequestsInFlight, MaxMutatingRequestsInFlight int
	// InflightQueueWait is the longest a request waits for a slot: 0 means
	// 15 s (upstream's), negative rejects at once.
	InflightQueueWait time.Duration
	// EventTTL is how long an event (a resource marked
	// registry.Resource.Expires) is kept after its last write, as
	// upstream's --event-ttl, when Storage is a storage.Expirer; 0 keeps
	// events forever.
	EventTTL time.Duration
}

// Observer records one served request (see package metrics).
type Observer interface {
	Observe(verb, group, resource, subresource string, code int, d time.Duration)
}
