package controlplane

import (
	"context"
	"net/http"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/inprocess"
)

// TestInProcessClientsIdentity: every client newClients makes over the
// in-process transport (typed, dynamic, metadata, discovery) shows the
// server the config's bearer token and user agent, as client-go's own
// RoundTrippers would have, though the transport sets them; and a copy of
// the config (as components take for clients of their own) still does.
func TestInProcessClientsIdentity(t *testing.T) {
	type seen struct{ auth, ua string }
	var mu sync.Mutex
	var got []seen
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Header.Get("Authorization"), r.UserAgent()})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
	})
	cfg := &rest.Config{Host: "http://inprocess", BearerToken: "secret", UserAgent: "drover-controlplane", QPS: -1,
		Transport: &inprocess.Transport{Handler: h}}
	c, err := newClients(cfg, "https://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	_, _ = c.Kube.CoreV1().ConfigMaps("default").Get(ctx, "x", metav1.GetOptions{})
	_, _ = c.Dynamic.Resource(cms).Namespace("default").Get(ctx, "x", metav1.GetOptions{})
	_, _ = c.Metadata.Resource(cms).Namespace("default").Get(ctx, "x", metav1.GetOptions{})
	_, _ = c.Discovery.ServerVersion()
	own, err := newClients(rest.CopyConfig(c.Config), c.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = own.Kube.CoreV1().ConfigMaps("default").Get(ctx, "x", metav1.GetOptions{})

	mu.Lock()
	defer mu.Unlock()
	if len(got) < 5 {
		t.Fatalf("the handler saw %d requests, want at least 5", len(got))
	}
	for i, s := range got {
		if s != (seen{"Bearer secret", "drover-controlplane"}) {
			t.Errorf("request %d: the server saw %+v, want the config's token and user agent", i, s)
		}
	}
}
