package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/drover/drover/internal/metrics"
)

func ExampleAPIMetrics() {
	m := metrics.NewAPIMetrics()
	m.InflightInc(metrics.RequestKind("get"))
	m.Observe("get", "", "pods", "", 200, 30*time.Millisecond)
	m.InflightDec(metrics.RequestKind("get"))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.SplitSeq(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "apiserver_request_total{") || strings.HasPrefix(line, "apiserver_request_duration_seconds_count{") {
			fmt.Println(line)
		}
	}
	// Output:
	// apiserver_request_duration_seconds_count{group="",resource="pods",subresource="",verb="GET"} 1
	// apiserver_request_total{code="200",group="",resource="pods",subresource="",verb="GET"} 1
}
