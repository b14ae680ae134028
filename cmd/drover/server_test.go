package main

import (
	"strings"
	"testing"
)

// TestServerClusterFlagsFailInOneLine: contradictory or incomplete HA
// flags stop the server before anything starts, with a one-line reason.
func TestServerClusterFlagsFailInOneLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-init", "--join", "https://127.0.0.1:1", "--token", "K10x::y"}, "exclusive"},
		{[]string{"--join", "https://127.0.0.1:1"}, "--token"},
		{[]string{"--join", "https://127.0.0.1:1", "--token", "not-a-token"}, "join token"},
		{[]string{"--cluster-init", "--etcd-endpoints", "http://127.0.0.1:1"}, "--etcd-endpoints"},
		{[]string{"--name", "Bad_Name", "--cluster-init"}, "server name"},
	} {
		args := append([]string{"server", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, tc.args...)
		_, stderr, err := drover(t, []string{"DROVER_TOKEN="}, args...)
		if err == nil {
			t.Errorf("drover %s exited 0", strings.Join(tc.args, " "))
			continue
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "drover: ") || !strings.Contains(last, tc.want) {
			t.Errorf("drover %s: last stderr line %q, want a one-line reason mentioning %q", strings.Join(tc.args, " "), last, tc.want)
		}
	}
}

func TestServerRemoveNeedsAName(t *testing.T) {
	_, stderr, err := drover(t, nil, "server", "remove")
	if err == nil || !strings.Contains(stderr, "accepts 1 arg") {
		t.Errorf("drover server remove without a name: err %v, stderr %q", err, stderr)
	}
	_, stderr, err = drover(t, []string{"KUBECONFIG=" + t.TempDir() + "/missing"}, "server", "members")
	if err == nil || !strings.Contains(stderr, "kubeconfig") {
		t.Errorf("drover server members without a kubeconfig: err %v, stderr %q", err, stderr)
	}
}
