package stats

import (
	"encoding/json"
	"testing"
	"time"
)

// TestSampleTimeReadsEveryPrecision: a sample's time is written to the
// microsecond, and read whatever its precision, as kubelets (whole
// seconds), earlier agents and other writers (nanoseconds) send it.
func TestSampleTimeReadsEveryPrecision(t *testing.T) {
	at := time.Date(2026, 11, 29, 16, 55, 39, 122898899, time.UTC)
	data, err := json.Marshal(CPUStats{Time: NewSampleTime(at)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"2026-11-29T16:55:39.122898Z"}`; string(data) != want {
		t.Errorf("encoded %s, want %s", data, want)
	}
	for in, want := range map[string]time.Time{
		`"2026-11-29T16:55:39Z"`:           at.Truncate(time.Second),
		`"2026-11-29T16:55:39.122898Z"`:    at.Truncate(time.Microsecond),
		`"2026-11-29T16:55:39.122898899Z"`: at,
		`"2026-11-29T17:55:39.1+01:00"`:    at.Truncate(100 * time.Millisecond),
		`null`:                             {},
	} {
		var s CPUStats
		if err := json.Unmarshal([]byte(`{"time":`+in+`}`), &s); err != nil {
			t.Errorf("decoding %s: %v", in, err)
			continue
		}
		if !s.Time.Time.Equal(want) {
			t.Errorf("decoded %s as %v, want %v", in, s.Time.Time, want)
		}
	}
	var s MemoryStats
	if err := json.Unmarshal([]byte(`{"time":"yesterday"}`), &s); err == nil {
		t.Error("decoded a time that is not RFC 3339")
	}
}
