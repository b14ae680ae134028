package simfleet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"k8s.io/client-go/rest"
)

// RESTConfig returns c tuned for the one client a fleet's nodes share: no
// client-side rate limit. The nodes' requests would all share one token
// bucket (client-go's default of 5 requests/s would throttle the fleet
// together), and with any limiter at all client-go builds each request's
// URL template for its rate-limiter latency metric even when the request
// never waits: a tenth of the fleet's client CPU at 500 nodes. The API
// server's own inflight limits (429 with Retry-After, which client-go
// honours) remain. Its connections coalesce their writes (see
// coalescingConn): a request's frames, and other requests', go out in
// one system call.
//
// For an https server that c reaches directly (no proxy, no transport of
// its own), the transport under client-go's wrappers (user agent,
// credentials, c's WrapTransport such as failover) is an HTTP/2 transport
// of the fleet's own (see h2Transport) whose connections coalesce above
// TLS; otherwise client-go's transport, coalescing below TLS.
//
// An HTTP/1.1 connection pool in place of the one HTTP/2 connection was
// measured too (bench 500/10k): no less CPU in the fleet or the control
// plane once every event is posted within the run.
func RESTConfig(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.QPS, c.Burst, c.RateLimiter = -1, 0, nil
	if rt, err := h2Transport(c); err == nil && rt != nil {
		c.Transport = rt
		// The transport has them: client-go refuses TLS options beside
		// a transport of the caller's.
		c.TLSClientConfig = rest.TLSClientConfig{}
		c.Dial = nil
		return c
	}
	c.Dial = coalescingDial(c.Dial)
	return c
}

// HTTP/2 health checks, as client-go sets them on its transports
// (k8s.io/apimachinery/pkg/util/net.SetTransportDefaults).
const (
	h2ReadIdleTimeout = 30 * time.Second
	h2PingTimeout     = 15 * time.Second
)

// h2Transport returns an HTTP/2 transport for c, or nil when c is not for
// one (not https, a proxy, a transport of its own, TLS that does not
// offer h2).
//
// Coalescing above TLS rather than below it: a request's frames (its
// headers, then its body, flushed apart) are then encrypted by the
// connection's sender goroutine, together with whatever else is queued,
// in one TLS record, where below TLS each flush was sealed on its own by
// the goroutine HTTP/2 starts per request (whose stack grew to hold AES-
// GCM's frames: a fresh goroutine's stack is small). And HTTP/2 used
// directly skips net/http's transport and client-go's transport tracking
// in front of it, which added nothing for the fleet.
func h2Transport(c *rest.Config) (http.RoundTripper, error) {
	if !strings.HasPrefix(c.Host, "https://") || c.Transport != nil || c.Proxy != nil {
		return nil, nil
	}
	u, err := url.Parse(c.Host)
	if err != nil {
		return nil, nil
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil, nil
	}
	if len(c.NextProtos) > 0 && !slices.Contains(c.NextProtos, http2.NextProtoTLS) {
		return nil, nil
	}
	tlsCfg, err := rest.TLSConfigFor(c)
	if err != nil {
		return nil, fmt.Errorf("simfleet: TLS config: %w", err)
	}
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return &http2.Transport{
		TLSClientConfig: tlsCfg,
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			return dialTLS(ctx, dial, network, addr, cfg)
		},
		ReadIdleTimeout: h2ReadIdleTimeout,
		PingTimeout:     h2PingTimeout,
		// Tried and undone: a 1-byte HPACK table (nothing indexed) took
		// the fleet's doRequest from 1.01 to 0.64 CPU-s at 500/10k, but
		// the API server's decoding of the literal headers from 0.09 to
		// 0.27: CPU moved to the control plane, to little net gain.
	}, nil
}

// dialTLS dials addr, completes a TLS handshake that must settle on h2,
// and returns the connection with its writes coalesced above TLS.
func dialTLS(ctx context.Context, dial dialFunc, network, addr string, cfg *tls.Config) (net.Conn, error) {
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	if st := tc.ConnectionState(); st.NegotiatedProtocol != http2.NextProtoTLS {
		tc.Close()
		return nil, fmt.Errorf("simfleet: server %s negotiated %q, want %q", addr, st.NegotiatedProtocol, http2.NextProtoTLS)
	}
	return &tlsCoalescingConn{coalescingConn: coalesceWrites(tc), tls: tc}, nil
}

// tlsCoalescingConn is a TLS connection whose plaintext writes are
// coalesced; it reports its TLS state, as HTTP/2 asks a connection for it.
type tlsCoalescingConn struct {
	*coalescingConn
	tls *tls.Conn
}

// ConnectionState returns the TLS connection's state.
func (c *tlsCoalescingConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }
