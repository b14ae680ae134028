package apiserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/storage"
)

// TestDeeplyNestedBodiesRejected: JSON, YAML and patch bodies nested
// thousands of levels deep get a 400 and store nothing.
func TestDeeplyNestedBodiesRejected(t *testing.T) {
	ts := newTestServer(t)
	ns := ts.namespace(t, "nesting")
	ctx := context.Background()
	keep := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Data: map[string]string{"k": "v"}}
	if _, err := ts.client.CoreV1().ConfigMaps(ns).Create(ctx, keep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, ts, ns)
	deepJSON := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"data":` + strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + "}"
	deepYAML := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n"
	for i := 0; i < 200; i++ {
		deepYAML += strings.Repeat(" ", 2*(i+1)) + "a:\n"
	}
	deepPatch := `{"data":` + strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + "}"
	for _, tc := range []struct{ method, path, ct, body string }{
		{http.MethodPost, "/api/v1/namespaces/" + ns + "/configmaps", "application/json", deepJSON},
		{http.MethodPost, "/api/v1/namespaces/" + ns + "/configmaps", "application/yaml", deepYAML},
		{http.MethodPatch, "/api/v1/namespaces/" + ns + "/configmaps/keep", "application/merge-patch+json", deepPatch},
		{http.MethodPatch, "/api/v1/namespaces/" + ns + "/configmaps/keep", "application/strategic-merge-patch+json", deepPatch},
	} {
		req, _ := http.NewRequest(tc.method, ts.url+tc.path, bytes.NewReader([]byte(tc.body)))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", tc.ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st metav1.Status
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(st.Message, "levels deep") {
			t.Errorf("%s %s (%s): %d %q, want 400 for the nesting", tc.method, tc.path, tc.ct, resp.StatusCode, st.Message)
		}
	}
	if after := snapshot(t, ts, ns); after != before {
		t.Errorf("rejected requests changed storage:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot is every stored object of the namespace (and the namespace
// itself), as text: keys, revisions and value hashes, straight from storage.
func snapshot(t testing.TB, ts *testServer, ns string) string {
	t.Helper()
	var b strings.Builder
	list, err := ts.store.List(context.Background(), "/registry/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range list.Items {
		if strings.Contains(kv.Key, "/"+ns+"/") || strings.HasSuffix(kv.Key, "/"+ns) {
			fmt.Fprintf(&b, "%s@%d:%x;", kv.Key, kv.Revision, sha256.Sum256(kv.Value))
		}
	}
	return b.String()
}
