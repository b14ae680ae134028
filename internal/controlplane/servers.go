package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/drover/drover/internal/controlplane/failover"
)

// Every server announces itself with a Lease in kube-system, and keeps the
// default/kubernetes Endpoints (and EndpointSlices) and the
// kube-public/drover-servers ConfigMap listing every server whose lease is live, as upstream's lease endpoint
// reconciler does for API servers. Clients that must fail over (agents)
// read the list from either.
const (
	// ServerLeasePrefix starts the name of each server's Lease (kube-system).
	ServerLeasePrefix = "drover-server-"
	// ServerLabel marks server Leases.
	ServerLabel = "drover.io/server"
	// ServerURLAnnotation on a server Lease is the server's API URL.
	ServerURLAnnotation = "drover.io/url"
	// ServersConfigMap (in kube-public) holds key ServersKey: the URLs of
	// every live server, comma-separated and sorted.
	ServersConfigMap = "drover-servers"
	ServersKey       = "servers"

	serverLeaseDuration = 15 * time.Second
	serverRenewInterval = 5 * time.Second
	leaveTimeout        = 2 * time.Second
)

// liveServer is a server with a live lease.
type liveServer struct {
	Name, URL string
}

// liveServers returns the servers whose leases have not expired at now,
// sorted by name.
func liveServers(leases []coordinationv1.Lease, now time.Time) []liveServer {
	var out []liveServer
	for _, l := range leases {
		u := l.Annotations[ServerURLAnnotation]
		if u == "" || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue
		}
		expiry := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
		if !now.Before(expiry) {
			continue
		}
		out = append(out, liveServer{Name: strings.TrimPrefix(l.Name, ServerLeasePrefix), URL: u})
	}
	slices.SortFunc(out, func(a, b liveServer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// endpointSubsets are default/kubernetes's subsets for servers: one subset
// per port (servers normally share one), addresses sorted. Servers whose
// host is not an IP cannot be endpoints and are left out.
func endpointSubsets(servers []liveServer) []corev1.EndpointSubset {
	byPort := map[int32][]string{}
	var ports []int32
	for _, s := range servers {
		u, err := url.Parse(s.URL)
		if err != nil || net.ParseIP(u.Hostname()) == nil {
			continue
		}
		p, err := strconv.ParseInt(u.Port(), 10, 32)
		if err != nil {
			continue
		}
		port := int32(p)
		if _, ok := byPort[port]; !ok {
			ports = append(ports, port)
		}
		if !slices.Contains(byPort[port], u.Hostname()) {
			byPort[port] = append(byPort[port], u.Hostname())
		}
	}
	slices.Sort(ports)
	var subsets []corev1.EndpointSubset
	for _, port := range ports {
		ips := byPort[port]
		slices.Sort(ips)
		var addrs []corev1.EndpointAddress
		for _, ip := range ips {
			addrs = append(addrs, corev1.EndpointAddress{IP: ip})
		}
		subsets = append(subsets, corev1.EndpointSubset{
			Addresses: addrs,
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		})
	}
	return subsets
}

// endpointSlices are default/kubernetes's EndpointSlices for subsets: one
// per port, named "kubernetes" then "kubernetes-PORT", as upstream's API
// server writes the one slice of servers that share a port.
func endpointSlices(subsets []corev1.EndpointSubset) []discoveryv1.EndpointSlice {
	var out []discoveryv1.EndpointSlice
	for i, ss := range subsets {
		if len(ss.Ports) == 0 || len(ss.Addresses) == 0 {
			continue
		}
		port := ss.Ports[0]
		name := "kubernetes"
		if i > 0 {
			name = fmt.Sprintf("kubernetes-%d", port.Port)
		}
		family := discoveryv1.AddressTypeIPv4
		if ip := net.ParseIP(ss.Addresses[0].IP); ip != nil && ip.To4() == nil {
			family = discoveryv1.AddressTypeIPv6
		}
		slice := discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault,
				Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: family,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(port.Name), Port: ptr.To(port.Port), Protocol: ptr.To(port.Protocol)}},
		}
		for _, a := range ss.Addresses {
			ip := net.ParseIP(a.IP)
			if ip == nil || (ip.To4() == nil) != (family == discoveryv1.AddressTypeIPv6) {
				continue
			}
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{a.IP},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			})
		}
		out = append(out, slice)
	}
	return out
}

// serverURLs is the ConfigMap value for servers.
func serverURLs(servers []liveServer) string {
	urls := make([]string, 0, len(servers))
	for _, s := range servers {
		urls = append(urls, s.URL)
	}
	slices.Sort(urls)
	return strings.Join(slices.Compact(urls), ",")
}

// registry returns the component that keeps this server's lease and the
// lists of live servers.
func (c *clusterSetup) registry(serverURL string) Component {
	reg := &registrar{name: c.name, url: serverURL, kubeconfig: filepath.Join(c.dataDir, KubeconfigFile),
		leaving: make(chan struct{}), left: make(chan struct{}), stopped: make(chan struct{})}
	c.reg = reg
	return Component{Name: "server-registry", Run: func(ctx context.Context, clients Clients, log *slog.Logger) error {
		r := *reg
		r.kube, r.log = clients.Kube, log
		defer close(reg.stopped)
		tick := time.NewTicker(serverRenewInterval)
		defer tick.Stop()
		for {
			r.renew(ctx)
			r.reconcile(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-reg.leaving:
				r.leave()
				close(reg.left)
				<-ctx.Done()
				return nil
			case <-tick.C:
			}
		}
	}}
}

// leave drops this server from the lists of live servers at once, rather
// than when its lease expires. Called on shutdown while the API still
// answers; it gives up after leaveTimeout (e.g. without quorum).
func (c *clusterSetup) leave() {
	if c.reg == nil {
		return
	}
	close(c.reg.leaving)
	select {
	case <-c.reg.left:
	case <-c.reg.stopped:
	case <-time.After(leaveTimeout + time.Second):
	}
}

type registrar struct {
	kube      kubernetes.Interface
	name, url string
	// kubeconfig is the admin kubeconfig, which lists the other live
	// servers too (see failover.SetKubeconfigServers).
	kubeconfig string
	log        *slog.Logger
	// leaving asks the registry to leave; left closes when it has, stopped
	// when its component returns.
	leaving, left, stopped chan struct{}
}

// leave deletes this server's lease and rewrites the lists without it.
func (r *registrar) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := r.kube.CoordinationV1().Leases(metav1.NamespaceSystem).Delete(ctx, r.leaseName(), metav1.DeleteOptions{}); err != nil {
		if !apierrors.IsNotFound(err) {
			r.log.Debug("deleting this server's lease", "err", err)
		}
		return
	}
	r.reconcile(ctx)
}

func (r *registrar) leaseName() string { return ServerLeasePrefix + r.name }

// reconcileSlices makes default/kubernetes's EndpointSlices want.
func (r *registrar) reconcileSlices(ctx context.Context, want []discoveryv1.EndpointSlice) {
	api := r.kube.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	list, err := api.List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil {
		return
	}
	have := map[string]*discoveryv1.EndpointSlice{}
	for i := range list.Items {
		have[list.Items[i].Name] = &list.Items[i]
	}
	for _, w := range want {
		old, ok := have[w.Name]
		delete(have, w.Name)
		switch {
		case !ok:
			_, err = api.Create(ctx, &w, metav1.CreateOptions{})
		case old.AddressType != w.AddressType:
			// The address type cannot change: replace the slice.
			if err = api.Delete(ctx, w.Name, metav1.DeleteOptions{}); err == nil {
				_, err = api.Create(ctx, &w, metav1.CreateOptions{})
			}
		case !apiequality.Semantic.DeepEqual(old.Endpoints, w.Endpoints) || !apiequality.Semantic.DeepEqual(old.Ports, w.Ports):
			old.Endpoints, old.Ports = w.Endpoints, w.Ports
			_, err = api.Update(ctx, old, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			r.log.Debug("updating default/kubernetes endpointslice", "name", w.Name, "err", err)
		}
	}
	for name := range have {
		if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			r.log.Debug("deleting stale default/kubernetes endpointslice", "name", name, "err", err)
		}
	}
}

// renew creates or renews this server's lease.
func (r *registrar) renew(ctx context.Context) {
	leases := r.kube.CoordinationV1().Leases(metav1.NamespaceSystem)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, r.leaseName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.leaseName(), Namespace: metav1.NamespaceSystem,
				Labels:      map[string]string{ServerLabel: "true"},
				Annotations: map[string]string{ServerURLAnnotation: r.url}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(r.name),
				LeaseDurationSeconds: ptr.To(int32(serverLeaseDuration / time.Second)),
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
	case err == nil:
		l.Spec.RenewTime = &now
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[ServerURLAnnotation] = r.url
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil && ctx.Err() == nil {
		r.log.Debug("renewing server lease", "err", err)
	}
}

// reconcile writes the live servers into default/kubernetes's Endpoints and
// the drover-servers ConfigMap, when they differ. Servers race to do so;
// a conflict is resolved on the next round.
func (r *registrar) reconcile(ctx context.Context) {
	list, err := r.kube.CoordinationV1().Leases(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: ServerLabel + "=true"})
	if err != nil {
		return
	}
	servers := liveServers(list.Items, time.Now())
	if len(servers) == 0 {
		return // never empty the lists: a client is better off with stale ones
	}
	if r.kubeconfig != "" {
		others := map[string]string{}
		for _, s := range servers {
			if s.Name != r.name {
				others[s.Name] = s.URL
			}
		}
		if changed, err := failover.SetKubeconfigServers(r.kubeconfig, others); err != nil {
			r.log.Debug("listing the servers in the admin kubeconfig", "err", err)
		} else if changed {
			r.log.Info("admin kubeconfig lists the other servers", "servers", serverURLs(servers))
		}
	}
	if subsets := endpointSubsets(servers); len(subsets) > 0 {
		eps := r.kube.CoreV1().Endpoints(metav1.NamespaceDefault)
		ep, err := eps.Get(ctx, "kubernetes", metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			ep = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
				Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}}, Subsets: subsets}
			_, err = eps.Create(ctx, ep, metav1.CreateOptions{})
		case err == nil && (!apiequality.Semantic.DeepEqual(ep.Subsets, subsets) || ep.Labels[discoveryv1.LabelSkipMirror] != "true"):
			// Its slices are written here: no mirroring controller should.
			if ep.Labels == nil {
				ep.Labels = map[string]string{}
			}
			ep.Labels[discoveryv1.LabelSkipMirror] = "true"
			ep.Subsets = subsets
			_, err = eps.Update(ctx, ep, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
			r.log.Debug("updating default/kubernetes endpoints", "err", err)
		}
		r.reconcileSlices(ctx, endpointSlices(subsets))
	}
	value := serverURLs(servers)
	cms := r.kube.CoreV1().ConfigMaps(metav1.NamespacePublic)
	cm, err := cms.Get(ctx, ServersConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ServersConfigMap, Namespace: metav1.NamespacePublic}, Data: map[string]string{ServersKey: value}}
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	case err == nil && cm.Data[ServersKey] != value:
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[ServersKey] = value
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
		r.log.Debug("updating the servers configmap", "err", err)
	}
}
