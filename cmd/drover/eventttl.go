package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/drover/drover/internal/controlplane"
)

// addEventTTLFlag adds --event-ttl, upstream kube-apiserver's flag, bound to
// cfg.EventTTL: default one hour, 0 keeps events forever.
func addEventTTLFlag(f *pflag.FlagSet, cfg *controlplane.Config) {
	f.Var(eventTTLValue{&cfg.EventTTL}, "event-ttl", "how long events are kept after their last write (0: forever)")
}

// eventTTLValue reads a duration into a controlplane.Config.EventTTL, where
// 0 means the default and a negative value forever: the flag's 0 is stored
// as -1.
type eventTTLValue struct{ ttl *time.Duration }

func (v eventTTLValue) String() string {
	switch {
	case v.ttl == nil || *v.ttl == 0:
		return controlplane.DefaultEventTTL.String()
	case *v.ttl < 0:
		return "0s"
	}
	return v.ttl.String()
}

func (v eventTTLValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("%v is negative", d)
	}
	if d == 0 {
		d = -1
	}
	*v.ttl = d
	return nil
}

func (v eventTTLValue) Type() string { return "duration" }
