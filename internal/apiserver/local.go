package apiserver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// localWatchBuffer is how many events a local watch holds for a consumer
// that has not taken them yet.
const localWatchBuffer = 64

// Watch watches a resource for a client in this process (the control
// plane's own informers) as a watch request with opts would, events and
// bookmarks alike, but without a request: the objects are those the watch
// cache decoded once for every watcher of the resource, handed over as they
// are instead of encoded and decoded again, which was a fifth of what the
// control plane allocated under load. Receivers share them with every other
// watcher, so they must not modify them, as with informer caches; unlike
// objects decoded by client-go, their kind and apiVersion are set.
//
// No authentication or authorization applies: the caller is the server
// itself. Namespace is ignored for cluster-scoped resources; errors are
// the API's (a *StatusError).
func (srv *Server) Watch(ctx context.Context, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	return srv.s.watchLocal(ctx, gvr, namespace, opts, nil)
}

// WatchMetadata is Watch with every object (bookmarks included) as a
// *metav1.PartialObjectMetadata, as a metadata client's watch sees it: for
// the garbage collector's informers. Its metadata is shared as Watch's
// objects are.
func (srv *Server) WatchMetadata(ctx context.Context, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	return srv.s.watchLocal(ctx, gvr, namespace, opts, func(obj runtime.Object) runtime.Object {
		return toPartialMetadata(obj).(*metav1.PartialObjectMetadata)
	})
}

// watchLocal starts a local watch whose objects are converted by convert,
// if not nil.
func (s *server) watchLocal(ctx context.Context, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions, convert func(runtime.Object) runtime.Object) (watch.Interface, error) {
	res := s.resources[gvr]
	if res == nil {
		return nil, apierrors.NewNotFound(gvr.GroupResource(), "")
	}
	sel, err := newSelector(res, opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		return nil, err
	}
	var timeout int64
	if opts.TimeoutSeconds != nil {
		if timeout = *opts.TimeoutSeconds; timeout < 0 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %d", timeout))
		}
	}
	if !res.Namespaced {
		namespace = ""
	}
	ctx, cancel := context.WithTimeout(ctx, watchTimeout(timeout))
	sendInitial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	start, err := s.startWatch(ctx, res, namespace, sel, opts.ResourceVersion, sendInitial, opts.AllowWatchBookmarks)
	if err != nil {
		cancel()
		return nil, err
	}
	if convert == nil {
		convert = func(obj runtime.Object) runtime.Object { return obj }
	}
	lw := &localWatch{cancel: cancel, out: make(chan watch.Event, localWatchBuffer), convert: convert}
	go lw.run(ctx, s, res, sel, start, opts.ResourceVersion)
	return lw, nil
}

// localWatch is a watch.Interface fed by a goroutine following storage.
type localWatch struct {
	cancel  context.CancelFunc
	out     chan watch.Event
	convert func(runtime.Object) runtime.Object // what the receiver sees of an object
}

// Stop ends the watch; its result channel closes soon after.
func (lw *localWatch) Stop() { lw.cancel() }

// ResultChan returns the events; it is closed when the watch ends.
func (lw *localWatch) ResultChan() <-chan watch.Event { return lw.out }

func (lw *localWatch) run(ctx context.Context, s *server, res *registry.Resource, sel selector, start watchStart, rv string) {
	defer close(lw.out)
	defer lw.cancel()
	send := func(e watch.Event) bool {
		select {
		case lw.out <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, obj := range start.initial {
		if !send(watch.Event{Type: watch.Added, Object: lw.convert(obj)}) {
			return
		}
	}
	if start.sendInitial && start.bookmarks {
		if !send(watch.Event{Type: watch.Bookmark, Object: lw.convert(bookmarkObject(res, start.rev, true))}) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-start.events:
			if !ok {
				return
			}
			switch ev.Type {
			case storage.Progress:
				if start.bookmarks && !send(watch.Event{Type: watch.Bookmark, Object: lw.convert(bookmarkObject(res, ev.Revision, false))}) {
					return
				}
			case storage.Error:
				status := watchErrorStatus(ev.Err, rv)
				send(watch.Event{Type: watch.Error, Object: &status})
				return
			default:
				if t, entry, ok := s.route(res, ev, sel); ok && !send(watch.Event{Type: t, Object: lw.convert(entry.obj)}) {
					return
				}
			}
		}
	}
}
