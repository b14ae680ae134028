package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
)

func TestComponentMetricsOnAPIRegistry(t *testing.T) {
	m := NewAPIMetrics()
	q := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "test-queue"})
	defer q.ShutDown()
	q.Add("a")
	q.Add("b")
	item, _ := q.Get()
	q.Done(item)
	ObserveSchedulingAttempt(ResultScheduled, 3*time.Millisecond)
	ObserveSchedulingAttempt(ResultUnschedulable, time.Millisecond)
	ObservePodStart(700 * time.Millisecond)

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`workqueue_adds_total{name="test-queue"} 2`,
		`workqueue_depth{name="test-queue"} 1`,
		`workqueue_work_duration_seconds_count{name="test-queue"} 1`,
		`scheduler_schedule_attempts_total{result="scheduled"}`,
		`scheduler_schedule_attempts_total{result="unschedulable"}`,
		`scheduler_scheduling_algorithm_duration_seconds_bucket{result="scheduled",le=`,
		`kubelet_pod_start_duration_seconds_bucket{le="0.75"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestTwoRegistriesShareComponentMetrics(t *testing.T) {
	// Several control planes in one process (tests) each register them.
	NewAPIMetrics()
	NewAPIMetrics()
}
