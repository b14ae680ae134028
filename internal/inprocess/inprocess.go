// Package inprocess is an http.RoundTripper that serves a client's requests
// by calling an http.Handler of the same process directly.
//
// Drover's control plane runs the API server and, in the same process, the
// controllers and the scheduler that are its busiest clients. Over the
// network every one of their requests pays for TLS, HTTP/2 framing and
// socket syscalls on both ends, for bytes that never leave the process:
// under load that was a sixth of the control plane's CPU. A Transport hands
// the request to the handler instead, and the handler's response back, with
// nothing in between but a buffer:
//
//	cfg := &rest.Config{Host: "http://inprocess", BearerToken: token,
//		Transport: inprocess.New(handler)}
//
// (client-go refuses a custom Transport together with TLS options, so the
// config carries none; authentication is by bearer token as over the
// network.)
//
// client-go puts the token and the user agent on every request with two
// RoundTrippers of its own, each of which copies the request. A client
// built on [Transport.As] instead (an http.Client for the ...AndClient
// constructors) has the Transport set both headers on the request it hands
// the handler, which it builds anyway: the server sees the same request.
//
// The handler sees a request as a server would show it: HTTP/1.1, RequestURI
// set, RemoteAddr [RemoteAddr], TLS nil, [Served] true, and a context that
// ends when the client's does or when the client closes the response body (so
// a watch that client-go stops ends the handler). An ordinary response is buffered and
// handed over when the handler returns, with its ContentLength; a handler
// that flushes (watches, logs) gets its response to the client at the first
// flush, and streams from then on, each write blocking while the client is
// more than a little behind, as a socket would.
//
// Not supported: taking over the connection. A handler's Hijack returns
// [ErrHijack], and a request asking for a protocol upgrade (exec, attach and
// port-forward over SPDY or WebSocket) fails with [ErrUpgrade]: such clients
// need a real connection and must use the server's real URL.
package inprocess

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RemoteAddr is the RemoteAddr of the requests a Transport serves: a
// loopback address with port 0, which is no real connection's.
const RemoteAddr = "127.0.0.1:0"

// servedKey marks the context of the requests a Transport serves.
type servedKey struct{}

// Served reports whether a handler's request came through a Transport, in
// process, rather than over a connection: a server may treat its own
// components apart (a Transport bounds them with MaxConcurrent).
func Served(r *http.Request) bool {
	served, _ := r.Context().Value(servedKey{}).(bool)
	return served
}

var (
	// ErrHijack is returned by the Hijack method of the ResponseWriter a
	// handler is given: there is no connection to take over.
	ErrHijack = errors.New("inprocess: the in-process transport has no connection to hijack (exec, attach, port-forward and upgrades need the server's real URL)")
	// ErrUpgrade is returned for a request that asks for a protocol
	// upgrade (Connection: Upgrade).
	ErrUpgrade = errors.New("inprocess: protocol upgrades (SPDY, WebSocket: exec, attach, port-forward) are not supported in process; use the server's real URL")
	// ErrBodyClosed is what a handler's writes return once the client has
	// closed the response body; it is also the cause of the handler's
	// context's cancellation then.
	ErrBodyClosed = errors.New("inprocess: the client closed the response body")
	// errAborted is the error a client sees (from RoundTrip, or reading
	// the body) when the handler panicked.
	errAborted = fmt.Errorf("inprocess: the handler aborted the response: %w", io.ErrUnexpectedEOF)
	// errWriteAfterReturn is returned by writes after the handler returned.
	errWriteAfterReturn = errors.New("inprocess: write after the handler returned")
)

const (
	// flushSize is how many written bytes wake a streaming client without
	// an explicit flush (net/http's server buffers 4 KiB the same way).
	flushSize = 4 << 10
	// maxPending is how far a streaming client may fall behind before the
	// handler's writes wait for it.
	maxPending = 256 << 10
	// autoStreamSize is how large a response may grow unflushed before it
	// is sent to the client while the handler still writes, so that an
	// endless response without flushes still reaches the client.
	autoStreamSize = 4 << 20
)

// Transport serves requests with Handler, in process. The zero value is not
// usable: set Handler. A Transport is safe for concurrent use.
type Transport struct {
	// Handler serves every request.
	Handler http.Handler
	// Logger, if set, receives handler panics (other than
	// http.ErrAbortHandler); slog.Default() otherwise.
	Logger *slog.Logger
	// BaseContext, if set, ends every handler's context when it ends, as
	// http.Server's BaseContext does for a server's handlers: a server
	// shutting down can stop in-process watches with the others.
	BaseContext context.Context
	// MaxConcurrent, if positive, bounds the requests being served at
	// once, as a connection's stream limit does over HTTP/2: a request
	// waits for a slot (or its context's end) before its handler runs,
	// and frees it once its response is handed over, so watches and
	// other streams hold none while they stream. Without a bound, a
	// burst of in-process requests would take every slot of the
	// server's in-flight limit, and network clients (nodes) would get
	// 429s.
	MaxConcurrent int

	slotsOnce sync.Once
	slots     chan struct{}
}

// New returns a Transport that serves requests with h.
func New(h http.Handler) *Transport { return &Transport{Handler: h} }

// Identity is what a client's requests say of it: the headers client-go
// would set from a rest.Config's BearerToken and UserAgent.
type Identity struct {
	// BearerToken, if set, authenticates each request that has no
	// Authorization header of its own (Authorization: Bearer token).
	BearerToken string
	// UserAgent, if set, is the User-Agent of each request that has none.
	UserAgent string
}

// As returns a RoundTripper that serves requests with t (sharing its
// MaxConcurrent bound) as a client with identity id: the handler sees the
// headers of id on a request that lacks them, as if client-go's bearer
// token and user agent RoundTrippers had set them, without their copies of
// the request. The client's request is left unmodified.
func (t *Transport) As(id Identity) http.RoundTripper {
	return identityTransport{t: t, id: id}
}

type identityTransport struct {
	t  *Transport
	id Identity
}

// RoundTrip implements http.RoundTripper.
func (i identityTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return i.t.roundTrip(req, i.id)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, Identity{})
}

func (t *Transport) roundTrip(req *http.Request, id Identity) (*http.Response, error) {
	if t.Handler == nil || req.URL == nil {
		closeBody(req)
		return nil, errors.New("inprocess: no handler, or a request without URL")
	}
	if isUpgrade(req.Header) {
		closeBody(req)
		return nil, ErrUpgrade
	}
	clientCtx := req.Context()
	if err := clientCtx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	// The handler's context has the client's values and deadline but is
	// not its child: registering every request with the client's context
	// (a controller's, shared by all its requests in flight) cost more
	// than the rest of the transport. The client's end reaches the handler
	// all the same: through the wait below until the response is handed
	// over, and for a response that streams on, through streamFrom.
	ctx, cancel := context.WithCancelCause(detached{clientCtx})
	if t.BaseContext != nil {
		if err := t.BaseContext.Err(); err != nil {
			cancel(nil)
			closeBody(req)
			return nil, fmt.Errorf("inprocess: server stopped: %w", err)
		}
		stop := context.AfterFunc(t.BaseContext, func() { cancel(context.Cause(t.BaseContext)) })
		cancelAll := cancel
		cancel = func(cause error) { stop(); cancelAll(cause) }
	}
	if slots := t.slotChan(); slots != nil {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-clientCtx.Done():
			cancel(nil)
			closeBody(req)
			return nil, context.Cause(clientCtx)
		case <-ctx.Done(): // the server stopped
			cancel(nil)
			closeBody(req)
			return nil, context.Cause(ctx)
		}
	}
	sreq := serverRequest(req, context.WithValue(ctx, servedKey{}, true))
	id.set(sreq.Header)
	w := &responseWriter{
		clientReq: req,
		clientCtx: clientCtx,
		ctx:       ctx,
		cancel:    cancel,
		header:    make(http.Header),
		head:      req.Method == http.MethodHead,
		ready:     make(chan result, 1),
	}
	w.cond.L = &w.mu
	go t.serve(w, sreq, req.Body)
	select {
	case r := <-w.ready:
		if r.err == nil {
			w.streamFrom(clientCtx)
		}
		return r.resp, r.err
	case <-clientCtx.Done():
		// The handler sees its context end, for the client's reason;
		// whatever it still writes is dropped.
		w.cancel(context.Cause(clientCtx))
		w.closeBody()
		return nil, clientCtx.Err()
	}
}

// detached is a context with the values and deadline of its parent but
// not its cancellation: the Transport passes that on itself.
type detached struct{ parent context.Context }

func (d detached) Deadline() (time.Time, bool) { return d.parent.Deadline() }
func (detached) Done() <-chan struct{}         { return nil }
func (detached) Err() error                    { return nil }
func (d detached) Value(key any) any           { return d.parent.Value(key) }

// streamFrom ends the handler's context when clientCtx ends, for a
// response handed over while the handler still runs (streaming), until
// the handler returns.
func (w *responseWriter) streamFrom(clientCtx context.Context) {
	if clientCtx.Done() == nil {
		return // never ends
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent || w.finished {
		return // the handler has returned: nothing to end
	}
	w.stopClient = context.AfterFunc(clientCtx, func() { w.cancel(context.Cause(clientCtx)) })
}

// slotChan returns the semaphore of MaxConcurrent, nil without a bound.
func (t *Transport) slotChan() chan struct{} {
	t.slotsOnce.Do(func() {
		if t.MaxConcurrent > 0 {
			t.slots = make(chan struct{}, t.MaxConcurrent)
		}
	})
	return t.slots
}

// set puts id's headers on h where it has none, as client-go does.
func (id Identity) set(h http.Header) {
	if id.BearerToken != "" && h.Get("Authorization") == "" {
		h.Set("Authorization", "Bearer "+id.BearerToken)
	}
	if id.UserAgent != "" && h.Get("User-Agent") == "" {
		h.Set("User-Agent", id.UserAgent)
	}
}

// serverRequest is req as a server would hand it to its handler.
func serverRequest(req *http.Request, ctx context.Context) *http.Request {
	s := req.Clone(ctx)
	if s.Header == nil {
		s.Header = make(http.Header) // a server's request always has one
	}
	s.Proto, s.ProtoMajor, s.ProtoMinor = "HTTP/1.1", 1, 1
	s.RemoteAddr = RemoteAddr
	s.RequestURI = req.URL.RequestURI()
	s.URL.Scheme, s.URL.Host = "", "" // origin-form, as parsed from a request line
	if s.Host == "" {
		s.Host = req.URL.Host
	}
	s.TLS = nil
	s.GetBody = nil
	s.Close = false
	if s.Body == nil || s.Body == http.NoBody {
		s.Body, s.ContentLength = http.NoBody, 0
	} else if s.ContentLength == 0 {
		s.ContentLength = -1 // a client's 0 with a body means unknown
	}
	return s
}

// serve runs the handler and finishes the response when it returns.
func (t *Transport) serve(w *responseWriter, sreq *http.Request, body io.ReadCloser) {
	var aborted bool
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				log := t.Logger
				if log == nil {
					log = slog.Default()
				}
				log.Error("inprocess: panic serving request", "method", sreq.Method, "uri", sreq.RequestURI, "panic", p, "stack", string(debug.Stack()))
			}
		}
		if body != nil {
			_ = body.Close()
		}
		w.finish(aborted)
		w.cancel(nil)
		w.mu.Lock()
		stop := w.stopClient
		w.mu.Unlock()
		if stop != nil {
			stop()
		}
	}()
	t.Handler.ServeHTTP(w, sreq)
}

type result struct {
	resp *http.Response
	err  error
}

// responseWriter is the handler's side of the exchange. Its buffer holds
// what the handler wrote and the client has not read; mu guards it all.
type responseWriter struct {
	clientReq *http.Request
	clientCtx context.Context // the client's: reads fail when it ends
	ctx       context.Context // the handler's
	cancel    context.CancelCauseFunc
	header    http.Header // the handler's, live
	head      bool        // a HEAD request: the body is dropped
	ready     chan result // receives the response or error, once

	mu          sync.Mutex
	cond        sync.Cond // a change for a waiting reader or writer
	status      int       // 0 until the final status is written
	resp        *http.Response
	trailers    []string // declared with the Trailer header
	buf         bytes.Buffer
	written     int64 // body bytes written, for HEAD's Content-Length
	unsignalled int   // bytes written since the reader was last woken
	sent        bool  // resp is with the client: streaming
	finished    bool  // the handler returned
	aborted     bool  // ... by panicking
	closed      bool  // the client closed the body
	// stopClient, set while a streaming handler runs, stops passing the
	// client's context's end on to the handler's.
	stopClient func() bool
}

var (
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
	_ http.Hijacker       = (*responseWriter)(nil)
)

// Header implements http.ResponseWriter.
func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter. Informational statuses
// (1xx but 101) are not passed on; only the first final status counts.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeaderLocked(code)
}

func (w *responseWriter) writeHeaderLocked(code int) {
	if w.status != 0 || w.finished {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		return
	}
	w.status = code
	h := w.header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	resp := &http.Response{
		Status:        strconv.Itoa(code) + " " + statusText(code),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: -1,
		Request:       w.clientReq,
	}
	if te, ok := h["Transfer-Encoding"]; ok {
		delete(h, "Transfer-Encoding")
		if len(te) > 0 && te[0] == "chunked" {
			resp.TransferEncoding = []string{"chunked"}
		}
	}
	if declared, ok := h["Trailer"]; ok {
		delete(h, "Trailer")
		resp.Trailer = make(http.Header)
		for _, v := range declared {
			for k := range strings.SplitSeq(v, ",") {
				if k = textproto.TrimString(k); k != "" {
					k = http.CanonicalHeaderKey(k)
					w.trailers = append(w.trailers, k)
					resp.Trailer[k] = nil
				}
			}
		}
	}
	w.resp = resp
}

func statusText(code int) string {
	if s := http.StatusText(code); s != "" {
		return s
	}
	return "status code " + strconv.Itoa(code)
}

// bodyAllowed reports whether the status lets the response have a body.
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// Write implements http.ResponseWriter. Before the response is sent, it
// buffers; afterwards it passes p on to the client, waiting while the
// client is more than maxPending behind.
func (w *responseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return 0, errWriteAfterReturn
	}
	if w.status == 0 {
		if _, ok := w.header["Content-Type"]; !ok && len(p) > 0 && !w.head {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.writeHeaderLocked(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.closed {
		return 0, ErrBodyClosed
	}
	if w.ctx.Err() != nil { // the client is gone
		return 0, context.Cause(w.ctx)
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	w.buf.Write(p)
	if !w.sent {
		if w.buf.Len() >= autoStreamSize {
			w.sendLocked()
		}
		return len(p), nil
	}
	w.unsignalled += len(p)
	if w.unsignalled >= flushSize {
		w.signalLocked()
	}
	for w.buf.Len() > maxPending {
		if w.closed {
			return len(p), ErrBodyClosed
		}
		if w.ctx.Err() != nil {
			return len(p), context.Cause(w.ctx)
		}
		w.cond.Wait()
	}
	return len(p), nil
}

// Flush implements http.Flusher: the response goes to the client now if it
// has not yet, and what was written is readable.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush, for http.ResponseController: it fails once the
// client has closed the body.
func (w *responseWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return errWriteAfterReturn
	}
	if w.status == 0 {
		w.writeHeaderLocked(http.StatusOK)
	}
	if w.closed {
		return ErrBodyClosed
	}
	if !w.sent {
		w.sendLocked()
	}
	w.signalLocked()
	return nil
}

// EnableFullDuplex implements what http.ResponseController asks for: the
// request body stays readable while the response is written, always.
func (w *responseWriter) EnableFullDuplex() error { return nil }

// Hijack implements http.Hijacker, to say why it cannot: ErrHijack.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, ErrHijack
}

// sendLocked hands the response to the client for streaming.
func (w *responseWriter) sendLocked() {
	w.sent = true
	resp := w.resp
	if resp.TransferEncoding == nil {
		resp.ContentLength = declaredLength(resp.Header)
		if resp.ContentLength < 0 {
			resp.TransferEncoding = []string{"chunked"}
		}
	}
	resp.Body = &body{w: w}
	// Wake a waiting reader or writer when the client goes away.
	context.AfterFunc(w.ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	w.ready <- result{resp: resp}
}

func declaredLength(h http.Header) int64 {
	if v := h.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}

func (w *responseWriter) signalLocked() {
	w.unsignalled = 0
	w.cond.Broadcast()
}

// finish ends the response when the handler returns: the whole response
// goes to the client if it has not yet (or an error, if the handler
// panicked before sending anything), else the client's reads reach EOF.
func (w *responseWriter) finish(aborted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !aborted && w.status == 0 {
		w.writeHeaderLocked(http.StatusOK)
	}
	w.finished, w.aborted = true, aborted
	if w.resp != nil {
		w.setTrailersLocked()
	}
	if w.sent {
		w.signalLocked()
		return
	}
	if aborted {
		w.ready <- result{err: errAborted}
		return
	}
	resp := w.resp
	resp.TransferEncoding = nil
	switch {
	case w.head:
		resp.ContentLength = declaredLength(resp.Header)
		if resp.ContentLength < 0 && w.written > 0 {
			resp.ContentLength = w.written
		}
		resp.Body = http.NoBody
	case w.buf.Len() == 0:
		resp.ContentLength = 0
		if !bodyAllowed(w.status) {
			resp.ContentLength = -1
		}
		resp.Body = http.NoBody
	default:
		resp.ContentLength = int64(w.buf.Len())
		resp.Body = &body{w: w}
	}
	w.ready <- result{resp: resp}
}

// setTrailersLocked fills the response's trailers from the handler's
// header: the names it declared, and those set with http.TrailerPrefix.
func (w *responseWriter) setTrailersLocked() {
	for _, k := range w.trailers {
		if v := w.header[k]; v != nil {
			w.resp.Trailer[k] = append([]string(nil), v...)
		}
	}
	for k, v := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && name != "" {
			if w.resp.Trailer == nil {
				w.resp.Trailer = make(http.Header)
			}
			w.resp.Trailer[http.CanonicalHeaderKey(name)] = append([]string(nil), v...)
		}
	}
}

// closeBody is the client giving up on the response: the handler's context
// ends and its further writes are dropped.
func (w *responseWriter) closeBody() {
	w.mu.Lock()
	w.closed = true
	w.buf.Reset()
	w.cond.Broadcast()
	w.mu.Unlock()
	w.cancel(ErrBodyClosed)
}

// body is the client's side: it reads what the handler wrote.
type body struct {
	w      *responseWriter
	closed bool // guarded by w.mu
}

// Read implements io.Reader: it waits for the handler's writes, and ends
// with io.EOF when the handler returns (an error wrapping
// io.ErrUnexpectedEOF if it panicked).
func (b *body) Read(p []byte) (int, error) {
	w := b.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case b.closed:
			return 0, errors.New("inprocess: read on closed response body")
		case w.buf.Len() > 0:
			n, _ := w.buf.Read(p)
			if w.buf.Len() <= maxPending {
				w.cond.Broadcast() // a writer may wait for room
			}
			return n, nil
		case w.sent && w.clientCtx.Err() != nil:
			// A stream the client gave up on ends with its reason, as
			// over the network, even if the handler returned.
			return 0, w.clientCtx.Err()
		case w.finished && w.aborted:
			return 0, errAborted
		case w.finished:
			return 0, io.EOF
		}
		w.cond.Wait()
	}
}

// Close implements io.Closer. Closing before EOF cancels the handler's
// context.
func (b *body) Close() error {
	w := b.w
	w.mu.Lock()
	if b.closed {
		w.mu.Unlock()
		return nil
	}
	b.closed = true
	done := w.finished
	w.mu.Unlock()
	if !done {
		w.closeBody()
	}
	return nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// isUpgrade reports whether h asks for a protocol upgrade.
func isUpgrade(h http.Header) bool {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}
