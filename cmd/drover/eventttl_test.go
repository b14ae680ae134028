package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/drover/drover/internal/controlplane"
)

// TestEventTTLFlag: --event-ttl defaults to an hour, 0 keeps events forever
// (a negative Config.EventTTL), and a negative value is refused.
func TestEventTTLFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration // Config.EventTTL
	}{
		{nil, 0}, // Config's zero value: DefaultEventTTL
		{[]string{"--event-ttl", "30m"}, 30 * time.Minute},
		{[]string{"--event-ttl=0"}, -1},
		{[]string{"--event-ttl=1h"}, time.Hour},
	} {
		var cfg controlplane.Config
		f := pflag.NewFlagSet("test", pflag.ContinueOnError)
		addEventTTLFlag(f, &cfg)
		if err := f.Parse(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if cfg.EventTTL != tc.want {
			t.Errorf("%q: EventTTL = %v, want %v", tc.args, cfg.EventTTL, tc.want)
		}
	}
	var cfg controlplane.Config
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addEventTTLFlag(f, &cfg)
	if def := f.Lookup("event-ttl").DefValue; def != "1h0m0s" {
		t.Errorf("default shown as %q, want 1h0m0s", def)
	}
	if err := f.Parse([]string{"--event-ttl=-5s"}); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("--event-ttl=-5s: err = %v, want it refused as negative", err)
	}
}
