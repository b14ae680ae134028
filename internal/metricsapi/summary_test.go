package metricsapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/stats"
)

func u64(v uint64) *uint64 { return &v }

func cpu(at time.Time, nano, cumulative uint64) *cpuStats {
	return &cpuStats{Time: stats.NewSampleTime(at), UsageNanoCores: u64(nano), UsageCoreNanoSeconds: u64(cumulative)}
}

func mem(at time.Time, bytes uint64) *memoryStats {
	return &memoryStats{Time: stats.NewSampleTime(at), WorkingSetBytes: u64(bytes)}
}

func TestDecodeSummaryRates(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t0, t1 := start.Add(10*time.Second), start.Add(15*time.Second)
	pod := func(at time.Time, cstart time.Time, nano, cumulative uint64) podStats {
		return podStats{
			PodRef: podRef{Name: "web", Namespace: "default", UID: "u1"},
			Containers: []containerStats{{
				Name: "app", StartTime: metav1.NewTime(cstart), CPU: cpu(at, nano, cumulative), Memory: mem(at, 1<<20),
			}},
		}
	}
	// First scrape: no previous sample, so the agent's rate and the
	// fallback window.
	first := decodeSummary(&summary{
		Node: nodeStats{NodeName: "n1", StartTime: metav1.NewTime(start), CPU: cpu(t0, 7e8, 1e9), Memory: mem(t0, 5<<20)},
		Pods: []podStats{pod(t0, start, 3e8, 3e9)},
	}, nil, 5*time.Second)
	if first.node == nil || first.node.CPUNano != 7e8 || first.node.Window != 5*time.Second || first.node.Memory != 5<<20 {
		t.Fatalf("first node point = %+v", first.node)
	}
	p := first.pods[podKey{"default", "web"}]
	if len(p.Containers) != 1 || p.Containers[0].CPUNano != 3e8 || p.Window != 5*time.Second || !p.Timestamp.Equal(t0) {
		t.Fatalf("first pod point = %+v", p)
	}

	// Second scrape 5s later: 2.5e9 core-ns more is 0.5 cores over 5s,
	// whatever the agent's own rate says.
	second := decodeSummary(&summary{
		Node: nodeStats{NodeName: "n1", StartTime: metav1.NewTime(start), CPU: cpu(t1, 1, 1e9+5e9), Memory: mem(t1, 5<<20)},
		Pods: []podStats{pod(t1, start, 1, 3e9+2.5e9)},
	}, first.samples, 5*time.Second)
	if second.node.CPUNano != 1e9 || second.node.Window != 5*time.Second {
		t.Errorf("second node point = %+v, want 1 core over 5s", second.node)
	}
	p = second.pods[podKey{"default", "web"}]
	if p.Containers[0].CPUNano != 5e8 || p.Window != 5*time.Second || !p.Timestamp.Equal(t1) {
		t.Errorf("second pod point = %+v, want 0.5 cores over 5s", p)
	}

	// The container restarted: its counter starts again, so the
	// cumulative difference is meaningless and the agent's rate is used.
	restarted := decodeSummary(&summary{Pods: []podStats{pod(t1, t0, 2e8, 1e8)}}, first.samples, 5*time.Second)
	if got := restarted.pods[podKey{"default", "web"}].Containers[0].CPUNano; got != 2e8 {
		t.Errorf("after a restart CPU = %d, want the agent's 2e8", got)
	}
}

// Rates over windows shorter than a second, as the agents serve them (the
// summary goes through JSON): a window crossing a second boundary is as
// long as the time between the readings, not a whole second more or less.
func TestDecodeSummaryRatesOverTheWire(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// 0.25 cores: 250ms of CPU per second of running.
	scrape := func(at time.Time, prev map[cpuKey]cpuSample) batch {
		t.Helper()
		used := uint64(at.Sub(start).Nanoseconds()) / 4
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(&summary{
			Node: nodeStats{NodeName: "n1", StartTime: metav1.NewTime(start), CPU: cpu(at, 1, used), Memory: mem(at, 1)},
			Pods: []podStats{{PodRef: podRef{Name: "web", Namespace: "default", UID: "u1"}, Containers: []containerStats{{
				Name: "app", StartTime: metav1.NewTime(start), CPU: cpu(at, 1, used), Memory: mem(at, 1)}}}},
		}); err != nil {
			t.Fatal(err)
		}
		s, err := readSummary(&buf)
		if err != nil {
			t.Fatal(err)
		}
		return decodeSummary(s, prev, time.Second)
	}
	for _, c := range []struct{ at0, at1 time.Duration }{
		{10*time.Second + 900*time.Millisecond, 11*time.Second + 100*time.Millisecond}, // across a second
		{10*time.Second + 100*time.Millisecond, 10*time.Second + 300*time.Millisecond}, // within one
		{10*time.Second + 999*time.Millisecond, 16 * time.Second},                      // 5.001s
	} {
		first := scrape(start.Add(c.at0), nil)
		second := scrape(start.Add(c.at1), first.samples)
		want := c.at1 - c.at0
		p := second.pods[podKey{"default", "web"}]
		if len(p.Containers) != 1 || p.Window != want || p.Containers[0].CPUNano != 25e7 {
			t.Errorf("readings at %v and %v: pod point %+v, want 250000000 nanocores over %v", c.at0, c.at1, p, want)
		}
		if n := second.node; n == nil || n.Window != want || n.CPUNano != 25e7 {
			t.Errorf("readings at %v and %v: node point %+v, want 250000000 nanocores over %v", c.at0, c.at1, n, want)
		}
	}
}

func TestDecodeSummarySkipsIncompletePods(t *testing.T) {
	at := time.Now()
	b := decodeSummary(&summary{Pods: []podStats{
		{PodRef: podRef{Name: "no-memory", Namespace: "ns"}, Containers: []containerStats{
			{Name: "a", CPU: cpu(at, 1, 1), Memory: mem(at, 1)},
			{Name: "b", CPU: cpu(at, 1, 1)},
		}},
		{PodRef: podRef{Name: "no-cpu", Namespace: "ns"}, Containers: []containerStats{{Name: "a", Memory: mem(at, 1)}}},
		{PodRef: podRef{Name: "no-containers", Namespace: "ns"}},
		{PodRef: podRef{Name: "ok", Namespace: "ns"}, Containers: []containerStats{{Name: "a", CPU: cpu(at, 1, 1), Memory: mem(at, 1)}}},
	}}, nil, time.Second)
	if len(b.pods) != 1 {
		t.Fatalf("pods = %v, want only ns/ok", b.pods)
	}
	if _, ok := b.pods[podKey{"ns", "ok"}]; !ok {
		t.Errorf("ns/ok missing: %v", b.pods)
	}
	if b.node != nil {
		t.Errorf("node point %+v from a summary without node stats", b.node)
	}
}

func TestReadSummaryRejectsGarbage(t *testing.T) {
	if _, err := readSummary(strings.NewReader("{not json")); err == nil {
		t.Fatal("want an error")
	}
}
