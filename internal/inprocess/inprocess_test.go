package inprocess_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/inprocess"
)

// client is an http.Client over an in-process Transport serving h.
func client(h http.Handler) *http.Client {
	return &http.Client{Transport: &inprocess.Transport{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
}

// waitGoroutines waits until no more goroutines run than before, failing
// the test after a deadline.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// within receives from ch, failing the test if nothing comes in 10s.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestRequestAsServerSeesIt(t *testing.T) {
	type seen struct {
		method, uri, path, query, host, remote, proto, auth, body string
		major, minor                                              int
		contentLength                                             int64
		tls                                                       bool
		urlHost                                                   string
		served                                                    bool
	}
	got := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading request body: %v", err)
		}
		got <- seen{r.Method, r.RequestURI, r.URL.Path, r.URL.RawQuery, r.Host, r.RemoteAddr, r.Proto, r.Header.Get("Authorization"), string(b),
			r.ProtoMajor, r.ProtoMinor, r.ContentLength, r.TLS != nil, r.URL.Host, inprocess.Served(r)}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Answer", "42")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"echo":%q}`, b)
	})
	req, err := http.NewRequest(http.MethodPost, "http://inprocess/api/v1/namespaces/a/configmaps?fieldManager=x", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := client(h).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || resp.Status != "201 Created" || resp.Proto != "HTTP/1.1" {
		t.Errorf("status %d %q proto %q", resp.StatusCode, resp.Status, resp.Proto)
	}
	if want := `{"echo":"hello"}`; string(b) != want || resp.ContentLength != int64(len(want)) {
		t.Errorf("body %q length %d, want %q", b, resp.ContentLength, want)
	}
	if resp.Header.Get("X-Answer") != "42" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", resp.Header)
	}
	if resp.Request != req {
		t.Errorf("resp.Request is not the client's request")
	}
	s := within(t, got, "the request")
	want := seen{"POST", "/api/v1/namespaces/a/configmaps?fieldManager=x", "/api/v1/namespaces/a/configmaps", "fieldManager=x", "inprocess", inprocess.RemoteAddr, "HTTP/1.1", "Bearer tok", "hello",
		1, 1, 5, false, "", true}
	if s != want {
		t.Errorf("server saw\n%+v\nwant\n%+v", s, want)
	}
}

func TestStatusesAndDefaults(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
		case "/notfound":
			http.Error(w, "no such thing", http.StatusNotFound)
		case "/twice":
			w.WriteHeader(http.StatusConflict)
			w.WriteHeader(http.StatusOK)  // superfluous, ignored
			w.Header().Set("X-Late", "1") // after the header: not sent
			_, _ = io.WriteString(w, "conflict")
		case "/early-hints":
			w.Header().Set("Link", "</a>")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
		case "/sniff":
			_, _ = io.WriteString(w, "<html><body>hi</body></html>")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				t.Errorf("write on 204: %v, want ErrBodyNotAllowed", err)
			}
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "abc")
			w.Header().Set("X-Sum", "3")
			w.Header().Set(http.TrailerPrefix+"X-Extra", "e")
		}
	})
	c := client(h)
	for _, tc := range []struct {
		path, status, body string
		header, value      string
	}{
		{"/empty", "200 OK", "", "", ""},
		{"/notfound", "404 Not Found", "no such thing\n", "Content-Type", "text/plain; charset=utf-8"},
		{"/twice", "409 Conflict", "conflict", "X-Late", ""},
		{"/early-hints", "202 Accepted", "", "Link", "</a>"},
		{"/sniff", "200 OK", "<html><body>hi</body></html>", "Content-Type", "text/html; charset=utf-8"},
		{"/nocontent", "204 No Content", "", "", ""},
		{"/trailer", "200 OK", "abc", "Trailer", ""},
	} {
		resp, err := c.Get("http://inprocess" + tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if resp.Status != tc.status || string(b) != tc.body {
			t.Errorf("%s: %q %q, want %q %q", tc.path, resp.Status, b, tc.status, tc.body)
		}
		if tc.header != "" && resp.Header.Get(tc.header) != tc.value {
			t.Errorf("%s: header %s = %q, want %q", tc.path, tc.header, resp.Header.Get(tc.header), tc.value)
		}
		if tc.path == "/trailer" && (resp.Trailer.Get("X-Sum") != "3" || resp.Trailer.Get("X-Extra") != "e") {
			t.Errorf("trailers %v", resp.Trailer)
		}
	}
	// HEAD: the body is dropped, its length kept.
	resp, err := c.Head("http://inprocess/sniff")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != int64(len("<html><body>hi</body></html>")) {
		t.Errorf("HEAD content length %d", resp.ContentLength)
	}
}

// TestStreaming: the client gets the response at the first flush and reads
// each flushed chunk while the handler is still running.
func TestStreaming(t *testing.T) {
	before := runtime.NumGoroutine()
	next := make(chan struct{})
	handlerDone := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		if err := rc.Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("SetWriteDeadline: %v, want ErrNotSupported", err)
		}
		for i := range 3 {
			select {
			case <-next:
			case <-r.Context().Done():
				t.Errorf("handler context ended: %v", r.Context().Err())
				return
			}
			fmt.Fprintf(w, "event %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	resp, err := client(h).Get("http://inprocess/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.Header.Get("Transfer-Encoding") != "" {
		t.Errorf("streamed response: length %d, transfer encoding %v, header %v", resp.ContentLength, resp.TransferEncoding, resp.Header)
	}
	lines := bufio.NewReader(resp.Body)
	for i := range 3 {
		next <- struct{}{}
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("event %d\n", i); line != want {
			t.Errorf("read %q, want %q", line, want)
		}
		select {
		case <-handlerDone:
			if i < 2 {
				t.Fatalf("handler ended before chunk %d was read", i)
			}
		default:
		}
	}
	if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
		t.Errorf("after the last chunk: %q, %v; want EOF", rest, err)
	}
	within(t, handlerDone, "the handler to end")
	resp.Body.Close()
	waitGoroutines(t, before)
}

// TestBackpressure: a streaming handler that writes far more than the
// client reads waits for it, and all the bytes arrive in order.
func TestBackpressure(t *testing.T) {
	const chunks, size = 200, 16 << 10
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		chunk := make([]byte, size)
		for i := range chunks {
			for j := range chunk {
				chunk[j] = byte(i)
			}
			if _, err := w.Write(chunk); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	})
	resp, err := client(h).Get("http://inprocess/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != chunks*size {
		t.Fatalf("read %d bytes, want %d", len(b), chunks*size)
	}
	for i := range chunks {
		if b[i*size] != byte(i) || b[(i+1)*size-1] != byte(i) {
			t.Fatalf("chunk %d out of order", i)
		}
	}
}

// TestCloseBodyEndsHandler: a client that stops reading a stream and closes
// the body ends the handler's context, and the handler's writes fail
// rather than block.
func TestCloseBodyEndsHandler(t *testing.T) {
	before := runtime.NumGoroutine()
	cause := make(chan error, 1)
	writeErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
		// Far more than the client would buffer: must not block.
		_, err := w.Write(make([]byte, 1<<20))
		writeErr <- err
	})
	resp, err := client(h).Get("http://inprocess/")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	resp.Body.Close()
	if err := within(t, cause, "the handler's context to end"); !errors.Is(err, inprocess.ErrBodyClosed) {
		t.Errorf("handler context cause %v, want ErrBodyClosed", err)
	}
	if err := within(t, writeErr, "the handler's write"); !errors.Is(err, inprocess.ErrBodyClosed) {
		t.Errorf("write after close: %v, want ErrBodyClosed", err)
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Errorf("read after close succeeded")
	}
	waitGoroutines(t, before)
}

// TestClientContextEndsHandler: cancelling the client's context ends the
// handler, whether it has flushed or not, and RoundTrip or the body read
// reports the cancellation.
func TestClientContextEndsHandler(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, flush := range []bool{false, true} {
		started, ended := make(chan struct{}), make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(ended)
			if flush {
				w.(http.Flusher).Flush()
			}
			close(started)
			<-r.Context().Done()
		})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://inprocess/", nil)
		done := make(chan error, 1)
		go func() {
			resp, err := client(h).Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
		within(t, started, "the handler to start")
		cancel()
		if err := within(t, done, "the client"); !errors.Is(err, context.Canceled) {
			t.Errorf("flush %v: client got %v, want context.Canceled", flush, err)
		}
		within(t, ended, "the handler to end")
	}
	waitGoroutines(t, before)
}

func TestPanickingHandler(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"before response", func(w http.ResponseWriter, r *http.Request) { panic("boom") }},
		{"abort", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "partial")
			panic(http.ErrAbortHandler)
		}},
		{"while streaming", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("boom")
		}},
	} {
		resp, err := client(tc.handler).Get("http://inprocess/")
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "partial" {
				t.Errorf("%s: body %q, want the truncated %q", tc.name, b, "partial")
			}
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: client got %v, want an error wrapping io.ErrUnexpectedEOF", tc.name, err)
		}
	}
	waitGoroutines(t, before)
}

func TestHijackAndUpgradeRefused(t *testing.T) {
	hijackErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, err := http.NewResponseController(w).Hijack()
		hijackErr <- err
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
	})
	resp, err := client(h).Get("http://inprocess/exec")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := within(t, hijackErr, "Hijack"); !errors.Is(err, inprocess.ErrHijack) {
		t.Errorf("Hijack: %v, want ErrHijack", err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://inprocess/api/v1/namespaces/a/pods/p/exec", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	if _, err := client(h).Do(req); !errors.Is(err, inprocess.ErrUpgrade) {
		t.Errorf("upgrade request: %v, want ErrUpgrade", err)
	}
}

// TestLargeUnflushedResponseStreams: a response that grows past the
// buffering limit without a flush still reaches the client, whole.
func TestLargeUnflushedResponseStreams(t *testing.T) {
	const total = 12 << 20
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for n := 0; n < total; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	})
	resp, err := client(h).Get("http://inprocess/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != total {
		t.Errorf("read %d bytes, %v; want %d", n, err, total)
	}
}

// TestBaseContextEndsHandlers: ending the Transport's BaseContext ends the
// handlers it is serving, and later requests fail.
func TestBaseContextEndsHandlers(t *testing.T) {
	before := runtime.NumGoroutine()
	base, stop := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		ended <- r.Context().Err()
	})
	c := &http.Client{Transport: &inprocess.Transport{Handler: h, BaseContext: base}}
	resp, err := c.Get("http://inprocess/watch")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if err := within(t, ended, "the handler to end"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler context: %v, want context.Canceled", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("reading the ended stream: %v, want EOF", err)
	}
	resp.Body.Close()
	if _, err := c.Get("http://inprocess/"); !errors.Is(err, context.Canceled) {
		t.Errorf("request after the base context ended: %v, want context.Canceled", err)
	}
	waitGoroutines(t, before)
}

// TestMaxConcurrent: no more handlers run at once than MaxConcurrent; the
// others wait for a slot and are all served once slots free up.
func TestMaxConcurrent(t *testing.T) {
	const bound, requests = 2, 10
	var (
		mu          sync.Mutex
		running     int
		maxRunning  int
		release     = make(chan struct{})
		twoInside   = make(chan struct{})
		signalTwice sync.Once
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		if running == bound {
			signalTwice.Do(func() { close(twoInside) })
		}
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	})
	c := &http.Client{Transport: &inprocess.Transport{Handler: h, MaxConcurrent: bound}}
	errs := make(chan error, requests)
	for range requests {
		go fetch(context.Background(), c, errs)
	}
	within(t, twoInside, "two handlers to run")
	close(release)
	for range requests {
		if err := within(t, errs, "a response"); err != nil {
			t.Error(err)
		}
	}
	if maxRunning != bound {
		t.Errorf("%d handlers ran at once, want %d", maxRunning, bound)
	}
}

// TestStreamHoldsNoSlot: a streaming response frees its slot once handed
// over, so a watch does not keep other requests waiting.
func TestStreamHoldsNoSlot(t *testing.T) {
	stop := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/watch" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-stop:
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprint(w, "ok")
	})
	c := &http.Client{Transport: &inprocess.Transport{Handler: h, MaxConcurrent: 1}}
	watch, err := c.Get("http://inprocess/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer close(stop)
	defer watch.Body.Close()
	done := make(chan string, 1)
	go func() {
		resp, err := c.Get("http://inprocess/other")
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- string(b)
	}()
	if got := within(t, done, "a request while a stream runs"); got != "ok" {
		t.Errorf("got %q", got)
	}
}

// TestWaitingForSlotEndsWithContext: a request waiting for a slot gives up
// when its context ends.
func TestWaitingForSlotEndsWithContext(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	c := &http.Client{Transport: &inprocess.Transport{Handler: h, MaxConcurrent: 1}}
	first := make(chan error, 1)
	go fetch(context.Background(), c, first)
	within(t, entered, "the first handler")
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go fetch(ctx, c, second)
	cancel()
	if err := within(t, second, "the waiting request to give up"); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting request: %v, want context.Canceled", err)
	}
	close(release)
	if err := within(t, first, "the first request"); err != nil {
		t.Error(err)
	}
}

// fetch GETs http://inprocess/ with ctx and reports the outcome on errs.
func fetch(ctx context.Context, c *http.Client, errs chan<- error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://inprocess/", nil)
	if err == nil {
		var resp *http.Response
		if resp, err = c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	errs <- err
}

// TestServedOnlyInProcess: a handler tells in-process requests from the
// network's.
func TestServedOnlyInProcess(t *testing.T) {
	served := make(chan bool, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served <- inprocess.Served(r) })
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		name   string
		client *http.Client
		url    string
		want   bool
	}{
		{"network", srv.Client(), srv.URL, false},
		{"in process", client(h), "http://inprocess/", true},
	} {
		resp, err := c.client.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := within(t, served, c.name); got != c.want {
			t.Errorf("%s: Served = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAsSetsIdentity: a Transport's As puts the bearer token and user
// agent on the request the handler sees where the client set none, leaves
// the client's own headers be, and leaves the client's request unmodified.
func TestAsSetsIdentity(t *testing.T) {
	type seen struct{ auth, ua string }
	got := make(chan seen, 1)
	tr := &inprocess.Transport{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("Authorization"), r.Header.Get("User-Agent")}
	})}
	c := &http.Client{Transport: tr.As(inprocess.Identity{BearerToken: "tok", UserAgent: "agent/1"})}
	for _, tc := range []struct {
		name      string
		header    http.Header
		want      seen
		wantAfter http.Header
	}{
		{"none set", http.Header{}, seen{"Bearer tok", "agent/1"}, http.Header{}},
		{"nil header", nil, seen{"Bearer tok", "agent/1"}, nil},
		{"client's own", http.Header{"Authorization": {"Bearer other"}, "User-Agent": {"mine"}}, seen{"Bearer other", "mine"},
			http.Header{"Authorization": {"Bearer other"}, "User-Agent": {"mine"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http://inprocess/api", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if s := within(t, got, "the handler"); s != tc.want {
				t.Errorf("handler saw %+v, want %+v", s, tc.want)
			}
			if fmt.Sprint(req.Header) != fmt.Sprint(tc.wantAfter) {
				t.Errorf("client's request header became %v, want %v", req.Header, tc.wantAfter)
			}
		})
	}
	// The plain Transport adds nothing.
	resp, err := (&http.Client{Transport: tr}).Get("http://inprocess/api")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := within(t, got, "the handler"); s != (seen{}) {
		t.Errorf("plain transport: handler saw %+v, want no Authorization nor User-Agent", s)
	}
}

// TestAsSharesTheBound: requests through As take the Transport's
// MaxConcurrent slots, the same as through the Transport itself.
func TestAsSharesTheBound(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	entered := make(chan struct{}, 2)
	tr := &inprocess.Transport{MaxConcurrent: 1, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})}
	errs := make(chan error, 2)
	go fetch(context.Background(), &http.Client{Transport: tr}, errs)
	within(t, entered, "the first request")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go fetch(ctx, &http.Client{Transport: tr.As(inprocess.Identity{UserAgent: "x"})}, errs)
	if err := within(t, errs, "the second request to give up"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request through As while the one slot is held: %v, want it to wait for the slot until its deadline", err)
	}
	select {
	case <-entered:
		t.Error("request through As reached the handler while the one slot was held")
	default:
	}
	free()
	if err := within(t, errs, "the first request"); err != nil {
		t.Errorf("first request: %v", err)
	}
}

// TestHandlerContextHasClientValuesAndDeadline: the handler's context
// carries the client's context's values and deadline, as it did when it
// was the client's child, and ends for the client's reason.
func TestHandlerContextHasClientValuesAndDeadline(t *testing.T) {
	type key struct{}
	type seen struct {
		value    any
		deadline time.Time
		ok       bool
		cause    error
	}
	got := make(chan seen, 1)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		d, ok := ctx.Deadline()
		close(started)
		<-ctx.Done()
		got <- seen{ctx.Value(key{}), d, ok, context.Cause(ctx)}
	})
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), key{}, "v"), deadline)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://inprocess/", nil)
	done := make(chan error, 1)
	go func() {
		_, err := client(h).Do(req)
		done <- err
	}()
	within(t, started, "the handler to start")
	cancel()
	if err := within(t, done, "the client"); !errors.Is(err, context.Canceled) {
		t.Errorf("client got %v, want context.Canceled", err)
	}
	s := within(t, got, "the handler")
	if s.value != "v" || !s.ok || !s.deadline.Equal(deadline) || !errors.Is(s.cause, context.Canceled) {
		t.Errorf("handler's context: value %v, deadline %v %v, cause %v; want v, %v, context.Canceled", s.value, s.deadline, s.ok, s.cause, deadline)
	}
}
