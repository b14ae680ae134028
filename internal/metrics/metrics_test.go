package metrics

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches the handler over HTTP and parses the text format.
func scrape(t *testing.T, m *APIMetrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return families
}

// series finds the metric of family name with exactly the given labels.
func series(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	f := families[name]
	if f == nil {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s series with labels %v", name, labels)
	return nil
}

func TestObserveFeedsCounterAndHistogram(t *testing.T) {
	m := NewAPIMetrics()
	m.Observe("get", "", "pods", "", 200, 3*time.Millisecond)
	m.Observe("GET", "", "pods", "", 200, 70*time.Millisecond)
	m.Observe("get", "", "pods", "", 404, time.Millisecond)
	m.Observe("create", "apps", "deployments", "", 201, 2*time.Second)
	m.Observe("update", "apps", "deployments", "scale", 200, time.Millisecond)
	m.Observe("watch", "", "pods", "", 200, 10*time.Minute)

	f := scrape(t, m)
	counts := []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"verb": "GET", "group": "", "resource": "pods", "subresource": "", "code": "200"}, 2},
		{map[string]string{"verb": "GET", "group": "", "resource": "pods", "subresource": "", "code": "404"}, 1},
		{map[string]string{"verb": "POST", "group": "apps", "resource": "deployments", "subresource": "", "code": "201"}, 1},
		{map[string]string{"verb": "PUT", "group": "apps", "resource": "deployments", "subresource": "scale", "code": "200"}, 1},
		{map[string]string{"verb": "WATCH", "group": "", "resource": "pods", "subresource": "", "code": "200"}, 1},
	}
	for _, c := range counts {
		if got := series(t, f, "apiserver_request_total", c.labels).GetCounter().GetValue(); got != c.want {
			t.Errorf("apiserver_request_total%v = %v, want %v", c.labels, got, c.want)
		}
	}

	h := series(t, f, "apiserver_request_duration_seconds",
		map[string]string{"verb": "GET", "group": "", "resource": "pods", "subresource": ""}).GetHistogram()
	if h.GetSampleCount() != 3 {
		t.Errorf("GET pods duration count = %d, want 3", h.GetSampleCount())
	}
	// The text format adds the +Inf bucket.
	if len(h.Bucket) != len(DurationBuckets)+1 || h.Bucket[0].GetUpperBound() != 0.005 || h.Bucket[len(h.Bucket)-2].GetUpperBound() != 60 {
		t.Errorf("buckets = %v", h.Bucket)
	}
	// 1ms and 3ms fall in the first bucket, 70ms not until 0.1.
	if got := h.Bucket[0].GetCumulativeCount(); got != 2 {
		t.Errorf("le=0.005 count = %d, want 2", got)
	}
	if got := h.Bucket[3].GetCumulativeCount(); h.Bucket[3].GetUpperBound() != 0.1 || got != 3 {
		t.Errorf("le=%v count = %d, want 3", h.Bucket[3].GetUpperBound(), got)
	}
	post := series(t, f, "apiserver_request_duration_seconds",
		map[string]string{"verb": "POST", "group": "apps", "resource": "deployments", "subresource": ""}).GetHistogram()
	if post.GetSampleSum() != 2 {
		t.Errorf("POST deployments duration sum = %v, want 2", post.GetSampleSum())
	}
	// Watches are counted, not timed.
	for _, s := range f["apiserver_request_duration_seconds"].Metric {
		for _, l := range s.Label {
			if l.GetName() == "verb" && l.GetValue() == "WATCH" {
				t.Errorf("WATCH has a duration series")
			}
		}
	}
}

func TestInflightGauge(t *testing.T) {
	m := NewAPIMetrics()
	f := scrape(t, m)
	for _, kind := range []string{ReadOnly, Mutating} {
		if got := series(t, f, "apiserver_current_inflight_requests", map[string]string{"request_kind": kind}).GetGauge().GetValue(); got != 0 {
			t.Errorf("%s in flight at start = %v", kind, got)
		}
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.InflightInc(RequestKind("list"))
			m.InflightInc(RequestKind("patch"))
			m.InflightDec(RequestKind("patch"))
		}()
	}
	wg.Wait()
	f = scrape(t, m)
	if got := series(t, f, "apiserver_current_inflight_requests", map[string]string{"request_kind": ReadOnly}).GetGauge().GetValue(); got != 10 {
		t.Errorf("readOnly in flight = %v, want 10", got)
	}
	if got := series(t, f, "apiserver_current_inflight_requests", map[string]string{"request_kind": Mutating}).GetGauge().GetValue(); got != 0 {
		t.Errorf("mutating in flight = %v, want 0", got)
	}
}

func TestRuntimeAndProcessCollectors(t *testing.T) {
	f := scrape(t, NewAPIMetrics())
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes", "process_start_time_seconds"} {
		if f[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := NewAPIMetrics(), NewAPIMetrics()
	a.Observe("get", "", "pods", "", 200, time.Millisecond)
	f := scrape(t, b)
	if fam := f["apiserver_request_total"]; fam != nil && len(fam.Metric) != 0 {
		t.Errorf("second registry sees the first's requests: %v", fam.Metric)
	}
}

func TestRequestKind(t *testing.T) {
	for verb, want := range map[string]string{
		"get": ReadOnly, "LIST": ReadOnly, "watch": ReadOnly,
		"create": Mutating, "post": Mutating, "update": Mutating, "patch": Mutating,
		"delete": Mutating, "deletecollection": Mutating,
	} {
		if got := RequestKind(verb); got != want {
			t.Errorf("RequestKind(%q) = %q, want %q", verb, got, want)
		}
	}
}
