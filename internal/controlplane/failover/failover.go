// Package failover spreads a client's requests over the API servers of a
// highly available cluster. Requests go to one server, the current one,
// until it fails at the transport level (refused, reset, unreachable);
// then to the next server not known to be down. The list of servers comes
// from the client's flags (seeds) and from the cluster itself, kept
// current by polling it (the default/kubernetes Endpoints, or the
// kube-public/drover-servers ConfigMap).
//
// It works by rewriting each request's scheme and host in a RoundTripper
// wrapped around client-go's transport: TLS is then verified against the
// server actually dialed, whose serving certificate names its own address
// (every server's certificate is signed by the same cluster CA).
package failover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// DefaultDownFor is how long a server that failed is passed over while
// others are not known to be down.
const DefaultDownFor = 10 * time.Second

// Servers is the list of API servers a client may use, and which one it
// uses now. It is safe for concurrent use.
type Servers struct {
	mu      sync.Mutex
	seeds   []string
	learned []string
	current string
	// down holds when each failed server may be tried again first.
	down    map[string]time.Time
	downFor time.Duration
	now     func() time.Time
	// onSwitch, if set, hears about every change of the current server.
	onSwitch func(from, to string, err error)
}

// Option configures Servers.
type Option func(*Servers)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Servers) { s.now = now } }

// WithDownFor sets how long a failed server is passed over.
func WithDownFor(d time.Duration) Option { return func(s *Servers) { s.downFor = d } }

// OnSwitch sets a function called (without locks held) whenever requests
// move to another server because of err.
func OnSwitch(f func(from, to string, err error)) Option {
	return func(s *Servers) { s.onSwitch = f }
}

// ParseURLs splits a comma-separated list of server URLs and normalizes
// each (see NormalizeURL). Empty entries are skipped; duplicates dropped.
func ParseURLs(list string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		u, err := NormalizeURL(f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// NormalizeURL checks that raw is the URL of a server (https, or http for
// tests; a host, an optional port, no path beyond "/", no query) and
// returns it as SCHEME://host[:port].
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("server URL %q: want https://HOST[:PORT]", raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("server URL %q: no host", raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.User != nil:
		return "", fmt.Errorf("server URL %q: want https://HOST[:PORT] without path, query or user", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// New returns the servers seeds (URLs as NormalizeURL accepts them, at
// least one); the first is the current one.
func New(seeds []string, opts ...Option) (*Servers, error) {
	s := &Servers{down: map[string]time.Time{}, downFor: DefaultDownFor, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	for _, raw := range seeds {
		u, err := NormalizeURL(raw)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(s.seeds, u) {
			s.seeds = append(s.seeds, u)
		}
	}
	if len(s.seeds) == 0 {
		return nil, errors.New("failover: no server URL")
	}
	s.current = s.seeds[0]
	return s, nil
}

// Current is the server requests go to now.
func (s *Servers) Current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// List is every known server: the seeds, then those learned from the
// cluster.
func (s *Servers) List() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

func (s *Servers) listLocked() []string {
	out := slices.Clone(s.seeds)
	for _, u := range s.learned {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// SetLearned replaces the servers learned from the cluster. Invalid URLs
// are skipped. An empty list keeps the previous one: a stale list is
// better than none. It reports whether the list changed.
func (s *Servers) SetLearned(urls []string) bool {
	var learned []string
	for _, raw := range urls {
		if u, err := NormalizeURL(raw); err == nil && !slices.Contains(learned, u) {
			learned = append(learned, u)
		}
	}
	if len(learned) == 0 {
		return false
	}
	slices.Sort(learned)
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(learned, s.learned) {
		return false
	}
	s.learned = learned
	return true
}

// order is the servers in the order to try them: the current one, then
// the others in list order from the one after it.
func (s *Servers) order() []string {
	list := s.listLocked()
	i := slices.Index(list, s.current)
	out := []string{s.current}
	for k := 1; k <= len(list); k++ {
		if u := list[(i+k+len(list))%len(list)]; u != s.current {
			out = append(out, u)
		}
	}
	return out
}

// pick returns the server to try next, skipping tried: the first in
// order not known to be down, else the first not tried at all; "" when
// every server was tried.
func (s *Servers) pick(tried []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(tried) == 0 && len(s.down) == 0 {
		return s.current // the common case, without building the order
	}
	now := s.now()
	var fallback string
	for _, u := range s.order() {
		if slices.Contains(tried, u) {
			continue
		}
		if until, ok := s.down[u]; ok && now.Before(until) {
			if fallback == "" {
				fallback = u
			}
			continue
		}
		return u
	}
	return fallback
}

// Succeeded records that server answered: it becomes the current one.
func (s *Servers) Succeeded(server string) {
	s.mu.Lock()
	from := s.current
	delete(s.down, server)
	s.current = server
	f := s.onSwitch
	s.mu.Unlock()
	if from != server && f != nil {
		f(from, server, nil)
	}
}

// Failed records that a request to server failed with err: it is passed
// over for a while, and if it was the current server the next one not
// known to be down becomes current.
func (s *Servers) Failed(server string, err error) {
	s.mu.Lock()
	s.down[server] = s.now().Add(s.downFor)
	if s.current != server {
		s.mu.Unlock()
		return
	}
	from := s.current
	order := s.order()
	if len(order) > 1 {
		s.current = order[1] // every server is down: try the next one first
	}
	for _, u := range order {
		if until, ok := s.down[u]; !ok || !s.now().Before(until) {
			s.current = u
			break
		}
	}
	to, f := s.current, s.onSwitch
	s.mu.Unlock()
	if from != to && f != nil {
		f(from, to, err)
	}
}

// DialTimeout bounds each connection attempt of a client set up by
// Configure (unless it has its own Dial), so that a server that does not
// answer at all (a dead machine) is passed over in seconds.
const DialTimeout = 5 * time.Second

// Configure points cfg at the current server and wraps its transport
// (after any WrapTransport it had) so that every request goes to the
// current server and fails over to the others.
func (s *Servers) Configure(cfg *rest.Config) {
	cfg.Host = s.Current()
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	prev := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		return &transport{servers: s, next: rt}
	}
}

// transport sends each request to a server of its Servers.
type transport struct {
	servers *Servers
	next    http.RoundTripper
}

// RoundTrip implements http.RoundTripper: it tries servers in turn while
// the request may safely be sent again (see retriable).
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var tried []string
	for {
		server := t.servers.pick(tried)
		if server == "" && len(tried) == 0 {
			return nil, errors.New("failover: no server")
		}
		attempt, err := redirect(req, server, len(tried) > 0)
		if err != nil {
			return nil, err
		}
		resp, err := t.next.RoundTrip(attempt)
		if err == nil {
			t.servers.Succeeded(server)
			return resp, nil
		}
		switch cerr := req.Context().Err(); {
		case errors.Is(cerr, context.DeadlineExceeded):
			// No answer in the caller's time: a server that hangs (or
			// whose machine vanished without a reset) is passed over next.
			t.servers.Failed(server, err)
			return nil, err
		case cerr != nil:
			return nil, err // the caller gave up: says nothing of the server
		}
		t.servers.Failed(server, err)
		tried = append(tried, server)
		if !retriable(req, err) || t.servers.pick(tried) == "" {
			return nil, err
		}
	}
}

// redirect returns req sent to server: req itself when it goes there
// already (the client's host is the current server's) and is sent for the
// first time, else a copy with its own URL and a fresh body when the
// request is being sent again. The copy is shallow, sharing req's header
// (which no transport below changes): a deep clone of every request of a
// simulated fleet was a thirtieth of its CPU.
func redirect(req *http.Request, server string, again bool) (*http.Request, error) {
	scheme, host, ok := strings.Cut(server, "://")
	if !ok {
		return nil, fmt.Errorf("failover: server %q is not a URL", server)
	}
	if !again && req.URL.Scheme == scheme && req.URL.Host == host && (req.Host == "" || req.Host == host) {
		return req, nil
	}
	r := new(http.Request)
	*r = *req
	u := *req.URL
	u.Scheme, u.Host = scheme, host
	r.URL = &u
	r.Host = ""
	if again && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("failover: body for another server: %w", err)
		}
		r.Body = body
	}
	return r, nil
}

// retriable says whether req, which failed with err, may go to another
// server: when it never reached the server (the dial failed), or when it
// is idempotent; and only when its body can be read again.
func retriable(req *http.Request, err error) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	if dialFailed(err) {
		return true
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// dialFailed reports whether err came from connecting, before anything
// was sent.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Reachable returns the first of urls that accepts a TCP connection
// within timeout, trying them in order; else the first of urls. It picks
// where to go before any client exists (e.g. to join).
func Reachable(ctx context.Context, urls []string, timeout time.Duration) string {
	if len(urls) == 0 {
		return ""
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		addr := u.Host
		if u.Port() == "" {
			port := "443"
			if u.Scheme == "http" {
				port = "80"
			}
			addr = net.JoinHostPort(u.Hostname(), port)
		}
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			return raw
		}
	}
	return urls[0]
}
