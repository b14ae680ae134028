package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// watcher writes a watch stream to one client.
type watcher struct {
	h       *handler
	w       http.ResponseWriter
	flusher http.Flusher
	form    responseForm
	proto   bool // events in protobuf (then form is formObject)
	sent    int
	buf     []byte // the line being written, reused
	// unflushed counts events written since the last flush: while more
	// events wait in the channel, they go out together (one TLS record
	// and write instead of one per event, for every watcher). held counts
	// the events taken from the channel since the first of them, written
	// or filtered out.
	unflushed, held int
}

// maxHeld bounds how many events a busy watch stream takes in while it
// holds written ones back: a watcher whose selector passes over a steady
// stream of others' events still gets its own at once.
const maxHeld = 32

// flushDue reports whether a watch stream with unflushed events written,
// held events taken in since the first of them, and pending events ready
// in its channel should flush now.
func flushDue(unflushed, held, pending int) bool {
	return unflushed > 0 && (pending == 0 || held >= maxHeld)
}

func (h *handler) watch(ctx context.Context) {
	sel, err := parseSelector(h.r, h.res)
	if err != nil {
		writeError(h.w, err)
		return
	}
	q := h.r.URL.Query()
	var timeout int64
	if v := q.Get("timeoutSeconds"); v != "" {
		if timeout, err = strconv.ParseInt(v, 10, 64); err != nil || timeout < 0 {
			writeError(h.w, apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", v)))
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, watchTimeout(timeout))
	defer cancel()
	start, err := h.s.startWatch(ctx, h.res, h.info.Namespace, sel, q.Get("resourceVersion"), isTrue(q.Get("sendInitialEvents")), isTrue(q.Get("allowWatchBookmarks")))
	if err != nil {
		writeError(h.w, err)
		return
	}
	flusher, _ := h.w.(http.Flusher)
	wt := &watcher{h: h, w: h.w, flusher: flusher, form: wantedForm(h.r)}
	contentType := "application/json"
	if form, ok := protobufForm(h.r); ok && (form != formObject || hasProtobuf(h.res.New())) {
		wt.proto, wt.form = true, form
		contentType = protobufWatchType
	}
	h.w.Header().Set("Content-Type", contentType)
	h.w.Header().Set("Transfer-Encoding", "chunked")
	h.w.WriteHeader(http.StatusOK)
	wt.flush()
	for _, obj := range start.initial {
		if !wt.send(watch.Added, obj) {
			return
		}
	}
	if start.sendInitial && start.bookmarks {
		if !wt.bookmark(start.rev, true) {
			return
		}
	}
	events := start.events
	for {
		if flushDue(wt.unflushed, wt.held, len(events)) {
			wt.flush()
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				wt.flush()
				return
			}
			if !wt.handle(ev, sel, start.bookmarks) {
				wt.flush()
				return
			}
			if wt.unflushed > 0 {
				wt.held++
			}
		}
	}
}

// watchTimeout is how long a watch asking for timeoutSeconds lasts: as
// asked, or 30 minutes.
func watchTimeout(seconds int64) time.Duration {
	if seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	return 30 * time.Minute
}

// watchStart is how a watch begins: the objects it first sends as ADDED
// (all that match, when it starts without a resourceVersion or asks for
// initial events), the revision it follows from, and the storage events.
type watchStart struct {
	initial                []runtime.Object
	rev                    int64
	events                 <-chan storage.Event
	sendInitial, bookmarks bool
}

// startWatch starts watching res in namespace (all when empty) for
// objects matching sel, from resourceVersion rv.
func (s *server) startWatch(ctx context.Context, res *registry.Resource, namespace string, sel selector, rv string, sendInitial, bookmarks bool) (watchStart, error) {
	start := watchStart{sendInitial: sendInitial, bookmarks: bookmarks}
	prefix := keyPrefix(res, namespace)
	if rv == "" || rv == "0" || sendInitial {
		items, rev, _, _, err := s.listObjects(ctx, res, prefix, storage.ListOptions{}, 0, sel)
		if err != nil {
			return watchStart{}, err
		}
		start.initial, start.rev = items, rev
	} else {
		rev, err := strconv.ParseInt(rv, 10, 64)
		if err != nil {
			return watchStart{}, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", rv))
		}
		start.rev = rev
	}
	events, err := s.cfg.Storage.Watch(ctx, prefix, start.rev)
	if err != nil {
		return watchStart{}, storageError(err, res, "")
	}
	start.events = events
	return start, nil
}

// handle turns a storage event into what this client sees: events are
// filtered by the selector, and an object leaving the selection is DELETED.
func (wt *watcher) handle(ev storage.Event, sel selector, bookmarks bool) bool {
	switch ev.Type {
	case storage.Progress:
		if bookmarks {
			return wt.bookmark(ev.Revision, false)
		}
		return true
	case storage.Error:
		s := watchErrorStatus(ev.Err, wt.h.r.URL.Query().Get("resourceVersion"))
		data, err := wt.encode(&s)
		if err == nil {
			wt.writeRaw(watch.Error, data)
		}
		return false
	}
	if t, entry, ok := wt.h.s.route(wt.h.res, ev, sel); ok {
		return wt.sendShared(t, entry)
	}
	return true
}

// watchErrorStatus is the Status a watch ends with on a storage error: 410
// Expired when the revision it follows was compacted.
func watchErrorStatus(err error, rv string) metav1.Status {
	status := apierrors.NewInternalError(err)
	if errors.Is(err, storage.ErrCompacted) {
		status = apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %s", rv))
	}
	s := status.ErrStatus
	s.Kind, s.APIVersion = "Status", "v1"
	return s
}

// route decides what a watcher selecting sel sees of a storage event that
// adds, modifies or deletes an object: the event type and the memo entry
// holding the object, or false for nothing. An object leaving the
// selection is DELETED for it, one entering it ADDED.
func (s *server) route(res *registry.Resource, ev storage.Event, sel selector) (watch.EventType, *memoEntry, bool) {
	// Every watcher of this resource sees the same event: decode (and
	// later, encode) it once for all of them.
	cur := s.memo.entry(memoKey{res: res, key: ev.Key, rev: ev.Revision})
	_, err := cur.decoded(func() (runtime.Object, error) {
		cur.stored = ev.Value
		return s.store.decodeShared(res, ev.Value, ev.Revision)
	})
	if err != nil {
		s.log.Error("watch: decoding event", "key", ev.Key, "err", err)
		return "", nil, false
	}
	switch ev.Type {
	case storage.Added:
		if sel.matches(res, cur.obj) {
			return watch.Added, cur, true
		}
	case storage.Deleted:
		if sel.matches(res, cur.obj) {
			return watch.Deleted, cur, true
		}
	case storage.Modified:
		newMatch, oldMatch := sel.matches(res, cur.obj), true
		if !sel.empty() && ev.PrevValue != nil {
			// The previous value was, most often, the new value of
			// an event the memo has decoded already.
			prevEntry, ok := s.memo.decodedEntry(memoKey{res: res, key: ev.Key, rev: ev.PrevRevision})
			if !ok || ev.PrevRevision == 0 {
				prevEntry = s.memo.entry(memoKey{res: res, key: ev.Key, rev: ev.Revision, prev: true})
				_, err = prevEntry.decoded(func() (runtime.Object, error) {
					return s.store.decodeShared(res, ev.PrevValue, ev.Revision)
				})
			}
			if err == nil {
				oldMatch = sel.matches(res, prevEntry.obj)
			}
		} else {
			oldMatch = newMatch
		}
		switch {
		case newMatch && oldMatch:
			return watch.Modified, cur, true
		case newMatch:
			return watch.Added, cur, true
		case oldMatch:
			return watch.Deleted, cur, true
		}
	}
	return "", nil, false
}

// bookmark tells the client every change up to rev has been sent.
func (wt *watcher) bookmark(rev int64, initialEventsEnd bool) bool {
	data, err := wt.encode(bookmarkIn(wt.form, bookmarkObject(wt.h.res, rev, initialEventsEnd)))
	if err != nil {
		return false
	}
	return wt.writeRaw(watch.Bookmark, data)
}

// bookmarkObject is the object of a BOOKMARK event at rev: only its kind
// and resourceVersion are set, and the annotation that ends the initial
// events when it does.
func bookmarkObject(res *registry.Resource, rev int64, initialEventsEnd bool) runtime.Object {
	obj := res.New()
	acc, _ := meta.Accessor(obj)
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEventsEnd {
		acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	return obj
}

// encode encodes an event's object in the stream's encoding.
func (wt *watcher) encode(obj any) ([]byte, error) {
	if wt.proto {
		return encodeProtobuf(obj.(runtime.Object))
	}
	return json.Marshal(obj)
}

// sendShared sends the memo entry's object, which other watchers share: in
// the plain object form its encoding is shared too.
func (wt *watcher) sendShared(t watch.EventType, e *memoEntry) bool {
	if wt.form != formObject {
		if wt.form == formTable {
			// Rendering a table may set the object's kind: not on a
			// shared object.
			return wt.send(t, e.obj.DeepCopyObject())
		}
		return wt.send(t, e.obj)
	}
	var (
		data []byte
		err  error
	)
	if wt.proto {
		data, err = e.encodedProtobuf(wt.h.res)
	} else {
		data, err = e.encoded(func(obj runtime.Object) ([]byte, error) { return json.Marshal(obj) })
	}
	if err != nil {
		wt.h.s.log.Error("watch: encoding event", "err", err)
		return false
	}
	wt.sent++
	return wt.writeRaw(t, data)
}

func (wt *watcher) send(t watch.EventType, obj runtime.Object) bool {
	var out any = obj
	switch wt.form {
	case formTable:
		table, err := wt.h.s.toTable(wt.h.res, obj, wt.h.r)
		if err != nil {
			return false
		}
		if wt.sent > 0 {
			table.ColumnDefinitions = nil
		}
		out = table
	case formPartialMetadata, formPartialMetadataList:
		out = toPartialMetadata(obj)
	}
	data, err := wt.encode(out)
	if err != nil {
		wt.h.s.log.Error("watch: encoding event", "err", err)
		return false
	}
	wt.sent++
	return wt.writeRaw(t, data)
}

// writeRaw writes one event whose object is already encoded. In JSON it
// is the line {"type":T,"object":OBJECT}, object being JSON as
// json.Marshal makes it (compact and valid): what marshalling a metav1.WatchEvent
// gives, without checking and compacting the object again. In protobuf it
// is one length-framed metav1.WatchEvent.
func (wt *watcher) writeRaw(t watch.EventType, object []byte) bool {
	if wt.proto {
		buf, err := appendProtobufWatchEvent(wt.buf[:0], t, object)
		if err != nil {
			wt.h.s.log.Error("watch: encoding event", "err", err)
			return false
		}
		wt.buf = buf
		if _, err := wt.w.Write(buf); err != nil {
			return false
		}
		wt.unflushed++
		return true
	}
	buf := wt.buf[:0]
	buf = append(buf, `{"type":`...)
	buf = strconv.AppendQuote(buf, string(t))
	buf = append(buf, `,"object":`...)
	buf = append(buf, object...)
	buf = append(buf, "}\n"...)
	wt.buf = buf
	if _, err := wt.w.Write(buf); err != nil {
		return false
	}
	wt.unflushed++
	return true
}

func (wt *watcher) flush() {
	wt.unflushed, wt.held = 0, 0
	if wt.flusher != nil {
		wt.flusher.Flush()
	}
}
