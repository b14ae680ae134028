package bench

import (
	"math"
	"strings"
	"testing"
)

const sample = `# HELP apiserver_request_duration_seconds x
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{group="",resource="pods",subresource="",verb="POST",le="0.005"} 10
apiserver_request_duration_seconds_bucket{group="",resource="pods",subresource="",verb="POST",le="0.025"} 90
apiserver_request_duration_seconds_bucket{group="",resource="pods",subresource="",verb="POST",le="+Inf"} 100
apiserver_request_duration_seconds_bucket{group="",resource="events",subresource="",verb="POST",le="0.005"} 100
apiserver_request_duration_seconds_bucket{group="",resource="events",subresource="",verb="POST",le="0.025"} 100
apiserver_request_duration_seconds_bucket{group="",resource="events",subresource="",verb="POST",le="+Inf"} 100
apiserver_request_duration_seconds_bucket{group="",resource="pods",subresource="",verb="GET",le="0.005"} 0
apiserver_request_duration_seconds_bucket{group="",resource="pods",subresource="",verb="GET",le="0.025"} 0
apiserver_request_duration_seconds_bucket{group="",resource="pods",subresource="",verb="GET",le="+Inf"} 4
apiserver_request_duration_seconds_sum{group="",resource="pods",subresource="",verb="GET"} 1
apiserver_request_total{code="201",verb="POST"} 200
`

func TestParseAndQuantile(t *testing.T) {
	hs, err := parseHistograms(strings.NewReader(sample), "apiserver_request_duration_seconds", "verb")
	if err != nil {
		t.Fatal(err)
	}
	post := hs["POST"]
	if post.Count() != 200 {
		t.Fatalf("POST count %v, want 200 (pods + events)", post.Count())
	}
	// 110 of 200 at ≤5ms, 190 at ≤25ms: the median is in the first bucket.
	if got, want := post.Quantile(0.5), 0.005*100/110; math.Abs(got-want) > 1e-9 {
		t.Errorf("POST p50 %v, want %v", got, want)
	}
	if got, want := post.Quantile(0.9), 0.005+0.020*(180-110)/80.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("POST p90 %v, want %v", got, want)
	}
	if got := post.Quantile(0.99); got != 0.025 {
		t.Errorf("POST p99 %v, want the highest finite bound 0.025", got)
	}
	if got := hs["GET"].Quantile(0.5); got != 0.025 {
		t.Errorf("GET p50 in +Inf bucket: %v, want 0.025", got)
	}
	if !math.IsNaN(Histogram{}.Quantile(0.5)) {
		t.Error("empty histogram quantile is not NaN")
	}
}

func TestDiff(t *testing.T) {
	before := map[string]Histogram{"GET": {0.1: 5, math.Inf(1): 10}}
	after := map[string]Histogram{"GET": {0.1: 7, math.Inf(1): 13}, "PUT": {math.Inf(1): 2}}
	d := diff(after, before)
	if d["GET"][0.1] != 2 || d["GET"].Count() != 3 || d["PUT"].Count() != 2 {
		t.Errorf("diff = %v", d)
	}
}

func TestParseRequestCounts(t *testing.T) {
	text := `apiserver_request_total{code="201",group="",resource="pods",subresource="binding",verb="POST"} 7
apiserver_request_total{code="409",group="",resource="pods",subresource="status",verb="PUT"} 3
apiserver_request_total{code="409",group="apps",resource="pods",subresource="status",verb="PUT"} 1
`
	got, err := parseRequestCounts(strings.NewReader(text + sample))
	if err != nil {
		t.Fatal(err)
	}
	if got["POST pods/binding 201"] != 7 || got["PUT pods/status 409"] != 4 || got["POST  201"] != 200 || len(got) != 3 {
		t.Errorf("counts = %v", got)
	}
}

func TestParseRejections(t *testing.T) {
	text := `# TYPE apiserver_flowcontrol_rejected_requests_total counter
apiserver_flowcontrol_rejected_requests_total{priority_level="workload",reason="queue-full"} 5
apiserver_flowcontrol_rejected_requests_total{priority_level="node-high",reason="time-out"} 2
apiserver_flowcontrol_rejected_requests_total{flow_schema="a",priority_level="workload",reason="queue-full"} 1
`
	got, err := parseRejections(strings.NewReader(text + sample))
	if err != nil {
		t.Fatal(err)
	}
	if got["workload queue-full"] != 6 || got["node-high time-out"] != 2 || len(got) != 2 {
		t.Errorf("rejections = %v", got)
	}
}
