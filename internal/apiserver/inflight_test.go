package apiserver_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/apiserver"
	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/inprocess"
	"github.com/drover/drover/internal/metrics"
	"github.com/drover/drover/internal/registry"
)

// TestMaxRequestsInFlight holds requests in a mounted handler to fill the
// limits exactly: beyond them a request gets 429 with Retry-After and a
// TooManyRequests Status; read-only and mutating pools are apart; watches
// do not count; the admin has a reserved slot others cannot take; slots
// come back when requests end.
func TestMaxRequestsInFlight(t *testing.T) {
	authn := auth.NewTokenAuthenticator()
	authn.Add(adminToken, auth.User{Name: "admin", Groups: []string{"system:masters"}})
	authn.Add("flood-token", auth.User{Name: "flood", Groups: []string{"system:authenticated"}})
	m := metrics.NewAPIMetrics()
	h, err := apiserver.New(apiserver.Config{
		Storage: shared.store, Resources: registry.All(), Authenticator: authn,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:             m,
		MaxRequestsInFlight: 2, MaxMutatingRequestsInFlight: 1, // a reserve of 1 each for the admin
		InflightQueueWait: 100 * time.Millisecond, // a request beyond the limits is rejected soon
	})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan string, 16)
	unblock := make(chan struct{})
	h.Mount("/block/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.Method + " " + r.URL.Path
		<-unblock
		w.WriteHeader(http.StatusOK)
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		select {
		case <-unblock:
		default:
			close(unblock)
		}
		wg.Wait()
	})

	do := func(method, path, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// hold starts a request that blocks in the handler, and waits until it
	// is in. A 429 is tried again: the client may see a previous request's
	// response a moment before the server gives its slot back.
	hold := func(method, token string) {
		t.Helper()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				req, _ := http.NewRequest(method, srv.URL+"/block/x", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusTooManyRequests {
					return
				}
				select {
				case <-unblock:
					return
				default:
				}
			}
		}()
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s by %s was not admitted", method, token)
		}
	}
	want429 := func(resp *http.Response, what string) {
		t.Helper()
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s: %d, want 429", what, resp.StatusCode)
		}
		if got := resp.Header.Get("Retry-After"); got != "1" {
			t.Errorf("%s: Retry-After %q, want 1", what, got)
		}
		var st metav1.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		if st.Kind != "Status" || st.Status != metav1.StatusFailure || st.Reason != metav1.StatusReasonTooManyRequests || st.Code != 429 || st.Details == nil || st.Details.RetryAfterSeconds != 1 {
			t.Errorf("%s: status %+v, want reason TooManyRequests with retryAfterSeconds 1", what, st)
		}
	}
	// admitted: anything but 429 (authorization may still say 403 to the
	// flood's identity).
	admitted := func(resp *http.Response, what string) {
		t.Helper()
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusUnauthorized {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %d %s, want it admitted", what, resp.StatusCode, b)
		}
	}

	// Fill the read-only pool with another identity's requests.
	hold(http.MethodGet, "flood-token")
	hold(http.MethodGet, "flood-token")
	want429(do(http.MethodGet, "/api/v1/namespaces", "flood-token"), "third read-only request")
	// The mutating pool is apart.
	hold(http.MethodPost, "flood-token")
	want429(do(http.MethodPost, "/block/x", "flood-token"), "second mutating request")
	// Watches are long-running and do not count.
	watch := do(http.MethodGet, "/api/v1/namespaces?watch=true&timeoutSeconds=1", "flood-token")
	admitted(watch, "watch while the pool is full")
	// The admin still gets in, through its reserve.
	admin := do(http.MethodGet, "/api/v1/namespaces", adminToken)
	if admin.StatusCode != http.StatusOK {
		t.Fatalf("admin list during the flood: %d, want 200", admin.StatusCode)
	}
	admin.Body.Close()
	hold(http.MethodGet, adminToken) // takes the read-only reserve
	want429(do(http.MethodGet, "/api/v1/namespaces", adminToken), "admin beyond its reserve")
	hold(http.MethodPost, adminToken) // the mutating reserve
	want429(do(http.MethodPost, "/block/y", adminToken), "admin mutating beyond its reserve")
	// The control plane's own components, in process, are not counted.
	inproc := &http.Client{Transport: &inprocess.Transport{Handler: h}}
	for _, m := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/namespaces", ""},
		{http.MethodPost, "/api/v1/namespaces/default/configmaps", `{"metadata":{"generateName":"inproc-"}}`},
	} {
		req, _ := http.NewRequest(m.method, "http://inprocess"+m.path, strings.NewReader(m.body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := inproc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		admitted(resp, "in-process "+m.method+" with every pool full")
	}
	// Heartbeats have a reserve of their own: with both mutating pools
	// full, a node's Lease and status writes still get in.
	admitted(do(http.MethodPut, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", "flood-token"), "lease write during the flood")
	admitted(do(http.MethodPut, "/api/v1/nodes/n1/status", "flood-token"), "node status write during the flood")
	want429(do(http.MethodPut, "/api/v1/nodes/n1", "flood-token"), "node (not status) write during the flood")

	// Slots come back when requests end.
	close(unblock)
	wg.Wait()
	for i := 0; i < 3; i++ {
		admitted(do(http.MethodGet, "/api/v1/namespaces", "flood-token"), "after the flood")
	}

	// The metrics saw it: the rejections above, each after its wait in
	// the queue, and no slot held once all is done.
	deadline := time.Now().Add(30 * time.Second)
	for {
		text := scrapeText(t, m)
		rejected := map[string]float64{}
		for _, level := range []string{"workload", "system-masters"} {
			rejected[level] = metricValue(text, `apiserver_flowcontrol_rejected_requests_total{priority_level="`+level+`",reason="time-out"}`)
		}
		inflight := metricValue(text, `apiserver_current_inflight_requests{request_kind="readOnly"}`) +
			metricValue(text, `apiserver_current_inflight_requests{request_kind="mutating"}`)
		waited := metricValue(text, `apiserver_flowcontrol_request_wait_duration_seconds_count{execute="false",priority_level="workload"}`)
		if rejected["workload"] >= 3 && rejected["system-masters"] >= 2 && waited >= 3 && inflight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: rejected after a wait %v (want at least 3 workload, 2 system-masters), workload waits rejected %v, in flight %v (want 0)",
				rejected, waited, inflight)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrapeText is m's /metrics in the Prometheus text format.
func scrapeText(t *testing.T, m *metrics.APIMetrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// metricValue is the value of the series named exactly so in text, 0 if
// it is not there.
func metricValue(text, series string) float64 {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// The metrics package's APIMetrics sees the limits at work.
var _ apiserver.LimitObserver = (*metrics.APIMetrics)(nil)
