package metricsapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHandlerDiscoveryAndErrors(t *testing.T) {
	s := New(nil, nil, Options{}) // no client: Run is not called
	h := s.Handler()
	get := func(method, path string) (int, []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.Bytes()
	}
	code, body := get("GET", "/apis/metrics.k8s.io")
	var g metav1.APIGroup
	if code != 200 || json.Unmarshal(body, &g) != nil || g.Name != "metrics.k8s.io" || g.PreferredVersion.Version != "v1beta1" {
		t.Errorf("group: %d %s", code, body)
	}
	code, body = get("GET", "/apis/metrics.k8s.io/v1beta1/")
	var rl metav1.APIResourceList
	if code != 200 || json.Unmarshal(body, &rl) != nil || rl.GroupVersion != "metrics.k8s.io/v1beta1" || len(rl.APIResources) != 2 {
		t.Errorf("resources: %d %s", code, body)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/apis/metrics.k8s.io/v1beta1/pods", http.StatusServiceUnavailable}, // informers not synced
		{"GET", "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a%3D%3D%3Db", http.StatusBadRequest},
		{"GET", "/apis/metrics.k8s.io/v1beta1/pods?watch=true", http.StatusMethodNotAllowed},
		{"POST", "/apis/metrics.k8s.io/v1beta1/pods", http.StatusMethodNotAllowed},
		{"GET", "/apis/metrics.k8s.io/v2/pods", http.StatusNotFound},
		{"GET", "/apis/metrics.k8s.iox", http.StatusNotFound},
	} {
		if code, body := get(tt.method, tt.path); code != tt.want {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.want)
		}
	}
	close(s.synced)
	if code, body := get("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/x/y"); code != http.StatusNotFound {
		t.Errorf("deep path = %d %s", code, body)
	}
}
