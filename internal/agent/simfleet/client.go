package simfleet

import "k8s.io/client-go/rest"

// RESTConfig returns c tuned for the one client a fleet's nodes share: no
// client-side rate limit. The nodes' requests would all share one token
// bucket (client-go's default of 5 requests/s would throttle the fleet
// together), and with any limiter at all client-go builds each request's
// URL template for its rate-limiter latency metric even when the request
// never waits: a tenth of the fleet's client CPU at 500 nodes. The API
// server's own inflight limits (429 with Retry-After, which client-go
// honours) remain. Its connections coalesce their writes (see
// coalescingConn): a request's two TLS records, and other requests', go
// out in one system call.
//
// An HTTP/1.1 connection pool in place of the one HTTP/2 connection was
// measured too (bench 500/10k): no less CPU in the fleet or the control
// plane once every event is posted within the run.
func RESTConfig(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.QPS, c.Burst, c.RateLimiter = -1, 0, nil
	c.Dial = coalescingDial(c.Dial)
	return c
}
