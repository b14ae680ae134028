package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/drover/drover/internal/gopool"
	"github.com/drover/drover/internal/openapi"
	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// server routes API requests to generic handlers over the registry.
type server struct {
	cfg       Config
	log       *slog.Logger
	store     *objectStore
	resources map[schema.GroupVersionResource]*registry.Resource
	discovery *discovery
	extra     map[string]http.Handler
	alloc     *allocator
	inflight  *inflightLimiter
	memo      *eventMemo
	workers   gopool.Pool // serve requests
}

// New returns the API server's HTTP handler. Extra handlers (e.g. /metrics,
// /openapi/) may be mounted with Mount before serving.
func New(cfg Config) (*Server, error) {
	if cfg.Storage == nil {
		return nil, errors.New("apiserver: no storage")
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("apiserver: no authenticator")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxRequestBodyBytes == 0 {
		cfg.MaxRequestBodyBytes = 3 << 20
	}
	if cfg.BookmarkInterval == 0 {
		cfg.BookmarkInterval = 10 * time.Second
	}
	alloc, err := newAllocator(cfg.Storage, cfg.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	memo := newEventMemo()
	s := &server{
		alloc:     alloc,
		cfg:       cfg,
		log:       cfg.Logger,
		store:     &objectStore{s: cfg.Storage, memo: memo},
		resources: map[schema.GroupVersionResource]*registry.Resource{},
		extra:     map[string]http.Handler{},
		inflight:  newInflightLimiter(cfg.MaxRequestsInFlight, cfg.MaxMutatingRequestsInFlight, cfg.InflightQueueWait, limitObserver(cfg.Metrics)),
		memo:      memo,
	}
	for _, res := range cfg.Resources {
		gvr := res.GroupVersionResource()
		if _, dup := s.resources[gvr]; dup {
			return nil, fmt.Errorf("apiserver: resource %s registered twice", gvr)
		}
		s.resources[gvr] = res
	}
	s.discovery = newDiscovery(cfg.Resources, cfg.ExtraGroups)
	s.extra["/openapi/"] = openapi.NewHandler(cfg.Resources)
	return &Server{s: s}, nil
}

// Server is the API server's HTTP handler.
type Server struct{ s *server }

// KubernetesServiceIP is the cluster IP kept for the default/kubernetes
// service: the first address of the service range.
func (srv *Server) KubernetesServiceIP() string { return srv.s.alloc.FirstServiceIP() }

// RepairAllocations frees cluster IPs and node ports that no service uses
// (left by a crash between reserving and storing, or by an update that
// dropped them). Run it now and then; it is safe alongside requests.
func (srv *Server) RepairAllocations(ctx context.Context) error {
	res := srv.s.resources[schema.GroupVersionResource{Version: "v1", Resource: "services"}]
	if res == nil {
		return nil
	}
	list, err := srv.s.cfg.Storage.List(ctx, keyPrefix(res, ""), storage.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing services: %w", err)
	}
	var services []*corev1.Service
	for _, kv := range list.Items {
		obj, err := srv.s.store.decode(res, kv.Value, kv.Revision)
		if err != nil {
			return err
		}
		services = append(services, obj.(*corev1.Service))
	}
	return srv.s.alloc.repair(ctx, services)
}

// Mount serves h for requests whose path starts with prefix, after
// authentication. Mount before serving.
func (srv *Server) Mount(prefix string, h http.Handler) { srv.s.extra[prefix] = h }

// ServeHTTP implements http.Handler. Requests are served on the server's
// pooled goroutines, whose stacks have already grown to what serving takes
// (see package gopool).
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	srv.s.workers.Run(func() { srv.serveHTTP(w, r) })
}

func (srv *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s := srv.s
	rec := &statusRecorder{ResponseWriter: w}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				writeError(rec, apierrors.NewInternalError(fmt.Errorf("internal error")))
			}
		}
		s.observe(r, rec.code, time.Since(start))
	}()
	s.serve(rec, r)
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch path {
	case "/healthz", "/livez", "/readyz":
		s.health(w, r)
		return
	case "/version", "/version/":
		writeJSON(w, http.StatusOK, s.version())
		return
	}
	user, ok := s.cfg.Authenticator.Authenticate(r)
	if !ok {
		writeError(w, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	release, ok := s.inflight.acquire(r, user)
	if !ok {
		writeTooManyRequests(w)
		return
	}
	defer release()
	r = r.WithContext(withUser(r.Context(), user))
	if !s.authorize(w, r, user) {
		return
	}
	for prefix, h := range s.extra {
		if strings.HasPrefix(path, prefix) {
			h.ServeHTTP(w, r)
			return
		}
	}
	if s.discovery.serve(w, r) {
		return
	}
	info, ok := parseRequestInfo(r)
	if !ok {
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	res, ok := s.resources[schema.GroupVersionResource{Group: info.Group, Version: info.Version, Resource: info.Resource}]
	if !ok {
		writeError(w, apierrors.NewNotFound(schema.GroupResource{Group: info.Group, Resource: info.Resource}, ""))
		return
	}
	if res.Namespaced == false && info.Namespace != "" {
		writeError(w, apierrors.NewNotFound(groupResource(res), info.Name))
		return
	}
	h := &handler{s: s, res: res, info: info, w: w, r: r}
	h.serve()
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/readyz" {
		if _, err := s.cfg.Storage.Revision(r.Context()); err != nil {
			http.Error(w, "storage not ready: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}

// statusRecorder remembers the status code written, and passes Flush on.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *server) observe(r *http.Request, code int, d time.Duration) {
	if s.cfg.Metrics == nil {
		return
	}
	if code == 0 {
		code = http.StatusOK
	}
	info, ok := parseRequestInfo(r)
	if !ok {
		s.cfg.Metrics.Observe(strings.ToLower(r.Method), "", "", "", code, d)
		return
	}
	s.cfg.Metrics.Observe(info.Verb, info.Group, info.Resource, info.Subresource, code, d)
}
