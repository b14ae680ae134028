package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DialTimeout bounds one attempt to reach a backend in userspace mode;
// after it (or a refusal) the next backend is tried.
const DialTimeout = 2 * time.Second

// DrainTimeout bounds how long a userspace sync waits for connections
// being set up to backends that have left (see listener.drain).
const DrainTimeout = 250 * time.Millisecond

// userspace proxies TCP in this process: one listener per node port (on
// the node-port address) and per cluster IP:port that is assigned to a
// local interface.
type userspace struct {
	log      *slog.Logger
	nodeAddr netip.Addr // where node ports listen; unspecified = all

	mu        sync.Mutex
	listeners map[netip.AddrPort]*listener
	skipped   map[netip.AddrPort]bool // cluster IPs we cannot bind, logged once
}

func newUserspace(nodePortAddr string, log *slog.Logger) (*userspace, error) {
	a := netip.IPv4Unspecified()
	if nodePortAddr != "" {
		var err error
		if a, err = netip.ParseAddr(nodePortAddr); err != nil {
			return nil, errors.New("proxy: node port address: " + err.Error())
		}
	}
	return &userspace{log: log, nodeAddr: a, listeners: map[netip.AddrPort]*listener{}, skipped: map[netip.AddrPort]bool{}}, nil
}

// Sync opens listeners for new TCP routes, points existing ones at their
// current backends, and closes those of routes that went away. Open
// connections are never closed: they finish with the backend they have.
// It returns once no connection is still being dialled to a backend that
// left (at most DrainTimeout later), so that whoever waits for the sync
// may stop that backend.
func (u *userspace) Sync(_ context.Context, t Table) error {
	want := map[netip.AddrPort]*Route{}
	for i := range t.Routes {
		r := &t.Routes[i]
		if r.Protocol != "TCP" {
			continue
		}
		if r.NodePort != 0 {
			want[netip.AddrPortFrom(u.nodeAddr, uint16(r.NodePort))] = &Route{
				Namespace: r.Namespace, Service: r.Service, PortName: r.PortName, Protocol: r.Protocol,
				Backends: r.ExternalBackends, Affinity: r.Affinity,
			}
		}
		for _, ip := range r.ClusterIPs {
			want[netip.AddrPortFrom(ip, uint16(r.Port))] = r
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var errs []error
	for addr, l := range u.listeners {
		if _, ok := want[addr]; !ok {
			l.close()
			delete(u.listeners, addr)
		}
	}
	type pendingDrain struct {
		l   *listener
		gen uint64
	}
	var drains []pendingDrain
	defer func() {
		var wg sync.WaitGroup
		for _, d := range drains {
			wg.Go(func() { d.l.drain(d.gen, DrainTimeout) })
		}
		wg.Wait()
	}()
	for addr, r := range want {
		if l, ok := u.listeners[addr]; ok {
			drains = append(drains, pendingDrain{l, l.update(r)})
			continue
		}
		ln, err := net.Listen("tcp", addr.String())
		if err != nil {
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				// A cluster IP not assigned here: only reachable with
				// iptables mode (or once someone assigns it).
				if !u.skipped[addr] {
					u.skipped[addr] = true
					u.log.Debug("proxy: cluster IP not local, not listening", "addr", addr, "service", r.Key())
				}
				continue
			}
			errs = append(errs, err)
			continue
		}
		delete(u.skipped, addr)
		l := &listener{ln: ln, log: u.log, key: r.Key(), affinity: map[netip.Addr]affinityEntry{}, dialing: map[uint64]int{}}
		l.dcond = sync.NewCond(&l.dmu)
		l.update(r)
		u.listeners[addr] = l
		go l.serve()
		u.log.Debug("proxy: listening", "addr", ln.Addr(), "service", r.Key())
	}
	return errors.Join(errs...)
}

// Close stops accepting; open connections run on until either side ends.
func (u *userspace) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for addr, l := range u.listeners {
		l.close()
		delete(u.listeners, addr)
	}
}

// listener is one proxied address.
type listener struct {
	ln  net.Listener
	log *slog.Logger
	key string

	backends    atomic.Pointer[[]Backend]
	affinityTTL atomic.Int64 // nanoseconds; 0 = none
	next        atomic.Uint64

	mu       sync.Mutex
	affinity map[netip.Addr]affinityEntry

	// Dials in progress by generation of the backend list they read, so
	// that a sync can wait for those still going to a removed backend.
	dmu     sync.Mutex
	dcond   *sync.Cond
	gen     uint64
	dialing map[uint64]int
}

type affinityEntry struct {
	backend Backend
	last    time.Time
}

// update points new connections at r's backends and returns the
// generation of the previous list, for drain.
func (l *listener) update(r *Route) uint64 {
	bs := r.Backends
	l.backends.Store(&bs)
	l.affinityTTL.Store(int64(r.Affinity))
	l.dmu.Lock()
	defer l.dmu.Unlock()
	l.gen++
	return l.gen - 1
}

// beginDial registers a dial; it must be called before the dial reads the
// backends.
func (l *listener) beginDial() uint64 {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	l.dialing[l.gen]++
	return l.gen
}

func (l *listener) endDial(g uint64) {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if l.dialing[g]--; l.dialing[g] <= 0 {
		delete(l.dialing, g)
	}
	l.dcond.Broadcast()
}

// drain waits, at most max, until no dial that read a backend list of
// generation old or before is in progress: once it returns, no new
// connection is being set up to a backend that has left (unless one does
// not answer within max).
func (l *listener) drain(old uint64, max time.Duration) {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	pending := func() bool {
		for g := range l.dialing {
			if g <= old {
				return true
			}
		}
		return false
	}
	if !pending() {
		return
	}
	expired := false
	t := time.AfterFunc(max, func() {
		l.dmu.Lock()
		expired = true
		l.dcond.Broadcast()
		l.dmu.Unlock()
	})
	defer t.Stop()
	for pending() && !expired {
		l.dcond.Wait()
	}
}

func (l *listener) close() { l.ln.Close() }

func (l *listener) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Warn("proxy: accept failed", "service", l.key, "err", err)
			}
			return
		}
		go l.handle(c)
	}
}

// handle connects c to a backend (round robin, or the client's previous
// backend under ClientIP affinity), trying the next on a failed dial, and
// copies both ways until both sides are done.
func (l *listener) handle(c net.Conn) {
	defer c.Close()
	client := netip.Addr{}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		client = ap.Addr().Unmap()
	}
	up, err := l.dial(client)
	if err != nil {
		l.log.Debug("proxy: no backend reachable", "service", l.key, "err", err)
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		n, err := io.Copy(dst, src)
		if src == up && n == 0 {
			l.log.Debug("proxy: backend closed without answering", "service", l.key, "backend", up.RemoteAddr(), "err", err)
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

// errNoBackends is returned when a route has no backends.
var errNoBackends = errors.New("no ready endpoints")

func (l *listener) dial(client netip.Addr) (net.Conn, error) {
	defer l.endDial(l.beginDial())
	bs := *l.backends.Load()
	if len(bs) == 0 {
		return nil, errNoBackends
	}
	ttl := time.Duration(l.affinityTTL.Load())
	now := time.Now()
	if ttl > 0 && client.IsValid() {
		l.mu.Lock()
		e, ok := l.affinity[client]
		l.mu.Unlock()
		if ok && now.Sub(e.last) < ttl && containsBackend(bs, e.backend) {
			if c, err := net.DialTimeout("tcp", e.backend.String(), DialTimeout); err == nil {
				l.remember(client, e.backend, now, ttl)
				return c, nil
			}
		}
	}
	start := l.next.Add(1) - 1
	var errs []error
	for i := range len(bs) {
		b := bs[(start+uint64(i))%uint64(len(bs))]
		c, err := net.DialTimeout("tcp", b.String(), DialTimeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ttl > 0 && client.IsValid() {
			l.remember(client, b, now, ttl)
		}
		return c, nil
	}
	return nil, errors.Join(errs...)
}

func (l *listener) remember(client netip.Addr, b Backend, now time.Time, ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.affinity[client] = affinityEntry{backend: b, last: now}
	if len(l.affinity) > 4096 { // drop expired entries now and then
		for k, e := range l.affinity {
			if now.Sub(e.last) >= ttl {
				delete(l.affinity, k)
			}
		}
	}
}

func containsBackend(bs []Backend, b Backend) bool {
	for _, x := range bs {
		if x.IP == b.IP && x.Port == b.Port {
			return true
		}
	}
	return false
}
