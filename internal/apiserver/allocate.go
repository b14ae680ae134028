package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// Services get cluster IPs and node ports from ranges. Each address or
// port in use is a reservation key in etcd, created before the service is
// stored (etcd's create-if-absent makes two services never share one) and
// removed when the service goes. Reservations a crash left behind, or
// that a service no longer uses after an update, are removed by a repair
// pass once older than reservationGrace.
const (
	serviceIPPrefix   = "/registry/ranges/serviceips/"
	nodePortPrefix    = "/registry/ranges/servicenodeports/"
	reservationGrace  = 2 * time.Minute
	defaultServiceNet = "10.96.0.0/12"
)

// reservation is the value of a reservation key.
type reservation struct {
	UID  types.UID `json:"uid"`
	Time time.Time `json:"time"`
}

// allocator hands out cluster IPs and node ports to services.
type allocator struct {
	store   storage.Interface
	cidr    netip.Prefix
	size    *big.Int // addresses usable in cidr
	portMin int32
	ports   int32
	now     func() time.Time
}

func newAllocator(store storage.Interface, serviceCIDR string) (*allocator, error) {
	if serviceCIDR == "" {
		serviceCIDR = defaultServiceNet
	}
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("service CIDR %q: want an IPv4 prefix such as %s", serviceCIDR, defaultServiceNet)
	}
	p = p.Masked()
	bits := 32 - p.Bits()
	if bits < 2 {
		return nil, fmt.Errorf("service CIDR %s is too small", p)
	}
	// The network and broadcast addresses are not handed out.
	size := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bits)), big.NewInt(2))
	return &allocator{store: store, cidr: p, size: size,
		portMin: registry.NodePortRange.Base, ports: registry.NodePortRange.Size, now: time.Now}, nil
}

// FirstServiceIP is the address of the "kubernetes" service: the first
// usable address of the range.
func (a *allocator) FirstServiceIP() string { return a.nth(0).String() }

// nth is the (n+1)th usable address of the range.
func (a *allocator) nth(n int64) netip.Addr {
	b := a.cidr.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n) + 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// assign gives svc the cluster IP and node ports it needs, reserving them.
// Values the client chose are reserved as given; a value another service
// holds, or one outside the range, is a 422 naming the field. On error,
// what this call reserved is released.
func (a *allocator) assign(ctx context.Context, svc *corev1.Service) (err error) {
	var took []string
	defer func() {
		if err != nil {
			for _, key := range took {
				a.release(ctx, key, svc.UID)
			}
		}
	}()
	path := field.NewPath("spec")
	if needsClusterIP(svc) {
		if svc.Spec.ClusterIP == "" {
			ip, key, err := a.pickIP(ctx, svc.UID)
			if err != nil {
				return err
			}
			took = append(took, key)
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
		} else {
			fld := path.Child("clusterIPs").Index(0)
			ip, perr := netip.ParseAddr(svc.Spec.ClusterIP)
			if perr != nil || !a.cidr.Contains(ip) || ip == a.cidr.Addr() || ip == a.nth(a.size.Int64()) {
				return invalidService(svc, field.Invalid(fld, svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, svc.Spec.ClusterIP, a.cidr)))
			}
			key := serviceIPPrefix + ip.String()
			ok, rerr := a.reserve(ctx, key, svc.UID)
			if rerr != nil {
				return rerr
			}
			if !ok {
				return invalidService(svc, field.Invalid(fld, svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP)))
			}
			took = append(took, key)
		}
	}
	if !serviceNeedsNodePorts(svc) {
		return nil
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		fld := path.Child("ports").Index(i).Child("nodePort")
		if p.NodePort == 0 {
			// Ports of one service that differ only in protocol share a node port.
			for _, q := range svc.Spec.Ports[:i] {
				if q.Port == p.Port && q.NodePort != 0 && q.Protocol != p.Protocol {
					p.NodePort = q.NodePort
				}
			}
		}
		if p.NodePort == 0 {
			port, key, err := a.pickPort(ctx, svc.UID)
			if err != nil {
				return err
			}
			took = append(took, key)
			p.NodePort = port
			continue
		}
		if p.NodePort < a.portMin || p.NodePort >= a.portMin+a.ports {
			return invalidService(svc, field.Invalid(fld, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.portMin, a.portMin+a.ports-1)))
		}
		key := nodePortPrefix + strconv.Itoa(int(p.NodePort))
		ok, err := a.reserve(ctx, key, svc.UID)
		if err != nil {
			return err
		}
		if !ok {
			return invalidService(svc, field.Invalid(fld, p.NodePort, "provided port is already allocated"))
		}
		took = append(took, key)
	}
	return nil
}

func invalidService(svc *corev1.Service, e *field.Error) error {
	return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, field.ErrorList{e})
}

// pickIP reserves a free address, probing from a random start.
func (a *allocator) pickIP(ctx context.Context, uid types.UID) (string, string, error) {
	n := a.size.Int64()
	start := rand.Int64N(n)
	for i := int64(0); i < n && i < 4096; i++ {
		ip := a.nth((start + i) % n).String()
		if ip == a.FirstServiceIP() {
			continue // kept for the kubernetes service
		}
		key := serviceIPPrefix + ip
		ok, err := a.reserve(ctx, key, uid)
		if err != nil {
			return "", "", err
		}
		if ok {
			return ip, key, nil
		}
	}
	return "", "", apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range %s is full", a.cidr))
}

// pickPort reserves a free node port, probing from a random start.
func (a *allocator) pickPort(ctx context.Context, uid types.UID) (int32, string, error) {
	start := rand.Int32N(a.ports)
	for i := int32(0); i < a.ports; i++ {
		port := a.portMin + (start+i)%a.ports
		key := nodePortPrefix + strconv.Itoa(int(port))
		ok, err := a.reserve(ctx, key, uid)
		if err != nil {
			return 0, "", err
		}
		if ok {
			return port, key, nil
		}
	}
	return 0, "", apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: range %d-%d is full", a.portMin, a.portMin+a.ports-1))
}

// reserve creates the reservation key for uid. It reports false if another
// service holds it; a key uid already holds counts as reserved, so an
// update retried after a conflict does not trip over its own reservation.
func (a *allocator) reserve(ctx context.Context, key string, uid types.UID) (bool, error) {
	data, _ := json.Marshal(reservation{UID: uid, Time: a.now().UTC()})
	_, err := a.store.Create(ctx, key, data)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, storage.ErrExists) {
		return false, apierrors.NewInternalError(fmt.Errorf("reserving %s: %w", key, err))
	}
	kv, err := a.store.Get(ctx, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return a.reserve(ctx, key, uid)
		}
		return false, apierrors.NewInternalError(fmt.Errorf("reading %s: %w", key, err))
	}
	var r reservation
	_ = json.Unmarshal(kv.Value, &r)
	return r.UID == uid, nil
}

// release removes key if uid holds it.
func (a *allocator) release(ctx context.Context, key string, uid types.UID) {
	kv, err := a.store.Get(ctx, key)
	if err != nil {
		return
	}
	var r reservation
	if json.Unmarshal(kv.Value, &r) == nil && r.UID == uid {
		_, _, _ = a.store.Delete(ctx, key, kv.Revision)
	}
}

// releaseAll frees everything a deleted service held.
func (a *allocator) releaseAll(ctx context.Context, svc *corev1.Service) {
	for _, key := range reservationKeys(svc) {
		a.release(ctx, key, svc.UID)
	}
}

// reservationKeys are the keys of the addresses and ports svc uses.
func reservationKeys(svc *corev1.Service) []string {
	var keys []string
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			keys = append(keys, serviceIPPrefix+ip)
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			keys = append(keys, nodePortPrefix+strconv.Itoa(int(p.NodePort)))
		}
	}
	return keys
}

// repair removes reservations no live service uses, once they are older
// than reservationGrace (younger ones may belong to a create in flight).
func (a *allocator) repair(ctx context.Context, services []*corev1.Service) error {
	inUse := map[string]types.UID{}
	for _, svc := range services {
		for _, key := range reservationKeys(svc) {
			inUse[key] = svc.UID
		}
	}
	for _, prefix := range []string{serviceIPPrefix, nodePortPrefix} {
		res, err := a.store.List(ctx, prefix, storage.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, kv := range res.Items {
			var r reservation
			if json.Unmarshal(kv.Value, &r) != nil {
				continue
			}
			if uid, ok := inUse[kv.Key]; ok && uid == r.UID {
				continue
			}
			if a.now().Sub(r.Time) < reservationGrace {
				continue
			}
			if _, _, err := a.store.Delete(ctx, kv.Key, kv.Revision); err != nil && !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("releasing %s: %w", strings.TrimPrefix(kv.Key, "/registry/ranges/"), err)
			}
		}
	}
	return nil
}

// needsClusterIP reports whether a service gets a cluster IP: all but
// ExternalName and headless ones.
func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// serviceNeedsNodePorts reports whether a service gets node ports.
func serviceNeedsNodePorts(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}
