package controlplane

import (
	"testing"
	"time"
)

// TestEventTTLDefault: the API server gets upstream's default TTL for a zero
// Config.EventTTL, none (forever) for a negative one.
func TestEventTTLDefault(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: DefaultEventTTL, -1: 0, 5 * time.Minute: 5 * time.Minute,
	} {
		if got := (Config{EventTTL: in}).eventTTL(); got != want {
			t.Errorf("EventTTL %v: the API server's is %v, want %v", in, got, want)
		}
	}
	if DefaultEventTTL != time.Hour {
		t.Errorf("DefaultEventTTL = %v, want upstream's 1h", DefaultEventTTL)
	}
}
