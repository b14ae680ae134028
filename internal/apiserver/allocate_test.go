package apiserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drover/drover/internal/storage"
)

func service(name string, typ corev1.ServiceType, clusterIP string, nodePort int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type: typ, ClusterIP: clusterIP, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: nodePort}},
		},
	}
}

func TestServicesGetClusterIPsAndNodePorts(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "alloc")
	ctx := context.Background()
	svcs := ts.client.CoreV1().Services(ns)
	serviceNet := netip.MustParsePrefix("10.96.0.0/12")

	// Concurrent creates: every service a distinct address.
	var wg sync.WaitGroup
	ips := make([]string, 20)
	errs := make([]error, 20)
	for i := range ips {
		wg.Go(func() {
			got, err := svcs.Create(ctx, service(fmt.Sprintf("c%d", i), corev1.ServiceTypeClusterIP, "", 0), metav1.CreateOptions{})
			switch {
			case err != nil:
				errs[i] = err
			case len(got.Spec.ClusterIPs) != 1 || got.Spec.ClusterIPs[0] != got.Spec.ClusterIP:
				errs[i] = fmt.Errorf("clusterIPs %v vs clusterIP %s", got.Spec.ClusterIPs, got.Spec.ClusterIP)
			default:
				ips[i] = got.Spec.ClusterIP
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatalf("create c%d: %v", i, errs[i])
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil || !serviceNet.Contains(addr) || seen[ip] || ip == "10.96.0.1" {
			t.Errorf("service c%d got cluster IP %q (dup %v)", i, ip, seen[ip])
		}
		seen[ip] = true
	}

	// Asking for a taken address or port is a 422 naming the field.
	_, err := svcs.Create(ctx, service("dup-ip", corev1.ServiceTypeClusterIP, ips[0], 0), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.clusterIPs[0]") || !strings.Contains(err.Error(), "already allocated") {
		t.Errorf("taken cluster IP: %v", err)
	}
	_, err = svcs.Create(ctx, service("outside", corev1.ServiceTypeClusterIP, "192.168.1.1", 0), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "not in the valid range") {
		t.Errorf("cluster IP outside the range: %v", err)
	}
	np, err := svcs.Create(ctx, service("np", corev1.ServiceTypeNodePort, "", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := np.Spec.Ports[0].NodePort
	if port < 30000 || port > 32767 {
		t.Errorf("node port %d outside 30000-32767", port)
	}
	_, err = svcs.Create(ctx, service("np-dup", corev1.ServiceTypeNodePort, "", port), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.ports[0].nodePort") || !strings.Contains(err.Error(), "provided port is already allocated") {
		t.Errorf("taken node port: %v", err)
	}
	if _, err := svcs.Get(ctx, "np-dup", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("refused service was stored: %v", err)
	}
	// The refused create released the cluster IP it had taken: the failed
	// request changed nothing, so deleting np frees the port for a new one.
	if err := svcs.Delete(ctx, "np", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again, err := svcs.Create(ctx, service("np-again", corev1.ServiceTypeNodePort, "", port), metav1.CreateOptions{})
	if err != nil || again.Spec.Ports[0].NodePort != port {
		t.Fatalf("reusing a freed node port: %v", err)
	}
	// Also a freed address.
	if err := svcs.Delete(ctx, "c0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := svcs.Create(ctx, service("c0-again", corev1.ServiceTypeClusterIP, ips[0], 0), metav1.CreateOptions{}); err != nil || got.Spec.ClusterIP != ips[0] {
		t.Fatalf("reusing a freed cluster IP: %v", err)
	}

	// Headless and ExternalName services get no address.
	headless, err := svcs.Create(ctx, service("headless", corev1.ServiceTypeClusterIP, corev1.ClusterIPNone, 0), metav1.CreateOptions{})
	if err != nil || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless: %v %v", err, headless.Spec.ClusterIP)
	}

	// A type change to NodePort gets a node port, the address stays.
	c1, _ := svcs.Get(ctx, "c1", metav1.GetOptions{})
	c1.Spec.Type = corev1.ServiceTypeNodePort
	up, err := svcs.Update(ctx, c1, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if up.Spec.ClusterIP != ips[1] || up.Spec.Ports[0].NodePort == 0 {
		t.Errorf("after type change: clusterIP %s (was %s) nodePort %d", up.Spec.ClusterIP, ips[1], up.Spec.Ports[0].NodePort)
	}
}

func TestRepairFreesStaleReservations(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	stale := fmt.Sprintf(`{"uid":"gone","time":%q}`, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	fresh := fmt.Sprintf(`{"uid":"in-flight","time":%q}`, time.Now().UTC().Format(time.RFC3339))
	staleKey, freshKey := "/registry/ranges/servicenodeports/31999", "/registry/ranges/servicenodeports/31998"
	for key, v := range map[string]string{staleKey: stale, freshKey: fresh} {
		if _, err := ts.store.Create(ctx, key, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, key := range []string{staleKey, freshKey} {
			if kv, err := ts.store.Get(ctx, key); err == nil {
				ts.store.Delete(ctx, key, kv.Revision)
			}
		}
	})
	if err := ts.server.RepairAllocations(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.store.Get(ctx, staleKey); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stale reservation kept: %v", err)
	}
	if _, err := ts.store.Get(ctx, freshKey); err != nil {
		t.Errorf("fresh reservation removed: %v", err)
	}
}
