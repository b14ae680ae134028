package etcd

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease reuse, as upstream's etcd3 lease manager: a lease serves many writes
// while it expires late enough for their TTL but not too much later, and
// until it has leaseMaxAttached keys.
const (
	// leaseReuseMax caps how much later than asked a key may expire.
	leaseReuseMax = 60 * time.Second
	// leaseReusePercent of the TTL is how much later than asked a key may
	// expire, below leaseReuseMax.
	leaseReusePercent = 0.05
	// leaseMaxAttached is the most writes one lease serves.
	leaseMaxAttached = 1000
)

// leaseManager hands out etcd leases for writes with a TTL, reusing one
// lease for many writes: a key granted a TTL of ttl seconds expires between
// ttl and ttl+reuse seconds after its write, where reuse = min(60 s, 5% of
// ttl). Without reuse every event write would cost a lease grant, and etcd
// would keep a lease per event.
type leaseManager struct {
	client *clientv3.Client

	mu       sync.Mutex
	id       clientv3.LeaseID // the lease writes reuse; 0: none
	expiry   time.Time        // when id expires, at the latest
	attached int64            // writes given id
}

func newLeaseManager(client *clientv3.Client) *leaseManager {
	return &leaseManager{client: client}
}

// ttlSeconds rounds ttl up to whole seconds, at least one.
func ttlSeconds(ttl time.Duration) int64 {
	return max(int64((ttl+time.Second-1)/time.Second), 1)
}

// reuseSeconds is how many seconds past its TTL a key may live: min(60 s,
// 5% of ttl), rounded down as upstream does.
func reuseSeconds(ttl int64) int64 {
	return min(int64(leaseReusePercent*float64(ttl)), int64(leaseReuseMax/time.Second))
}

// get returns a lease that expires between ttl and ttl+reuse seconds from
// now, granting one (of ttl+reuse seconds) when the current one does not.
// Concurrent callers wait for one grant.
func (l *leaseManager) get(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
	now := time.Now()
	reuse := reuseSeconds(ttl)
	l.mu.Lock()
	defer l.mu.Unlock()
	// As upstream: every request counts, whether its write succeeds or not.
	l.attached++
	if l.id != 0 && l.attached <= leaseMaxAttached &&
		now.Add(time.Duration(ttl)*time.Second).Before(l.expiry) &&
		now.Add(time.Duration(ttl+reuse)*time.Second).After(l.expiry) {
		return l.id, nil
	}
	resp, err := l.client.Grant(ctx, ttl+reuse)
	if err != nil {
		return 0, err
	}
	// The lease runs from etcd's grant, after now: it expires no earlier.
	l.id, l.expiry, l.attached = resp.ID, now.Add(time.Duration(ttl+reuse)*time.Second), 1
	return l.id, nil
}

// forget drops id, which etcd no longer knows (revoked, or expired early),
// so that the next write gets a new lease.
func (l *leaseManager) forget(id clientv3.LeaseID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id == id {
		l.id, l.expiry, l.attached = 0, time.Time{}, 0
	}
}
