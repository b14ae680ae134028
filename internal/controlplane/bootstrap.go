package controlplane

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
