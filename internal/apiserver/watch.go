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
	timeout := 30 * time.Minute
	if v := q.Get("timeoutSeconds"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs < 0 {
			writeError(h.w, apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", v)))
			return
		}
		if secs > 0 {
			timeout = time.Duration(secs) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	rv := q.Get("resourceVersion")
	sendInitial := isTrue(q.Get("sendInitialEvents"))
	bookmarks := isTrue(q.Get("allowWatchBookmarks"))
	prefix := keyPrefix(h.res, h.info.Namespace)
	var (
		initial  []runtime.Object
		startRev int64
	)
	if rv == "" || rv == "0" || sendInitial {
		items, rev, _, _, err := h.s.listObjects(ctx, h.res, prefix, storage.ListOptions{}, 0, sel)
		if err != nil {
			writeError(h.w, err)
			return
		}
		initial, startRev = items, rev
	} else if startRev, err = strconv.ParseInt(rv, 10, 64); err != nil {
		writeError(h.w, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", rv)))
		return
	}
	events, err := h.s.cfg.Storage.Watch(ctx, prefix, startRev)
	if err != nil {
		writeError(h.w, storageError(err, h.res, ""))
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
	for _, obj := range initial {
		if !wt.send(watch.Added, obj) {
			return
		}
	}
	if sendInitial && bookmarks {
		if !wt.bookmark(startRev, true) {
			return
		}
	}
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
			if !wt.handle(ev, sel, bookmarks) {
				wt.flush()
				return
			}
			if wt.unflushed > 0 {
				wt.held++
			}
		}
	}
}

// handle turns a storage event into what this client sees: events are
// filtered by the selector, and an object leaving the selection is DELETED.
func (wt *watcher) handle(ev storage.Event, sel selector, bookmarks bool) bool {
	res := wt.h.res
	switch ev.Type {
	case storage.Progress:
		if bookmarks {
			return wt.bookmark(ev.Revision, false)
		}
		return true
	case storage.Error:
		status := apierrors.NewInternalError(ev.Err)
		if errors.Is(ev.Err, storage.ErrCompacted) {
			status = apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %s", wt.h.r.URL.Query().Get("resourceVersion")))
		}
		s := status.ErrStatus
		s.Kind, s.APIVersion = "Status", "v1"
		data, err := wt.encode(&s)
		if err == nil {
			wt.writeRaw(watch.Error, data)
		}
		return false
	}
	// Every watcher of this resource sees the same event: decode (and
	// below, encode) it once for all of them.
	memo := wt.h.s.memo
	cur := memo.entry(memoKey{res: res, key: ev.Key, rev: ev.Revision})
	obj, err := cur.decoded(func() (runtime.Object, error) { return wt.h.s.store.decode(res, ev.Value, ev.Revision) })
	if err != nil {
		wt.h.s.log.Error("watch: decoding event", "key", ev.Key, "err", err)
		return true
	}
	switch ev.Type {
	case storage.Added:
		if sel.matches(res, obj) {
			return wt.sendShared(watch.Added, cur)
		}
	case storage.Deleted:
		if sel.matches(res, obj) {
			return wt.sendShared(watch.Deleted, cur)
		}
	case storage.Modified:
		newMatch, oldMatch := sel.matches(res, obj), true
		if !sel.empty() && ev.PrevValue != nil {
			prevEntry := memo.entry(memoKey{res: res, key: ev.Key, rev: ev.Revision, prev: true})
			if prev, err := prevEntry.decoded(func() (runtime.Object, error) {
				return wt.h.s.store.decode(res, ev.PrevValue, ev.Revision)
			}); err == nil {
				oldMatch = sel.matches(res, prev)
			}
		} else {
			oldMatch = newMatch
		}
		switch {
		case newMatch && oldMatch:
			return wt.sendShared(watch.Modified, cur)
		case newMatch:
			return wt.sendShared(watch.Added, cur)
		case oldMatch:
			return wt.sendShared(watch.Deleted, cur)
		}
	}
	return true
}

// bookmark tells the client every change up to rev has been sent.
func (wt *watcher) bookmark(rev int64, initialEventsEnd bool) bool {
	obj := wt.h.res.New()
	acc, _ := meta.Accessor(obj)
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEventsEnd {
		acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	obj.GetObjectKind().SetGroupVersionKind(wt.h.res.GroupVersionKind())
	data, err := wt.encode(bookmarkIn(wt.form, obj))
	if err != nil {
		return false
	}
	return wt.writeRaw(watch.Bookmark, data)
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
		data, err = e.encodedProtobuf(encodeProtobuf)
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
