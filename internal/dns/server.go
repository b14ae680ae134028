// Package dns is the cluster DNS server: authoritative for the cluster
// zone (cluster.local) from Services and EndpointSlices, forwarding other
// names to the host's resolvers. Pods with dnsPolicy ClusterFirst get it as
// their nameserver, with the search path <ns>.svc.cluster.local
// svc.cluster.local cluster.local and ndots:5, so "web", "web.prod" and
// "web.prod.svc.cluster.local" all find service web in namespace prod.
//
// What a name means is decided by the pure Index (NewIndex, Answer); Run
// keeps an Index current from informers and serves it over UDP and TCP
// with github.com/miekg/dns.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Defaults.
const (
	// DefaultResolvConf is where upstream resolvers are read from.
	DefaultResolvConf = "/etc/resolv.conf"
	// ForwardTimeout bounds one query to one upstream.
	ForwardTimeout = 2 * time.Second
	// Resync is the informers' resync period.
	Resync = 10 * time.Minute
)

// Options configure the server.
type Options struct {
	// Addr is the host:port to serve on, UDP and TCP (port 0: any free
	// port, the same for both). Required.
	Addr string
	// Domain is the cluster zone; default DefaultDomain.
	Domain string
	// TTL of the cluster records; default DefaultTTL.
	TTL uint32
	// Upstreams are the resolvers ("ip:port") for other names; when nil
	// they are read from ResolvConf. With none, such queries are refused.
	Upstreams []string
	// ResolvConf is the file with the upstream nameservers; default
	// DefaultResolvConf.
	ResolvConf string
	// OnReady, if set, is called once the server listens and its caches
	// have synced, with the address it serves on.
	OnReady func(addr string)
}

// Run serves DNS until ctx is done, then returns nil; it returns an error
// if it cannot start (the address is taken, bad options).
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger, opts Options) error {
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("component", "dns")
	if opts.Addr == "" {
		return errors.New("dns: no listen address")
	}
	pc, ln, err := listen(opts.Addr)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	upstreams := opts.Upstreams
	if upstreams == nil {
		upstreams = readUpstreams(opts.ResolvConf, log)
	}
	// Never forward to ourselves.
	upstreams = slices.DeleteFunc(slices.Clone(upstreams), func(u string) bool { return u == addr })

	h := &handler{log: log, upstreams: upstreams}
	h.index.Store(NewIndex(opts.Domain, opts.TTL, nil, nil))

	factory := informers.NewSharedInformerFactory(client, Resync)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	kick := make(chan struct{}, 1)
	trigger := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	evh := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { trigger() }, UpdateFunc: func(any, any) { trigger() }, DeleteFunc: func(any) { trigger() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), sliceInf.Informer()} {
		if _, err := inf.AddEventHandler(evh); err != nil {
			pc.Close()
			ln.Close()
			return fmt.Errorf("dns: watching: %w", err)
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	udp := &mdns.Server{PacketConn: pc, Handler: h}
	tcp := &mdns.Server{Listener: ln, Handler: h}
	serveErr := make(chan error, 2)
	for _, s := range []*mdns.Server{udp, tcp} {
		go func() { serveErr <- s.ActivateAndServe() }()
	}
	defer func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced) {
		return nil
	}
	rebuild := func() error {
		svcs, err1 := svcInf.Lister().List(labels.Everything())
		sl, err2 := sliceInf.Lister().List(labels.Everything())
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("dns: listing from cache: %w", err)
		}
		h.index.Store(NewIndex(opts.Domain, opts.TTL, svcs, sl))
		return nil
	}
	if err := rebuild(); err != nil {
		return err
	}
	log.Info("cluster DNS serving", "addr", addr, "upstreams", upstreams)
	if opts.OnReady != nil {
		opts.OnReady(addr)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-serveErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns: serving: %w", err)
		case <-kick:
			if err := rebuild(); err != nil {
				return err
			}
		}
	}
}

// listen binds UDP and TCP on addr; with port 0 both get the same port.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listening on udp %s: %w", addr, err)
		}
		tcpAddr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("dns: listening on tcp %s: %w", addr, lastErr)
}

// readUpstreams reads the nameservers of a resolv.conf file as ip:port.
func readUpstreams(path string, log *slog.Logger) []string {
	if path == "" {
		path = DefaultResolvConf
	}
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		log.Warn("no upstream resolvers: names outside the cluster will be refused", "resolvConf", path, "err", err)
		return nil
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out
}

// handler answers queries from the current index, forwarding the rest.
type handler struct {
	log       *slog.Logger
	upstreams []string
	index     atomic.Pointer[Index]
}

// ServeDNS implements mdns.Handler.
func (h *handler) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	m := h.respond(w, req)
	if m == nil {
		return
	}
	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
		size := uint16(mdns.MinMsgSize)
		if o := req.IsEdns0(); o != nil {
			size = max(o.UDPSize(), size)
		}
		m.Truncate(int(size))
	}
	if err := w.WriteMsg(m); err != nil {
		h.log.Debug("dns: writing reply", "err", err)
	}
}

func (h *handler) respond(w mdns.ResponseWriter, req *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg)
	if req.Opcode != mdns.OpcodeQuery || len(req.Question) != 1 {
		return m.SetRcode(req, mdns.RcodeNotImplemented)
	}
	res := h.index.Load().Answer(req.Question[0])
	if res.Forward {
		return h.forward(w, req)
	}
	m.SetRcode(req, res.Rcode)
	m.Authoritative = true
	m.RecursionAvailable = len(h.upstreams) > 0
	m.Answer, m.Ns, m.Extra = res.Answer, res.Ns, res.Extra
	return m
}

// forward asks the upstreams in turn, over the protocol the query came in.
func (h *handler) forward(w mdns.ResponseWriter, req *mdns.Msg) *mdns.Msg {
	if len(h.upstreams) == 0 {
		return new(mdns.Msg).SetRcode(req, mdns.RcodeRefused)
	}
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &mdns.Client{Net: network, Timeout: ForwardTimeout}
	for _, u := range h.upstreams {
		r, _, err := c.Exchange(req, u)
		if err != nil {
			h.log.Debug("dns: upstream failed", "upstream", u, "name", req.Question[0].Name, "err", err)
			continue
		}
		r.Id = req.Id
		return r
	}
	return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
}
