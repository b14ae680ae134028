package controlplane

import (
	"context"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// SystemNamespaces exist in every cluster, as in Kubernetes.
var SystemNamespaces = []string{
	metav1.NamespaceDefault,
	metav1.NamespaceSystem,
	corev1.NamespaceNodeLease,
	metav1.NamespacePublic,
}

// ensureNamespaces creates the system namespaces through the API, as any
// client would. It retries errors that may pass (the server still starting,
// etcd electing a leader) until timeout.
func ensureNamespaces(ctx context.Context, client kubernetes.Interface, timeout time.Duration) error {
	for _, name := range SystemNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		var lastErr error
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
			switch {
			case err == nil, apierrors.IsAlreadyExists(err):
				return true, nil
			case retriable(err):
				lastErr = err
				return false, nil
			default:
				return false, err
			}
		})
		if err != nil {
			if lastErr != nil && ctx.Err() == nil {
				err = lastErr
			}
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	return nil
}

// retriable reports whether an API error may go away by itself.
func retriable(err error) bool {
	if apierrors.IsNotFound(err) || apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) ||
		apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsMethodNotSupported(err) ||
		apierrors.IsUnsupportedMediaType(err) || apierrors.IsNotAcceptable(err) {
		return false
	}
	return true // 5xx, 429, timeouts, connection errors
}

// ensureKubernetesService creates default/kubernetes, the service through
// which pods reach the API server, at the first address of the service
// range, with endpoints at the advertised address, as upstream does.
// Existing objects are left alone (another server may have made them).
func ensureKubernetesService(ctx context.Context, client kubernetes.Interface, clusterIP, host string, port int32) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP,
			Ports: []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(port)}},
		},
	}
	if _, err := client.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service default/kubernetes: %w", err)
	}
	if net.ParseIP(host) == nil {
		return nil // endpoints need an IP; a host name cannot be one
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: host}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}
	if _, err := client.CoreV1().Endpoints(metav1.NamespaceDefault).Create(ctx, ep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create endpoints default/kubernetes: %w", err)
	}
	return nil
}
