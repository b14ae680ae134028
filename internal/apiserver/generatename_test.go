package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/apiserver"
)

// TestGenerateNameRetry checks that a create whose generated name is taken
// is retried with another suffix, and gives up with AlreadyExists only
// when every try is taken.
func TestGenerateNameRetry(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "generate-name")
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps(ns)
	suffixes := []string{"aaaaa", "aaaaa", "aaaaa", "bbbbb"}
	restore := apiserver.SetNameSuffix(func() string {
		s := suffixes[0]
		if len(suffixes) > 1 {
			suffixes = suffixes[1:]
		}
		return s
	})
	defer restore()
	gen := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "cm-"}}
	first, err := cms.Create(ctx, gen, metav1.CreateOptions{})
	if err != nil || first.Name != "cm-aaaaa" {
		t.Fatalf("first create: %v, %v; want cm-aaaaa", first, err)
	}
	second, err := cms.Create(ctx, gen, metav1.CreateOptions{})
	if err != nil || second.Name != "cm-bbbbb" {
		t.Fatalf("second create: %v, %v; want cm-bbbbb after two taken tries", second, err)
	}
	// Every try taken ("bbbbb" from now on): AlreadyExists.
	if _, err := cms.Create(ctx, gen, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create with every generated name taken: %v, want AlreadyExists", err)
	}
	// A fixed name that is taken is not retried.
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-aaaaa"}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create of a taken fixed name: %v, want AlreadyExists", err)
	}
}
