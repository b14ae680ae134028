package controlplane

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/inprocess"
)

// TestLeaderElectionClientHasItsOwnSlots: with the components' in-process
// transport full (every slot held by a request that does not return), the
// elector's client still reaches the server.
func TestLeaderElectionClientHasItsOwnSlots(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	held := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/configmaps/") {
			held <- struct{}{}
			<-release
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
	})
	cfg := &rest.Config{Host: "http://inprocess", Transport: &inprocess.Transport{Handler: h, MaxConcurrent: 1}}
	components, err := newClients(cfg, "https://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = components.Kube.CoreV1().ConfigMaps("default").Get(context.Background(), "holds-the-slot", metav1.GetOptions{})
	}()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the request holding the slot never reached the handler")
	}
	elector, err := leaderElectionClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = elector.CoordinationV1().Leases("kube-system").Get(ctx, LeaderLeaseName, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("elector's lease read: %v, want the handler's 404 while the components' slot is held", err)
	}
}
