package testenv_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

func TestStartServesTheSystemNamespaces(t *testing.T) {
	env := testenv.Start(t)
	for _, ns := range []string{"default", "kube-system", "kube-node-lease"} {
		if _, err := env.Kube.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
	env.CreateNamespace(t, "extra")
	testenv.Eventually(t, 10*time.Second, func() error {
		_, err := env.Kube.CoreV1().Namespaces().Get(context.Background(), "extra", metav1.GetOptions{})
		return err
	})
}
