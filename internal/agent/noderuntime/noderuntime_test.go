package noderuntime

import (
	"context"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	if name, why := Default("/run/containerd/containerd.sock"); name != CRI || why == "" {
		t.Errorf("with a socket: %s (%s), want cri", name, why)
	}
	name, why := Default("")
	if name != CRI && name != Process || why == "" {
		t.Errorf("without a socket: %s (%s), want cri or process with a reason", name, why)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{Sim, Process} {
		rt, err := Open(ctx, Options{Name: name, DataDir: t.TempDir(), PodSubnet: map[string]string{Sim: "10.9.0.0/24", Process: "127.9.0.0/16"}[name]})
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		if rt.Name() != name {
			t.Errorf("opened %s, got runtime %s", name, rt.Name())
		}
		rt.Close()
	}
	if _, err := Open(ctx, Options{Name: "docker", DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "want cri, process or sim") {
		t.Errorf("unknown runtime: %v", err)
	}
}
